"""Structured outputs (the provider's JSON outputs, `output_config.format`): what a run's JSON Schema
may use, the schema of a packed reply, and every answer read and validated again here.

What the provider supports (platform docs "Structured outputs", JSON Schema limitations; the SDK's
`transform_schema` keeps the same subset):
- every basic type; `enum` of strings, numbers, booleans or nulls; `const`; `anyOf`; `allOf` (not
  around a `$ref`); local `$ref` into `$defs` / `definitions`; `required`; `additionalProperties`,
  which must be `false` on every object; `default`, `description`, `title`; string `format`s in
  SUPPORTED_FORMATS; string `pattern`s without backreferences, lookaround or word boundaries; array
  `minItems` of 0 or 1;
- not: numeric bounds (`minimum`, `maximum`, `multipleOf`, ...), string length bounds, other array
  bounds, recursive schemas, external `$ref`s, and at most MAX_OPTIONAL_PROPERTIES optional properties
  and MAX_UNION_PROPERTIES properties with a union type (`anyOf` or a list of types) per schema.
A schema that breaks one of these is refused at create (`check_output_schema`), naming the keyword
and its JSON path, rather than by the provider on every call.

The provider decodes under the schema, so a finished answer conforms; it can still end without a
document (`stop_reason` `max_tokens`: cut; `refusal`: declined), and an answer is only taken once it
parses and validates here (`document_of`), with the `jsonschema` library.
"""

import json
import re
from dataclasses import replace
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, SchemaError
from jsonschema.exceptions import best_match

from apps.providers.errors import FailureKind, ProviderFailure

# A schema is sent with every call and read by the model as part of its system prompt.
OUTPUT_SCHEMA_MAX_BYTES = 64 * 1024
MAX_OPTIONAL_PROPERTIES = 24
MAX_UNION_PROPERTIES = 16
OUTPUT_INVALID = "output_invalid"
TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
SUPPORTED_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "uri",
                               "ipv4", "ipv6", "uuid"})
# Keywords any schema may carry; those of one type only; and what only the root may carry.
ANY_KEYWORDS = frozenset({"type", "enum", "const", "anyOf", "allOf", "$ref", "description", "title",
                          "default", "$comment"})
TYPE_KEYWORDS = {"object": {"properties", "required", "additionalProperties"},
                 "array": {"items", "minItems"},
                 "string": {"format", "pattern"}}
