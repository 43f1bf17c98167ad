"""Validate a Messages / count_tokens body and flatten it into the prompt's cacheable segments.

Wording follows the API's 400s where we know it ("max_tokens: Field required", "A maximum of 4 blocks
with cache_control may be provided"), pydantic-style elsewhere. Every problem is raised as a 400
MockAPIError (or 404 for an unknown model), so no malformed body can reach code that would crash.
"""

from dataclasses import dataclass
from typing import Any

from mock_provider.errors import MockAPIError, invalid_request
from mock_provider.models import MockModel, find_model
from mock_provider.structured import output_schema_of
from mock_provider.tokens import canonical_json, count_text

API_VERSIONS = frozenset({"2023-06-01", "2026-10-21"})
# API version 2026-10-21 removed the sampling parameters; a request that still sends one gets a 400.
VERSIONS_WITHOUT_SAMPLING = frozenset({"2026-10-21"})
SAMPLING_FIELDS = ("temperature", "top_p", "top_k")
TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}
MAX_BREAKPOINTS = 4
MAX_MESSAGES = 100_000
ROLES = ("user", "assistant")


@dataclass(frozen=True)
class Segment:
    """One block of the prompt in prefix order (tools, then system, then messages)."""

    role: str  # "tool", "system", "user" or "assistant"
    message_index: int  # index into `messages`; -1 for tools and system
    text: str | None  # a text block's text; None for other block types
    canonical: str  # what is counted and hashed for the prefix cache
    tokens: int
    ttl: str | None  # this block's cache_control TTL when it is a breakpoint


@dataclass(frozen=True)
class ParsedRequest:
    model: MockModel
    model_name: str  # as the client spelled it; echoed in the reply
    max_tokens: int
    stream: bool
    stop_sequences: tuple[str, ...]
    segments: tuple[Segment, ...]
    breakpoints: tuple[tuple[int, str], ...]  # (segment index, ttl), in prefix order
    last_user_index: int  # index into `messages` of the last user turn, -1 if there is none
    input_tokens: int  # the whole prompt
    # `output_config.format`'s JSON Schema (structured outputs), checked; None for free text.
    output_schema: dict[str, Any] | None = None

    def last_user_texts(self) -> list[str]:
        return [s.text for s in self.segments
                if s.message_index == self.last_user_index and s.role == "user" and s.text is not None]

    def texts(self) -> list[Segment]:
        return [s for s in self.segments if s.text is not None and s.role != "tool"]


def _fail(path: str, problem: str) -> MockAPIError:
    return invalid_request(f"{path}: {problem}")


def _cache_ttl(value: Any, path: str) -> str:
    if not isinstance(value, dict):
        raise _fail(path, "Input should be a valid dictionary")
    if value.get("type") != "ephemeral":
        raise _fail(f"{path}.type", "Input should be 'ephemeral'")
    ttl = value.get("ttl", "5m")
    if ttl not in TTL_SECONDS:
        raise _fail(f"{path}.ttl", "Input should be '5m' or '1h'")
    return ttl


def _text_block(block: dict[str, Any], path: str, role: str, index: int) -> Segment:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail(f"{path}.text", "Input should be a valid string")
    if not text:
        raise invalid_request(f"{path.split('.')[0]}: text content blocks must be non-empty")
    ttl = _cache_ttl(block["cache_control"], f"{path}.cache_control") if block.get("cache_control") else None
    return Segment(role, index, text, text, count_text(text), ttl)


def _content_segments(content: Any, path: str, role: str, index: int) -> list[Segment]:
    if isinstance(content, str):
        return [Segment(role, index, content, content, count_text(content), None)] if content else []
    if not isinstance(content, list):
        raise _fail(path, "Input should be a valid string or a list of content blocks")
    segments: list[Segment] = []
    for j, block in enumerate(content):
        block_path = f"{path}.{j}"
        if not isinstance(block, dict):
            raise _fail(block_path, "Input should be a valid dictionary")
        kind = block.get("type")
        if not isinstance(kind, str):
            raise _fail(f"{block_path}.type", "Field required")
        if kind == "text":
            segments.append(_text_block(block, block_path, role, index))
        else:
            # Images, documents, tool blocks...: counted by their JSON, never replied to.
            ttl = (_cache_ttl(block["cache_control"], f"{block_path}.cache_control")
                   if block.get("cache_control") else None)
            canonical = canonical_json(block)
            segments.append(Segment(role, index, None, canonical, count_text(canonical), ttl))
    return segments


def _system_segments(system: Any) -> list[Segment]:
    if system is None:
        return []
    if isinstance(system, str):
        return [Segment("system", -1, system, system, count_text(system), None)] if system else []
    if not isinstance(system, list):
        raise _fail("system", "Input should be a valid string or a list of text blocks")
    segments = []
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _fail(f"system.{j}", "Input should be a text block")
        segments.append(_text_block(block, f"system.{j}", "system", -1))
    return segments


def _tool_segments(tools: Any) -> list[Segment]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _fail("tools", "Input should be a valid list")
    segments = []
    for j, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise _fail(f"tools.{j}", "Input should be a valid dictionary")
        ttl = (_cache_ttl(tool["cache_control"], f"tools.{j}.cache_control")
               if tool.get("cache_control") else None)
        canonical = canonical_json(tool)
        segments.append(Segment("tool", -1, None, canonical, count_text(canonical), ttl))
    return segments


