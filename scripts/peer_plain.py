"""The realistic scenario's plain peer: what a developer writes first. An AsyncAnthropic client with
the SDK's default retries, one task per block, an asyncio.Semaphore of --parallelism.

    python scripts/peer_plain.py --base-url URL --api-key K --model M --blocks N --parallelism P
                                 --input-tokens T --max-tokens O
"""

import asyncio

from peer_common import block_text, parse_peer_args, raise_open_files_limit, run_peer


async def main() -> None:
    import anthropic

    args = parse_peer_args()
    client = anthropic.AsyncAnthropic(api_key=args.api_key, base_url=args.base_url)
    gate = asyncio.Semaphore(args.parallelism)

    async def call(i: int) -> object:
        async with gate:
            return await client.messages.create(
                model=args.model, max_tokens=args.max_tokens,
                messages=[{"role": "user", "content": block_text(i, args.input_tokens, args.output_tokens)}])

    await run_peer(args.blocks, call)
    await client.close()


if __name__ == "__main__":
    raise_open_files_limit()
    asyncio.run(main())
