"""Fault injection: deterministic directives in the prompt text, and seeded random faults.

Directives are `[[mock:ACTION key=value ...]]` anywhere in system or message text:

  status=N [times=K] [retry_after=S]   answer with the API's error N (400, 401, 403, 404, 413, 429, 500,
                                      504, 529, ...); `retry-after: S` only when retry_after is given
  hang [times=K]                      wait (until the client gives up) before answering
  drop [times=K]                      close the connection without a response
  stream_error [times=K]              streams only: some deltas, then an `event: error` frame
  max_tokens [times=K]                cut the reply, stop_reason "max_tokens" (with a schema: a
                                      truncated document)
  output_tokens=N                     make the reply (or this packed block's reply) about N tokens
  latency_ms=N                        extra latency for this request
  drop_uid [times=K]                  packed block only: leave this uid out of the JSON reply
  malformed [times=K]                 packed call: the whole reply is not valid JSON
  refusal [times=K]                   the model declines: stop_reason "refusal", a short text that is
                                      no answer (with a schema: not a document of it)
  expire [times=K]                    message batches only: never processed, `expired` with the batch

`times=K` means "the first K requests that carry this directive"; without it, every one. Counting is
per directive and the text around it: the packed block it sits in (`<block uid=...>` ... `</block>`),
else the text block that holds it. So a block retried, alone or in another pack, counts up, while two
different blocks carrying the same directive count separately.
"""

import hashlib
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

from mock_provider.config import INJECTABLE_STATUSES
from mock_provider.errors import invalid_request
from mock_provider.prompt import ParsedRequest

DIRECTIVE_RE = re.compile(r"\[\[mock:([^\[\]]*)\]\]")
BLOCK_RE = re.compile(r'<block uid="([^"]*)">\n(.*?)\n</block>', re.DOTALL)

# action -> does it take a value (`name=N`)?
ACTIONS: dict[str, bool] = {
    "status": True, "hang": False, "drop": False, "stream_error": False, "max_tokens": False,
    "output_tokens": True, "latency_ms": True, "drop_uid": False, "malformed": False, "expire": False,
    "refusal": False,
}
# Directives that decide the fate of the whole request before any reply is made, in prompt order.
REQUEST_FAULTS = ("status", "hang", "drop", "stream_error")
OPTIONS = ("times", "retry_after")


@dataclass(frozen=True)
class Directive:
    action: str
    value: int | None
    times: int | None
    retry_after: int | None
    raw: str
    key: str  # counter identity: the directive and its surrounding text
    uid: str | None  # the packed block it sits in, if any

    @property
    def label(self) -> str:
        return self.raw[len("[[mock:"):-2].strip()


