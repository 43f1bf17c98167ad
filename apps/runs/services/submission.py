"""Creating runs: blocks are validated and streamed into the database in chunks, inside one
transaction, so a bad line anywhere leaves nothing half-created and a big file is never whole in memory.
"""

import json
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.db.models.functions import Length
from django.utils import timezone

from apps.core.addresses import WebhookUrlError, validate_webhook_url
from apps.core.db import OctetLength, copy_into, write_connection
from apps.core.errors import InvalidInput, StateConflict, Unprocessable
from apps.keys.models import ProviderKey
from apps.providers.catalog import catalog, get_model, priciest_model
from apps.providers.prompts import (
    INPUT_PLACEHOLDER,
    CallSpec,
    has_metadata_field,
    metadata_fields,
    prompt_version,
)
from apps.providers.structured import SchemaProblem, check_output_schema, schema_json
from apps.runs.caching import prefix_warnings
from apps.runs.dispatch import run_dispatch_on_commit
from apps.runs.estimates import RunEstimate, run_estimate
from apps.runs.models import Block, PassScope, Run, RunKey, RunMode, RunPass
from apps.runs.selectors import run_for_idempotency_key
from apps.runs.services.budget import below_one_block, budget_below_one_block, spec_block_worst_usd
from apps.teams.access import check_may_submit

CHUNK_SIZE = 2000
MAX_UID_LENGTH = 200
BLOCK_FIELDS = {"uid", "input", "metadata"}
# A block's metadata, as compact JSON: record ids and fields to join on, not documents.
MAX_METADATA_BYTES = 8 * 1024


# A run's pool of keys and its list of fallback models (issue 22).
MAX_POOL_KEYS = 20
MAX_FALLBACK_MODELS = 5


class SubmissionError(InvalidInput):
    """Bad input for a run or one of its blocks, naming the line and/or field at fault."""


class KeyInvalid(StateConflict):
    """The run's key failed its last validation: every call would be refused, so no run starts on it.
    (A key not validated yet is accepted: its validation is queued, and a rejection pauses the run.)"""

    code = "key_invalid"


class IdempotencyKeyReused(Unprocessable):
    """An Idempotency-Key already used for a different request: answering with the first run would
    hide that this request was never carried out."""

    code = "idempotency_key_reused"

    def __init__(self, idempotency_key: str) -> None:
        super().__init__(f"Idempotency-Key {idempotency_key!r} was already used with a different request "
                         "body; use a new key for a new request")
        self.idempotency_key = idempotency_key


@dataclass(frozen=True)
class BlockSpec:
    uid: str
    input: str
    line: int | None = None
    metadata: dict[str, Any] | None = None


def _storable(text: str) -> bool:
    """PostgreSQL text holds neither NUL nor unpaired surrogates, both of which valid JSON can spell."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_control_character(text: str) -> str | None:
    """The first C0/C1 control character (CR, LF, TAB, ESC, DEL, ...) in `text`, if any."""
    return next((char for char in text if unicodedata.category(char) == "Cc"), None)


def block_from_object(obj: Any, *, line: int) -> BlockSpec:
    """Validate one block given as a JSON value; a missing uid is derived from its line."""
    if not isinstance(obj, dict):
        raise SubmissionError("a block must be a JSON object", line=line)
    unknown = sorted(set(obj) - BLOCK_FIELDS)
    if unknown:
        raise SubmissionError(f"unknown field(s) {', '.join(unknown)}", field=unknown[0], line=line)
    text = obj.get("input")
    if not isinstance(text, str):
        raise SubmissionError("`input` must be a string", field="input", line=line)
    if not text.strip():
        raise SubmissionError("`input` is empty", field="input", line=line)
    uid = obj.get("uid", f"line-{line}")
    if isinstance(uid, int) and not isinstance(uid, bool):
        uid = str(uid)
    if not isinstance(uid, str) or not uid.strip():
        raise SubmissionError("`uid` must be a non-empty string", field="uid", line=line)
    if len(uid) > MAX_UID_LENGTH:
        raise SubmissionError(f"`uid` is longer than {MAX_UID_LENGTH} characters", field="uid",
                              line=line)
    for name, value in (("input", text), ("uid", uid)):
        if not _storable(value):
            raise SubmissionError(f"`{name}` contains a NUL or an unpaired surrogate character",
                                  field=name, line=line)
    control = _first_control_character(uid)
    if control is not None:
        # The uid travels in a request header, where CR/LF/DEL make every call for it fail.
        raise SubmissionError(f"`uid` contains the control character U+{ord(control):04X} "
                              "(CR, LF, TAB, DEL, ...); a uid must be printable", field="uid", line=line)
    metadata = checked_metadata(obj.get("metadata"), line=line)
    return BlockSpec(uid=uid, input=text, line=line, metadata=metadata)


def _json_storable(value: Any) -> bool:
    """PostgreSQL's jsonb holds no NUL (\\u0000) in a string or a key, and no unpaired surrogate."""
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, dict):
        return all(_storable(k) and _json_storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_storable(v) for v in value)
    return True


