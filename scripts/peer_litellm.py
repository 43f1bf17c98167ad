"""The realistic scenario's LiteLLM peer: LiteLLM's Router with the key's `rpm` and `tpm` set on its
one deployment and pre-call checks on (how LiteLLM's docs have the Router respect those limits),
otherwise its defaults; a semaphore of --parallelism, as in the plain peer. Runs in the virtualenv
scripts/benchmark.py builds from scripts/peers-requirements.txt, never in the project's.
"""

import asyncio
import os

from peer_common import block_text, parse_peer_args, raise_open_files_limit, run_peer

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from the network at import
os.environ.setdefault("LITELLM_LOG", "ERROR")  # its pool warnings would flood the benchmark's output


async def main() -> None:
    import litellm
    from litellm import Router

    litellm.suppress_debug_info = True
    args = parse_peer_args()
    router = Router(
        model_list=[{
            "model_name": "bench",
            "litellm_params": {"model": f"anthropic/{args.model}", "api_key": args.api_key,
                               "api_base": args.base_url, "rpm": args.rpm, "tpm": args.tpm},
        }],
        enable_pre_call_checks=True,
    )
    gate = asyncio.Semaphore(args.parallelism)

    async def call(i: int) -> object:
        async with gate:
            return await router.acompletion(
                model="bench", max_tokens=args.max_tokens,
                messages=[{"role": "user", "content": block_text(i, args.input_tokens, args.output_tokens)}])

    await run_peer(args.blocks, call)


if __name__ == "__main__":
    raise_open_files_limit()
    asyncio.run(main())
