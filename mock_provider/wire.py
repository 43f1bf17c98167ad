"""The bytes the API sends: a Message object, and the same message as an SSE event sequence.

Stream order (as documented and as the SDK's fixtures show): message_start, content_block_start, ping,
content_block_delta..., content_block_stop, message_delta (cumulative usage), message_stop.
"""

import json
import random
from dataclasses import dataclass
from typing import Any

from mock_provider.cache import CachePlan
from mock_provider.replies import Reply
from mock_provider.tokens import count_text

_ids = random.Random()  # ids need to be unique, not secret; this is much faster than `secrets`
DELTA_CHARS = 20  # about 5 tokens per content_block_delta


def new_id(prefix: str) -> str:
    return prefix + "01" + format(_ids.getrandbits(88), "022x")


def dumps(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    cache_read_input_tokens: int
    write_5m: int
    write_1h: int
    output_tokens: int
    service_tier: str = "standard"  # "batch" for the requests of a message batch

    @classmethod
    def of(cls, plan: CachePlan, reply: Reply, service_tier: str = "standard") -> "Usage":
        return cls(plan.input_tokens, plan.read_tokens, plan.write_5m_tokens, plan.write_1h_tokens,
                   reply.output_tokens, service_tier)

    def to_json(self, output_tokens: int | None = None) -> dict[str, Any]:
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.write_5m + self.write_1h,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {"ephemeral_5m_input_tokens": self.write_5m,
                               "ephemeral_1h_input_tokens": self.write_1h},
            "output_tokens": self.output_tokens if output_tokens is None else output_tokens,
            "service_tier": self.service_tier,
        }


def message_json(message_id: str, model: str, reply: Reply, usage: Usage) -> dict[str, Any]:
    message = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": reply.text}] if reply.text or reply.output_tokens else [],
        "stop_reason": reply.stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": usage.to_json(),
    }
    if reply.stop_reason == "refusal":
        message["stop_details"] = {"type": "refusal", "category": None, "explanation": None}
    return message


def frame(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


PING = frame("ping", {"type": "ping"})


@dataclass(frozen=True)
class StreamFrames:
    head: bytes  # message_start, content_block_start, ping
    deltas: list[tuple[bytes, int]]  # (content_block_delta frame, tokens in it) for pacing
    tail: bytes  # content_block_stop, message_delta, message_stop


def stream_frames(message_id: str, model: str, reply: Reply, usage: Usage) -> StreamFrames:
    has_block = bool(reply.text or reply.output_tokens)
    start = message_json(message_id, model, reply, usage)
    start.update(content=[], stop_reason=None, stop_sequence=None,
                 usage=usage.to_json(output_tokens=1 if has_block else 0))
    stop_details = start.pop("stop_details", None)
    head = frame("message_start", {"type": "message_start", "message": start})
    if has_block:
        head += frame("content_block_start", {"type": "content_block_start", "index": 0,
                                              "content_block": {"type": "text", "text": ""}})
    head += PING
    text = reply.text
    deltas = [
        (frame("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": text[i:i + DELTA_CHARS]}}),
         count_text(text[i:i + DELTA_CHARS]))
        for i in range(0, len(text), DELTA_CHARS)
    ]
    tail = frame("content_block_stop", {"type": "content_block_stop", "index": 0}) if has_block else b""
    usage_json = usage.to_json()
    del usage_json["cache_creation"], usage_json["service_tier"]  # MessageDeltaUsage has neither
    tail += frame("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": reply.stop_reason, "stop_sequence": reply.stop_sequence,
                  **({"stop_details": stop_details} if stop_details else {})},
        "usage": usage_json,
    })
    tail += frame("message_stop", {"type": "message_stop"})
    return StreamFrames(head, deltas, tail)