def checked_metadata(metadata: Any, *, line: int) -> dict[str, Any] | None:
    """A block's metadata: a JSON object of at most MAX_METADATA_BYTES (as compact JSON) that
    PostgreSQL can store (no NUL anywhere, no unpaired surrogate). None when not given."""
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise SubmissionError("`metadata` must be a JSON object", field="metadata", line=line)
    try:
        text = json.dumps(metadata, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise SubmissionError("`metadata` holds a number JSON cannot carry (NaN or infinity)",
                              field="metadata", line=line) from None
    if not _json_storable(metadata):
        raise SubmissionError("`metadata` contains a NUL or an unpaired surrogate character",
                              field="metadata", line=line)
    size = len(text.encode("utf-8"))
    if size > MAX_METADATA_BYTES:
        raise SubmissionError(f"`metadata` is {size:,} bytes as JSON; at most {MAX_METADATA_BYTES:,} "
                              "are accepted", field="metadata", line=line)
    return metadata


def parse_jsonl(lines: Iterable[bytes | str]) -> Iterator[BlockSpec]:
    """Blocks from JSONL, one per non-blank line, lazily."""
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise SubmissionError("is not valid UTF-8", line=number) from None
        raw = raw.removeprefix("\ufeff") if number == 1 else raw
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SubmissionError(f"is not valid JSON ({exc.msg})", line=number) from None
        except RecursionError:
            raise SubmissionError("is nested too deeply", line=number) from None
        yield block_from_object(obj, line=number)


def resolve_mode(mode: str, deadline: datetime | None, *, estimate: dict[str, Any] | None = None
                 ) -> tuple[str, str]:
    """What a run will use (live or batch) and why; `auto` decides from the deadline: batch (half the
    price) when the deadline is at least BATCH_AUTO_MIN_HOURS away, since a batch may take a day."""
    if mode != RunMode.AUTO:
        return mode, ""
    horizon = timedelta(hours=settings.CONVEYOR["BATCH_AUTO_MIN_HOURS"])
    left = deadline - timezone.now() if deadline else timedelta(0)
    hours = left.total_seconds() / 3600
    if left >= horizon:
        saving = ""
        if estimate and estimate.get("cost_usd"):
            high = Decimal(estimate["cost_usd"]["high"])
            saving = f"; at most ${high / 2:.4f} instead of ${high:.4f} live (worst case)"
        return RunMode.BATCH, f"auto: deadline in {hours:.0f} h, so batch (half price, within a day){saving}"
    return RunMode.LIVE, (f"auto: deadline in {hours:.1f} h, too near for a batch (up to "
                          f"{horizon.total_seconds() / 3600:.0f} h): live calls")


def checked_fallback_models(fallback_models: Any, *, model: str, max_tokens: int) -> list[str]:
    """The run's fallback models, in order: each a catalog model, none twice (nor the primary), and
    each able to write the run's `max_tokens` (a fallback that could not would fail every block it
    took). Refused with a 400 naming `fallback_models`."""
    if fallback_models is None:
        return []
    if not isinstance(fallback_models, list) or not all(isinstance(m, str) for m in fallback_models):
        raise SubmissionError("must be a list of model ids", field="fallback_models")
    if len(fallback_models) > MAX_FALLBACK_MODELS:
        raise SubmissionError(f"at most {MAX_FALLBACK_MODELS} fallback models", field="fallback_models")
    seen = {model}
    for fallback in fallback_models:
        info = get_model(fallback)
        if info is None:
            raise SubmissionError(f"unknown model {fallback!r}; known: {', '.join(catalog().ids())}",
                                  field="fallback_models")
        if fallback in seen:
            raise SubmissionError(f"{fallback!r} is named twice (the primary model counts)",
                                  field="fallback_models")
        seen.add(fallback)
        if info.max_output_tokens is not None and max_tokens > info.max_output_tokens:
            raise SubmissionError(f"{fallback} can write at most {info.max_output_tokens} output tokens, "
                                  f"less than the run's max_tokens {max_tokens}", field="fallback_models")
    return list(fallback_models)


def checked_pool(owner: Any, keys: list[ProviderKey], team: Any = None) -> list[ProviderKey]:
    """A run's pool of keys: the owner's personal keys (a team's run: the team's keys), each once."""
    if not keys:
        raise SubmissionError("a run needs a key", field="key")
    ids = [key.pk for key in keys]
    if len(set(ids)) != len(ids):
        raise SubmissionError("the same key is named twice", field="keys")
    if len(keys) > MAX_POOL_KEYS:
        raise SubmissionError(f"at most {MAX_POOL_KEYS} keys", field="keys")
    field = "keys" if len(keys) > 1 else "key"
    for key in keys:
        if team is not None and key.team_id != team.pk:
            raise SubmissionError("unknown key: a team's run needs one of the team's keys", field=field)
        if team is None and (key.owner_id != owner.pk or key.team_id is not None):
            raise SubmissionError("unknown key", field=field)
    return keys


def validate_run_options(*, model: str, max_tokens: int, max_attempts: int, parallelism: int,
                         prompt_template: str, options: dict[str, Any], priority: int = 5,
                         mode: str = "live", deadline: datetime | None = None,
                         output_schema: dict[str, Any] | None = None,
                         fallback_models: list[str] | None = None) -> None:
    info = get_model(model)
    if info is None:
        raise SubmissionError(f"unknown model {model!r}; known: {', '.join(catalog().ids())}",
                              field="model")
    checked_fallback_models(fallback_models, model=model, max_tokens=max_tokens)
    overload = options.get("fallback_overload_seconds")
    if overload is not None and (isinstance(overload, bool) or not isinstance(overload, (int, float))
                                 or overload <= 0):
        raise SubmissionError("must be a positive number of seconds",
                              field="options.fallback_overload_seconds")
    if not 1 <= max_tokens <= 128_000:
        raise SubmissionError("must be between 1 and 128000", field="max_tokens")
    # Checked here, not by the provider: over the model's limit, every call would be a 400.
    if info.max_output_tokens is not None and max_tokens > info.max_output_tokens:
        raise SubmissionError(f"{max_tokens} is more than {model} can write: at most "
                              f"{info.max_output_tokens} output tokens", field="max_tokens")
    if not 1 <= max_attempts <= 20:
        raise SubmissionError("must be between 1 and 20", field="max_attempts")
    if not 1 <= parallelism <= 1000:
        raise SubmissionError("must be between 1 and 1000", field="parallelism")
    if isinstance(priority, bool) or not isinstance(priority, int) or not 1 <= priority <= 10:
        raise SubmissionError("must be a whole number from 1 to 10", field="priority")
    if mode not in RunMode.values:
        raise SubmissionError(f"must be one of {', '.join(RunMode.values)}", field="mode")
    if mode == RunMode.AUTO and deadline is None:
        raise SubmissionError("mode=auto needs a deadline (when the results are needed by)", field="deadline")
    if deadline is not None and deadline <= timezone.now():
        raise SubmissionError("must be in the future", field="deadline")
    if mode in (RunMode.BATCH, RunMode.AUTO) and options.get("stream"):
        raise SubmissionError("a batch-mode run cannot stream (batch requests are answered whole)",
                              field="options.stream")
    budget = options.get("max_cost_usd")
    if budget is not None:
        try:
            positive = Decimal(str(budget)) > 0
        except (InvalidOperation, ValueError):
            positive = False
        if not positive:
            raise SubmissionError("max_cost_usd must be a positive amount of dollars",
                                  field="options.max_cost_usd")
    if INPUT_PLACEHOLDER not in prompt_template:
        raise SubmissionError(f"must contain {INPUT_PLACEHOLDER}", field="prompt_template")
    pack_size = options.get("pack_size", 1)
    if not isinstance(pack_size, int) or not 1 <= pack_size <= 50:
        raise SubmissionError("pack_size must be an integer between 1 and 50", field="options.pack_size")
    if options.get("cache_ttl", "5m") not in ("5m", "1h"):
        raise SubmissionError("cache_ttl must be 5m or 1h", field="options.cache_ttl")
    if output_schema is not None:
        checked_output_schema(output_schema)


def checked_output_schema(schema: Any) -> None:
    """What the provider's structured outputs support (apps.providers.structured), refused here with
    the keyword and its JSON path, rather than by the provider on every call."""
    try:
        check_output_schema(schema)
    except SchemaProblem as exc:
        raise SubmissionError(exc.message, field="output_schema") from None


def check_metadata_named(blocks: Iterable[BlockSpec], prompt_template: str) -> Iterator[BlockSpec]:
    """Blocks as they stream past, each checked to carry every metadata field the template names
    (`{metadata.title}`): a block without one would be sent with a hole in its prompt."""
    names = metadata_fields(prompt_template)
    for spec in blocks:
        for name in names:
            if not has_metadata_field(spec.metadata, name):
                raise SubmissionError(f"`metadata` has no field {name!r}, which the prompt template names "
                                      f"({{metadata.{name}}})", field="metadata", line=spec.line)
        yield spec


def _has_webhook_secret(owner: Any) -> bool:
    """Asked through the relation the webhooks app puts on the user (WebhookSecret.owner,
    `webhook_secret`): that app sits above the run engine, which does not import it."""
    return get_user_model().objects.filter(pk=owner.pk, webhook_secret__isnull=False).exists()


def checked_webhook_url(webhook_url: str, *, owner: Any = None) -> str:
    """The webhook_url to store ("" for none): the address rules of apps/core/addresses.py,
    and a signing secret to sign its events with (`owner` given: at create)."""
    if not (webhook_url or "").strip():
        return ""
    try:
        url = validate_webhook_url(webhook_url)
    except WebhookUrlError as exc:
        raise SubmissionError(str(exc.message), field="webhook_url") from None
    if owner is not None and not _has_webhook_secret(owner):
        raise SubmissionError("you have no webhook signing secret yet: create one first with "
                              "POST /api/v1/webhooks/secret/ (or manage.py webhook_secret --rotate), "
                              "so that every event can be verified", field="webhook_url")
    return url


def run_preflight(*, blocks: Iterable[BlockSpec], model: str, system_prompt: str = "",
                  prompt_template: str = INPUT_PLACEHOLDER, max_tokens: int = 1024,
                  max_attempts: int = 3, parallelism: int = 16, priority: int = 5,
                  temperature: float | None = None, options: dict[str, Any] | None = None,
                  mode: str = RunMode.LIVE, deadline: datetime | None = None, webhook_url: str = "",
                  output_schema: dict[str, Any] | None = None, fallback_models: list[str] | None = None,
                  **ignored: Any) -> RunEstimate:
    """What a run of these blocks and settings would take (tokens and cost, as a range), checked as
    a create is checked, without creating anything or calling the provider."""
    options = dict(options or {})
    validate_run_options(model=model, max_tokens=max_tokens, max_attempts=max_attempts,
                         parallelism=parallelism, prompt_template=prompt_template, options=options,
                         priority=priority, mode=mode, deadline=deadline, output_schema=output_schema,
                         fallback_models=fallback_models)
    checked_webhook_url(webhook_url)
    count = chars = nbytes = largest = 0
    named = bool(metadata_fields(prompt_template))
    for spec in check_metadata_named(_unique(blocks), prompt_template):
        count += 1
        chars += len(spec.input)
        size = len(spec.input.encode("utf-8"))
        nbytes += size
        # What a claim reserves for: its input, and its metadata (as jsonb prints it) when named.
        if named and spec.metadata is not None:
            size += len(json.dumps(spec.metadata, ensure_ascii=False).encode("utf-8"))
        largest = max(largest, size)
    if count == 0:
        raise SubmissionError("a run needs at least one block", field="blocks")
    call_spec = CallSpec(model=model, system_prompt=system_prompt, prompt_template=prompt_template,
                         max_tokens=max_tokens, temperature=temperature, cache=bool(options.get("cache")),
                         cache_ttl=options.get("cache_ttl", "5m"), stream=bool(options.get("stream")),
                         output_schema=schema_json(output_schema) if output_schema else "")
    batch = resolve_mode(mode, deadline)[0] == RunMode.BATCH
    pack_size = 1 if batch else int(options.get("pack_size", 1))
    if options.get("max_cost_usd") is not None:
        budget_spec = replace(call_spec, model=priciest_model([model, *(fallback_models or [])]))
        worst = spec_block_worst_usd(budget_spec, pack_size=pack_size, batch=batch, nbytes=largest)
        too_small = below_one_block(budget=Decimal(str(options["max_cost_usd"])), worst=worst, model=model)
        if too_small:
            raise SubmissionError(too_small, field="options.max_cost_usd")
    return run_estimate(call_spec, pack_size=pack_size, blocks=count, input_chars=chars, input_bytes=nbytes,
                        batch=batch)


def run_for_repeated_request(*, owner: Any, idempotency_key: str, request_fingerprint: str = ""
                             ) -> Run | None:
    """The run an earlier create with this Idempotency-Key made, when this is the same request again.

    A different request with the key (another fingerprint) is an IdempotencyKeyReused. A run without a
    fingerprint (made before fingerprints were stored) cannot be compared and is answered as before."""
    run = run_for_idempotency_key(owner=owner, idempotency_key=idempotency_key)
    if (run is not None and run.request_fingerprint and request_fingerprint
            and run.request_fingerprint != request_fingerprint):
        raise IdempotencyKeyReused(idempotency_key)
    return run


def check_key_usable(key: ProviderKey) -> None:
    """A key whose last validation failed is refused before any block is stored or any call made."""
    if key.is_valid is False:
        raise KeyInvalid(f"key is invalid: {key.validation_error or 'its last validation failed'}")


@transaction.atomic
def run_create(*, owner: Any, key: ProviderKey | None = None, blocks: Iterable[BlockSpec], model: str,
               system_prompt: str = "", prompt_template: str = INPUT_PLACEHOLDER,
               max_tokens: int = 1024, max_attempts: int = 3, parallelism: int = 16,
               temperature: float | None = None, options: dict[str, Any] | None = None,
               name: str = "", idempotency_key: str | None = None, request_fingerprint: str = "",
               priority: int = 5, mode: str = RunMode.LIVE, deadline: datetime | None = None,
               webhook_url: str = "", output_schema: dict[str, Any] | None = None,
               dispatch: bool = True, held_open: bool = False, team: Any = None,
               retention_days: int | None = None, keys: list[ProviderKey] | None = None,
               fallback_models: list[str] | None = None) -> Run:
    """Create a run and its blocks; a serving loop is asked for once the transaction commits
    (`dispatch=False` leaves that to the caller, e.g. the demo, which serves in its own process).
    `held_open`: a pipeline's later step, which may start with no block (earlier steps hand them on)
    and does not complete until released (apps.pipelines).

    With an Idempotency-Key already used for the same request, the first run is returned (its blocks
    are never read); for another request, IdempotencyKeyReused. A key whose last validation failed
    is a KeyInvalid.

    `team`: the team the run is for (None: a personal run). The owner must be its admin or member
    (a viewer is refused: PermissionDenied) and the keys the team's; a personal run takes the
    owner's personal keys.

    `keys`: a pool of keys (the run's calls are spread over them; `key` alone is a pool of one, and
    with both, `key` comes first). `fallback_models`: models a block moves on to when the one it is
    on cannot serve it (decisions.py)."""
    options = dict(options or {})
    if team is not None:
        check_may_submit(owner, team)
    pool = checked_pool(owner, [*([key] if key is not None else []), *(keys or [])], team)
    key = pool[0]
    if idempotency_key:
        existing = run_for_repeated_request(owner=owner, idempotency_key=idempotency_key,
                                            request_fingerprint=request_fingerprint)
        if existing is not None:
            return existing
    validate_run_options(model=model, max_tokens=max_tokens, max_attempts=max_attempts,
                         parallelism=parallelism, prompt_template=prompt_template, options=options,
                         priority=priority, mode=mode, deadline=deadline, output_schema=output_schema,
                         fallback_models=fallback_models)
    webhook_url = checked_webhook_url(webhook_url, owner=owner)
    for member in pool:
        check_key_usable(member)
    run = Run.objects.create(
        owner=owner, team=team, key=key, name=name, model=model, system_prompt=system_prompt,
        fallback_models=list(fallback_models or []),
        prompt_template=prompt_template, max_tokens=max_tokens, max_attempts=max_attempts,
        parallelism=parallelism, priority=priority, temperature=temperature, options=options,
        mode=mode, effective_mode=RunMode.BATCH if mode == RunMode.BATCH else RunMode.LIVE,
        deadline=deadline, output_schema_text=schema_json(output_schema) if output_schema else "",
        pipeline_version=settings.CONVEYOR["PIPELINE_VERSION"],
        prompt_version=prompt_version(system_prompt, prompt_template,
                                      schema_json(output_schema) if output_schema else ""),
        idempotency_key=idempotency_key or None, request_fingerprint=request_fingerprint,
        webhook_url=webhook_url, held_open=held_open, retention_days=retention_days,
    )
    RunKey.objects.bulk_create([RunKey(run=run, key=member, position=i) for i, member in enumerate(pool)])
    total = _insert_blocks(run, check_metadata_named(_unique(blocks), prompt_template))
    if total == 0 and not held_open:
        raise SubmissionError("a run needs at least one block", field="blocks")
    sizes = Block.objects.filter(run_id=run.pk).aggregate(chars=Sum(Length("input")),
                                                          bytes=Sum(OctetLength("input")))
    def estimate() -> dict[str, Any]:
        return run_estimate(run.call_spec, pack_size=run.pack_size, blocks=total,
                            input_chars=sizes["chars"] or 0, input_bytes=sizes["bytes"] or 0,
                            batch=run.in_batch_mode).as_dict()

    run.estimate = estimate()
    run.effective_mode, run.mode_reason = resolve_mode(mode, deadline, estimate=run.estimate)
    if run.in_batch_mode:
        run.estimate = estimate()
    too_small = budget_below_one_block(run)
    if too_small:
        raise SubmissionError(too_small, field="options.max_cost_usd")
    run.warnings = prefix_warnings(run.call_spec, pack_size=run.pack_size, blocks=total)
    Run.objects.filter(pk=run.pk).update(total_blocks=total, estimate=run.estimate, warnings=run.warnings,
                                         effective_mode=run.effective_mode, mode_reason=run.mode_reason)
    run.total_blocks = total
    RunPass.objects.create(
        run=run, number=1, scope=PassScope.INITIAL, model=run.model, system_prompt=run.system_prompt,
        prompt_template=run.prompt_template, prompt_version=run.prompt_version,
        pipeline_version=run.pipeline_version, selected_blocks=total, created_at=run.created_at,
    )
    if dispatch:
        run_dispatch_on_commit(run_id=run.pk)
    return run


def _unique(blocks: Iterable[BlockSpec]) -> Iterator[BlockSpec]:
    seen: set[str] = set()
    for spec in blocks:
        if spec.uid in seen:
            raise SubmissionError(f"duplicate uid {spec.uid!r}", field="uid", line=spec.line)
        seen.add(spec.uid)
        yield spec


def _insert_blocks(run: Run, blocks: Iterable[BlockSpec]) -> int:
    """Insert the run's blocks as they stream in; returns how many.

    On PostgreSQL one COPY carries them all: rows are the same prepared values but for index, uid
    and input, so a block costs microseconds (bulk_create spent ~200 us each building model instances
    and preparing values: 23 s for 100,000). Elsewhere (the SQLite demo), bulk_create in chunks."""
    def block(index: int, spec: BlockSpec) -> Block:
        return Block(run=run, block_index=index, uid=spec.uid, input=spec.input, metadata=spec.metadata,
                     model=run.model, pipeline_version=run.pipeline_version,
                     prompt_version=run.prompt_version)

    total = 0
    db = write_connection(Block)
    if db.vendor != "postgresql":
        chunk: list[Block] = []
        for spec in blocks:
            chunk.append(block(total, spec))
            total += 1
            if len(chunk) >= CHUNK_SIZE:
                Block.objects.bulk_create(chunk)
                chunk = []
        Block.objects.bulk_create(chunk)
        return total

    template = block(0, BlockSpec(uid="", input=""))
    with copy_into(Block) as (write_row, fields):
        row = [f.get_db_prep_save(f.pre_save(template, True), db) for f in fields]
        slot = {f.attname: i for i, f in enumerate(fields)}
        index_at, uid_at, input_at = slot["block_index"], slot["uid"], slot["input"]
        metadata_at, metadata_field = slot["metadata"], Block._meta.get_field("metadata")
        for spec in blocks:
            row[index_at], row[uid_at], row[input_at] = total, spec.uid, spec.input
            row[metadata_at] = (None if spec.metadata is None
                                else metadata_field.get_db_prep_save(spec.metadata, db))
            write_row(row)
            total += 1
    return total


def run_create_idempotent(**kwargs: Any) -> Run:
    """run_create, where two concurrent creates with one Idempotency-Key yield the first run."""
    try:
        return run_create(**kwargs)
    except IntegrityError:
        if not kwargs.get("idempotency_key"):
            raise
        run = run_for_repeated_request(owner=kwargs["owner"], idempotency_key=kwargs["idempotency_key"],
                                       request_fingerprint=kwargs.get("request_fingerprint", ""))
        if run is None:  # the constraint that failed was not the Idempotency-Key's
            raise
        return run