def _int(text: str, what: str, raw: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise invalid_request(f"mock directive {raw}: {what} must be an integer") from None
    if number < 0:
        raise invalid_request(f"mock directive {raw}: {what} must be >= 0")
    return number


def parse_directive(raw: str, scope: str, uid: str | None) -> Directive:
    """One `[[mock:...]]`; a typo is a 400 naming it, never silently a normal reply."""
    parts = raw[len("[[mock:"):-2].split()
    if not parts:
        raise invalid_request(f"mock directive {raw}: empty")
    name, has_value, value_text = parts[0].partition("=")
    if name not in ACTIONS:
        raise invalid_request(f"mock directive {raw}: unknown action {name!r}; known: {', '.join(ACTIONS)}")
    if ACTIONS[name] != bool(has_value):
        problem = "needs =N" if ACTIONS[name] else "takes no value"
        raise invalid_request(f"mock directive {raw}: {name} {problem}")
    value = _int(value_text, name, raw) if has_value else None
    if name == "status" and value not in INJECTABLE_STATUSES:
        raise invalid_request(f"mock directive {raw}: status must be one of {sorted(INJECTABLE_STATUSES)}")
    options: dict[str, int] = {}
    for part in parts[1:]:
        option, sep, option_value = part.partition("=")
        if option not in OPTIONS or not sep:
            raise invalid_request(f"mock directive {raw}: unknown option {part!r}")
        options[option] = _int(option_value, option, raw)
    digest = hashlib.sha256(f"{raw}\x00{scope}".encode()).hexdigest()[:32]
    return Directive(name, value, options.get("times"), options.get("retry_after"), raw, digest, uid)


def find_directives(request: ParsedRequest) -> list[Directive]:
    directives: list[Directive] = []
    for segment in request.texts():
        text = segment.text or ""
        if "[[mock:" not in text:
            continue
        blocks = []
        if segment.message_index == request.last_user_index and segment.role == "user":
            blocks = [(m.start(2), m.end(2), m.group(1), m.group(2)) for m in BLOCK_RE.finditer(text)]
        for match in DIRECTIVE_RE.finditer(text):
            scope, uid = text, None
            for start, end, block_uid, inner in blocks:
                if start <= match.start() < end:
                    scope, uid = inner, block_uid
                    break
            directives.append(parse_directive(match.group(0), scope, uid))
    return directives


def strip_directives(text: str) -> str:
    return DIRECTIVE_RE.sub("", text)


class FaultCounters:
    """How many requests each `times=K` directive has fired on; cleared by /_mock/reset."""

    def __init__(self) -> None:
        self._fired: dict[str, int] = {}

    def clear(self) -> None:
        self._fired.clear()

    def take(self, directive: Directive) -> bool:
        fired = self._fired.get(directive.key, 0)
        if directive.times is not None and fired >= directive.times:
            return False
        self._fired[directive.key] = fired + 1
        return True

    def take_expire(self, directives: list[Directive]) -> Directive | None:
        """The `expire` directive that fires on this batch request, if any (uses up one of its times)."""
        for directive in directives:
            if directive.action == "expire" and self.take(directive):
                return directive
        return None

    def choose_request_fault(self, directives: list[Directive], *, stream: bool) -> Directive | None:
        for directive in directives:
            if directive.action not in REQUEST_FAULTS:
                continue
            if directive.action == "stream_error" and not stream:
                continue  # "when not streaming, behave normally" and do not use up a time
            if self.take(directive):
                return directive
        return None


@dataclass(frozen=True)
class RandomFault:
    kind: str  # a status as text ("529"), or a named fault from config.NAMED_FAULTS


class RandomFaults:
    """Seeded draws, one per /v1/messages request that no directive already failed."""

    def __init__(self, rates: Mapping[str, float], seed: int) -> None:
        # A fixed order makes a seed reproduce the same sequence of faults for the same arrival order.
        self._table = sorted(rates.items())
        self._rng = random.Random(seed)

    def draw(self, *, stream: bool) -> RandomFault | None:
        if not self._table:
            return None
        roll = self._rng.random()
        for kind, rate in self._table:
            if roll < rate:
                if kind == "stream_error" and not stream:
                    return None
                return RandomFault(kind)
            roll -= rate
        return None


@dataclass(frozen=True)
class FaultDecision:
    """The request-level fault to inject: `status` (with its status and retry-after), `hang`, `drop` or
    `stream_error`; `label` is how the stats name it (`directive:status=529 times=2`, `random:529`)."""

    action: str
    status: int | None
    retry_after: int | None
    label: str


def decide_request_fault(counters: FaultCounters, random_faults: RandomFaults, directives: list[Directive],
                         *, stream: bool, fault_retry_after: int) -> FaultDecision | None:
    """A directive first (in prompt order), else one random draw; None when the request goes through."""
    chosen = counters.choose_request_fault(directives, stream=stream)
    if chosen is not None:
        return FaultDecision(chosen.action, chosen.value, chosen.retry_after, f"directive:{chosen.label}")
    drawn = random_faults.draw(stream=stream)
    if drawn is None:
        return None
    label = f"random:{drawn.kind}"
    if drawn.kind.isdigit():
        status = int(drawn.kind)
        return FaultDecision("status", status, fault_retry_after if status == 429 else None, label)
    if drawn.kind == "429_no_retry_after":
        return FaultDecision("status", 429, None, label)
    return FaultDecision(drawn.kind, None, None, label)