def _breakpoints(segments: list[Segment], top_level: Any) -> tuple[tuple[int, str], ...]:
    points = [(i, s.ttl) for i, s in enumerate(segments) if s.ttl is not None]
    found = len(points)
    if top_level is not None:
        # "Automatic caching": one breakpoint on the last block, using a slot of its own.
        ttl = _cache_ttl(top_level, "cache_control")
        found += 1
        last = len(segments) - 1
        if points and points[-1][0] == last:
            if points[-1][1] != ttl:
                raise invalid_request(
                    "cache_control: the last block already has a cache_control with a different TTL "
                    "than the top-level cache_control")
        elif last >= 0:
            points.append((last, ttl))
    if found > MAX_BREAKPOINTS:
        raise invalid_request(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {found}.")
    seen_5m = False
    for _, ttl in points:
        if ttl == "1h" and seen_5m:
            raise invalid_request(
                "cache_control: a block with ttl='1h' cannot come after a block with ttl='5m'; "
                "longer TTLs must come first")
        seen_5m = seen_5m or ttl == "5m"
    return tuple((i, ttl) for i, ttl in points)


def _check_sampling(body: dict[str, Any], version: str) -> None:
    for name in SAMPLING_FIELDS:
        if name not in body:
            continue
        if version in VERSIONS_WITHOUT_SAMPLING:
            raise _fail(name, "Extra inputs are not permitted")
        value = body[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(name, "Input should be a valid number")
        if name == "top_k":
            if not isinstance(value, int) or value < 0:
                raise _fail(name, "Input should be a non-negative integer")
        elif not 0.0 <= value <= 1.0:
            raise _fail(name, "Input should be between 0 and 1")


def parse_request(body: Any, *, version: str, count_only: bool = False) -> ParsedRequest:
    """Validate a `/v1/messages` (or, with count_only, a `/count_tokens`) body."""
    if not isinstance(body, dict):
        raise invalid_request("Request body must be a JSON object")
    model_name = body.get("model")
    if model_name is None:
        raise _fail("model", "Field required")
    if not isinstance(model_name, str) or not model_name:
        raise _fail("model", "Input should be a valid string")

    max_tokens = 0
    if not count_only:
        if "max_tokens" not in body:
            raise _fail("max_tokens", "Field required")
        max_tokens = body["max_tokens"]
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int):
            raise _fail("max_tokens", "Input should be a valid integer")
        if max_tokens < 0:
            raise _fail("max_tokens", "Input should be greater than or equal to 0")

    messages = body.get("messages")
    if messages is None:
        raise _fail("messages", "Field required")
    if not isinstance(messages, list):
        raise _fail("messages", "Input should be a valid list")
    if not messages:
        raise _fail("messages", "at least one message is required")
    if len(messages) > MAX_MESSAGES:
        raise _fail("messages", f"at most {MAX_MESSAGES} messages are allowed")

    output_schema = output_schema_of(body)
    # The schema is part of the system prompt the model reads: counted, and in the cached prefix
    # (another schema, another prefix).
    schema_segments = []
    if output_schema is not None:
        canonical = canonical_json({"output_format": output_schema})
        schema_segments.append(Segment("output_format", -1, None, canonical, count_text(canonical), None))
    segments = (_tool_segments(body.get("tools")) + schema_segments
                + _system_segments(body.get("system")))
    last_user = -1
    for i, message in enumerate(messages):
        path = f"messages.{i}"
        if not isinstance(message, dict):
            raise _fail(path, "Input should be a valid dictionary")
        role = message.get("role")
        if role not in ROLES:
            raise _fail(f"{path}.role", "Input should be 'user' or 'assistant'")
        if "content" not in message:
            raise _fail(f"{path}.content", "Field required")
        content_segments = _content_segments(message["content"], f"{path}.content", role, i)
        if not content_segments and not (role == "assistant" and i == len(messages) - 1):
            raise invalid_request(f"{path}: all messages must have non-empty content except for the "
                                  "optional final assistant message")
        segments.extend(content_segments)
        if role == "user":
            last_user = i

    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _fail("stream", "Input should be a valid boolean")
    stops = body.get("stop_sequences") or []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise _fail("stop_sequences", "Input should be a list of non-empty strings")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _fail("metadata", "Input should be a valid dictionary")
    _check_sampling(body, version)
    breakpoints = _breakpoints(segments, body.get("cache_control"))

    model = find_model(model_name)
    if model is None:
        raise MockAPIError(404, f"model: {model_name}")
    if max_tokens > model.max_output_tokens:
        raise _fail("max_tokens", f"{max_tokens} > {model.max_output_tokens}, which is the maximum allowed "
                                  f"number of output tokens for {model_name}")
    total = sum(s.tokens for s in segments)
    if total > model.max_input_tokens:
        raise invalid_request(f"prompt is too long: {total} tokens > {model.max_input_tokens} maximum")
    return ParsedRequest(
        model=model, model_name=model_name, max_tokens=max_tokens, stream=stream and not count_only,
        stop_sequences=tuple(stops), segments=tuple(segments), breakpoints=breakpoints,
        last_user_index=last_user, input_tokens=total, output_schema=output_schema,
    )