ROOT_KEYWORDS = frozenset({"$schema", "$defs", "definitions"})
# What the provider refuses, by kind, to say why.
UNSUPPORTED = {
    **dict.fromkeys(("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"),
                    "numeric bounds are not supported"),
    **dict.fromkeys(("minLength", "maxLength"), "string length bounds are not supported"),
    **dict.fromkeys(("maxItems", "uniqueItems", "prefixItems", "contains", "minContains", "maxContains",
                     "unevaluatedItems"), "array bounds other than minItems 0 or 1 are not supported"),
    **dict.fromkeys(("oneOf", "not", "if", "then", "else", "dependentSchemas", "dependentRequired"),
                    "only anyOf and allOf combine schemas"),
    **dict.fromkeys(("patternProperties", "propertyNames", "minProperties", "maxProperties",
                     "unevaluatedProperties"), "objects take properties, required and "
                                               "additionalProperties: false only"),
    **dict.fromkeys(("$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "$recursiveRef"),
                    "only local $ref into $defs or definitions is supported"),
}
# Regular expression features the provider's `pattern` does not take.
UNSUPPORTED_PATTERN = re.compile(r"\(\?<?[=!]|\\[bB]|\\[1-9]|\(\?P=")
# Where `$ref` may point.
DEFINITIONS = ("$defs", "definitions")


class SchemaProblem(ValueError):
    """A schema the provider would refuse (or that is not JSON Schema at all), with the keyword at
    fault and its JSON path (`$.properties.age`)."""

    def __init__(self, message: str, *, keyword: str = "", path: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.keyword = keyword
        self.path = path


def json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def canonical_json(value: Any) -> str:
    """One spelling of a JSON value (sorted keys, no spaces): what two documents are compared by."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def schema_json(schema: dict[str, Any]) -> str:
    """A schema as stored and sent: compact, its keys in the order given. The order is meaningful:
    the model writes an object's properties in the order its schema lists them."""
    return json.dumps(schema, separators=(",", ":"), ensure_ascii=False)


def check_output_schema(schema: Any) -> None:
    """Refuse a run's output schema that is not JSON Schema, too large, or not what the provider's
    structured outputs support (SchemaProblem naming the keyword and the path)."""
    if not isinstance(schema, dict):
        raise SchemaProblem("the schema must be a JSON object (a JSON Schema)")
    size = len(schema_json(schema).encode())
    if size > OUTPUT_SCHEMA_MAX_BYTES:
        raise SchemaProblem(f"the schema is {size:,} bytes as JSON; at most {OUTPUT_SCHEMA_MAX_BYTES:,} are "
                            "accepted (the schema is sent, and read by the model, with every call)")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        keyword = next((p for p in reversed(exc.path) if isinstance(p, str)), "")
        where = json_path(exc.path)
        raise SchemaProblem(f"the schema is not a valid JSON Schema: {exc.message} (at {where})",
                            keyword=keyword, path=where) from None
    if schema.get("type") != "object":
        raise SchemaProblem("the root must be an object schema (`\"type\": \"object\"`): an answer is one "
                            "JSON object", keyword="type")
    _Checker(schema).check()


class _Checker:
    """The provider's rules, node by node (see the module's doc)."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.optional = 0
        self.unions = 0
        self.followed: set[str] = set()

    def check(self) -> None:
        self.node(self.root, [], root=True)
        for container in DEFINITIONS:
            for name, definition in (self.root.get(container) or {}).items():
                self.node(definition, [container, name])
        self.refs(self.root, [], ())
        if self.optional > MAX_OPTIONAL_PROPERTIES:
            raise SchemaProblem(f"the schema has {self.optional} optional properties (not in `required`); "
                                f"the provider takes at most {MAX_OPTIONAL_PROPERTIES}", keyword="required")
        if self.unions > MAX_UNION_PROPERTIES:
            raise SchemaProblem(f"the schema has {self.unions} properties with a union type (anyOf or a list "
                                f"of types); the provider takes at most {MAX_UNION_PROPERTIES}",
                                keyword="anyOf")

    @staticmethod
    def refuse(keyword: str, path: list[Any], why: str) -> SchemaProblem:
        where = json_path(path)
        return SchemaProblem(f"`{keyword}` at {where} is not supported by the provider's structured "
                             f"outputs: {why}", keyword=keyword, path=where)

    def node(self, schema: Any, path: list[Any], *, root: bool = False) -> None:
        if not isinstance(schema, dict):
            raise SchemaProblem(f"{json_path(path)} must be a schema object (true and false schemas are "
                                "not supported)", path=json_path(path))
        types = schema.get("type")
        types = {types} if isinstance(types, str) else set(types or ())
        if "properties" in schema:
            types.add("object")
        allowed = set(ANY_KEYWORDS) | (ROOT_KEYWORDS if root else set())
        for name in types:
            allowed |= TYPE_KEYWORDS.get(name, set())
        for keyword in schema:
            if keyword not in allowed:
                why = UNSUPPORTED.get(keyword) or (
                    f"it applies to {' or '.join(t for t, kws in TYPE_KEYWORDS.items() if keyword in kws)} "
                    "schemas only" if any(keyword in kws for kws in TYPE_KEYWORDS.values())
                    else "it is not among the keywords the provider takes")
                raise self.refuse(keyword, path, why)
        if "enum" in schema and any(isinstance(v, dict | list) for v in schema["enum"]):
            raise self.refuse("enum", path, "enum values must be strings, numbers, booleans or null")
        if "object" in types:
            self.object(schema, path)
        if "items" in schema:
            self.node(schema["items"], [*path, "items"])
        if schema.get("minItems", 0) not in (0, 1):
            raise self.refuse("minItems", path, "minItems may only be 0 or 1")
        fmt = schema.get("format")
        if fmt is not None and fmt not in SUPPORTED_FORMATS:
            raise self.refuse("format", path,
                              f"format {fmt!r} is not one of {', '.join(sorted(SUPPORTED_FORMATS))}")
        if "pattern" in schema and UNSUPPORTED_PATTERN.search(schema["pattern"]):
            raise self.refuse("pattern", path, "patterns cannot use backreferences, lookaround or word "
                                               "boundaries (\\b)")
        for keyword in ("anyOf", "allOf"):
            for i, part in enumerate(schema.get(keyword) or ()):
                if keyword == "allOf" and isinstance(part, dict) and "$ref" in part:
                    raise self.refuse("allOf", [*path, keyword, i], "allOf cannot hold a $ref")
                self.node(part, [*path, keyword, i])

    def object(self, schema: dict[str, Any], path: list[Any]) -> None:
        if schema.get("additionalProperties") is not False:
            where = json_path(path)
            raise SchemaProblem(f"the object at {where} must set `additionalProperties: false` (the provider "
                                "requires it on every object)", keyword="additionalProperties", path=where)
        required = set(schema.get("required") or ())
        for name, prop in (schema.get("properties") or {}).items():
            if name not in required:
                self.optional += 1
            if isinstance(prop, dict) and ("anyOf" in prop or isinstance(prop.get("type"), list)):
                self.unions += 1
            self.node(prop, [*path, "properties", name])

    def refs(self, schema: Any, path: list[Any], following: tuple[str, ...]) -> None:
        """Every `$ref` local and resolvable; none leading back into itself (a recursive schema). A
        definition followed to its end without meeting one is not followed again."""
        if not isinstance(schema, dict):
            return
        if "$ref" in schema:
            self.ref(schema["$ref"], path, following)
        for name, prop in (schema.get("properties") or {}).items():
            self.refs(prop, [*path, "properties", name], following)
        if "items" in schema:
            self.refs(schema["items"], [*path, "items"], following)
        for keyword in ("anyOf", "allOf"):
            for i, part in enumerate(schema.get(keyword) or ()):
                self.refs(part, [*path, keyword, i], following)
        if not path:
            for container in DEFINITIONS:
                for name, definition in (schema.get(container) or {}).items():
                    self.refs(definition, [container, name], following)

    def ref(self, ref: Any, path: list[Any], following: tuple[str, ...]) -> None:
        where = json_path(path)
        if not isinstance(ref, str) or not any(ref.startswith(f"#/{c}/") for c in DEFINITIONS):
            raise SchemaProblem(f"`$ref` {ref!r} at {where} is not supported: only local references into "
                                "#/$defs/ or #/definitions/ are", keyword="$ref", path=where)
        if ref in following:
            raise SchemaProblem(f"`$ref` {ref!r} at {where} makes the schema recursive, which the provider "
                                "does not support", keyword="$ref", path=where)
        if ref in self.followed:
            return
        parts = [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]
        target: Any = self.root
        for part in parts:
            if not isinstance(target, dict) or part not in target:
                raise SchemaProblem(f"`$ref` {ref!r} at {where} points at nothing", keyword="$ref",
                                    path=where)
            target = target[part]
        self.refs(target, parts, (*following, ref))
        self.followed.add(ref)


# --- packing --------------------------------------------------------------------------------------

PACK_ITEMS = "items"
ITEM_PATH = f"#/properties/{PACK_ITEMS}/items/properties/output"


def pack_reply_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of a packed reply: `{"items": [{"uid": ..., "output": <a document of the run's
    schema>}, ...]}`, one item per block. The same for every pack of the run (no uids in it), so the
    provider compiles it once and the run's cached prefix stays valid. The run's `$defs` /
    `definitions` move to the root, where its `$ref`s still find them."""
    output = {k: v for k, v in schema.items() if k not in (*DEFINITIONS, "$schema")}
    item = {"type": "object", "properties": {"uid": {"type": "string"}, "output": output},
            "required": ["uid", "output"], "additionalProperties": False}
    pack: dict[str, Any] = {"type": "object",
                            "properties": {PACK_ITEMS: {"type": "array", "items": item}},
                            "required": [PACK_ITEMS], "additionalProperties": False}
    for container in DEFINITIONS:
        if container in schema:
            pack[container] = schema[container]
    return pack


# --- reading answers ------------------------------------------------------------------------------

@lru_cache(maxsize=256)
def schema_of(schema_text: str) -> dict[str, Any]:
    """A run's schema from its stored text (shared: never modify it)."""
    return json.loads(schema_text)


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Draft202012Validator:
    return Draft202012Validator(schema_of(schema_text), format_checker=Draft202012Validator.FORMAT_CHECKER)


def output_invalid(reason: str, *, raw: str, base: ProviderFailure | None = None) -> ProviderFailure:
    """The block's answer is not a document of the run's schema: retried within its attempts, then
    dead-lettered with the raw text (`partial_text`)."""
    message = f"the answer is not a document of the run's schema: {reason}"
    if base is None:
        return ProviderFailure(FailureKind.OUTPUT_INVALID, OUTPUT_INVALID, message, http_status=200,
                               partial_text=raw)
    return replace(base, kind=FailureKind.OUTPUT_INVALID, code=OUTPUT_INVALID, message=message,
                   partial_text=raw or base.partial_text)


def document_of(text: str, schema_text: str) -> Any:
    """The answer as a JSON document of the schema; an OUTPUT_INVALID failure when it does not parse
    or does not validate (the first problem named, with its path)."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise output_invalid(f"not JSON ({exc})", raw=text) from None
    return checked(document, schema_text, raw=text)


def checked(document: Any, schema_text: str, *, raw: str) -> Any:
    error = best_match(_validator(schema_text).iter_errors(document))
    if error is not None:
        raise output_invalid(f"{error.message} (at {json_path(error.absolute_path)})", raw=raw)
    return document


def without_document(failure: ProviderFailure, *, packed: bool) -> ProviderFailure:
    """A call of a structured run that stopped without a document (`max_tokens`: cut; `refusal`:
    declined). Alone, the block's answer is output_invalid (retried); in a pack, the pack is split,
    as any reply that does not map back to its blocks."""
    if failure.code not in ("max_tokens", "refusal"):
        return failure
    if packed:
        return replace(failure, kind=FailureKind.OUTPUT_PROBLEM)
    reason = ("the answer stopped at max_tokens (a cut document)" if failure.code == "max_tokens"
              else "the model declined (stop_reason refusal)")
    return output_invalid(reason, raw=failure.partial_text, base=failure)
