"""Structured outputs: `output_config.format` (and the deprecated top-level `output_format`) read and
checked as the API checks them, and a deterministic document that conforms to the schema.

Checks (a 400 `invalid_request_error` naming the path): `format.type` must be `json_schema` with an
object `schema`; every object must set `additionalProperties: false`; no numeric or string-length
bounds, no array bounds but `minItems` 0 or 1, no `oneOf` / `not` / conditionals, no string `format`
outside the documented set, no external or recursive `$ref`.

The document is a function of the schema and one text only (directives removed, whitespace collapsed):
each value is derived from the text and the name of the property that holds it, so the same field of
the same text gets the same value wherever it sits. Strings are a run of the text's words, from a
capitalised one when there is any (or, for a `format` or a `pattern`, a value of that shape); numbers
are one of the text's numbers (else from a hash); booleans come from a hash; `enum` picks one of its
values, `anyOf` takes its first non-null branch, arrays hold one or two items (at least
`minItems`). Every property of an object is present.

Packed calls (`<block uid>` elements in the last user message): the first array of objects in the
schema holds one item per block (in block order, less the uids a `drop_uid` directive removed), each
derived from its block's text, with a string property named `uid` set to the block's uid. So a block's
`output` in a pack is the document it gets alone whenever its text is the same (Conveyor's pack reply
schema, `{"items": [{"uid", "output"}]}`).
"""

import hashlib
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from re import _parser as sre_parse  # type: ignore[attr-defined, unused-ignore]  # private: stubs may omit it
from typing import Any

from mock_provider.errors import invalid_request

SUPPORTED_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "uri",
                               "ipv4", "ipv6", "uuid"})
UNSUPPORTED = frozenset({
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength",
    "maxItems", "uniqueItems", "prefixItems", "contains", "minContains", "maxContains", "unevaluatedItems",
    "oneOf", "not", "if", "then", "else", "dependentSchemas", "dependentRequired", "patternProperties",
    "propertyNames", "minProperties", "maxProperties", "unevaluatedProperties",
})
DEFINITIONS = ("$defs", "definitions")
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
MAX_REPEAT = 4


def output_schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """The request's JSON Schema for the answer, checked; None without one."""
    config = body.get("output_config")
    path = "output_config.format"
    if config is not None:
        if not isinstance(config, dict):
            raise invalid_request("output_config: Input should be a valid dictionary")
        fmt = config.get("format")
    else:
        fmt, path = body.get("output_format"), "output_format"  # the beta's shape, still accepted
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise invalid_request(f"{path}: Input should be a valid dictionary")
    if fmt.get("type") != "json_schema":
        raise invalid_request(f"{path}.type: Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise invalid_request(f"{path}.schema: Input should be a valid dictionary")
    _check(schema, schema, f"{path}.schema", ())
    return schema


def _check(node: Any, root: dict[str, Any], path: str, following: tuple[str, ...]) -> None:
    if not isinstance(node, dict):
        raise invalid_request(f"{path}: Input should be a valid dictionary")
    for keyword in node:
        if keyword in UNSUPPORTED:
            raise invalid_request(f"{path}: the '{keyword}' keyword is not supported for structured outputs")
    types = node.get("type")
    types = {types} if isinstance(types, str) else set(types or ())
    if ("object" in types or "properties" in node) and node.get("additionalProperties") is not False:
        raise invalid_request(f"{path}: 'additionalProperties' must be explicitly set to false for objects")
    if node.get("minItems", 0) not in (0, 1):
        raise invalid_request(f"{path}: 'minItems' values other than 0 and 1 are not supported")
    if "format" in node and node["format"] not in SUPPORTED_FORMATS:
        raise invalid_request(f"{path}: the string format '{node['format']}' is not supported")
    if "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise invalid_request(f"{path}: only local '$ref' values are supported")
        if ref in following:
            raise invalid_request(f"{path}: recursive schemas are not supported")
        _check(_resolve(node, root), root, path, (*following, ref))
    for name, prop in (node.get("properties") or {}).items():
        _check(prop, root, f"{path}.properties.{name}", following)
    if "items" in node:
        _check(node["items"], root, f"{path}.items", following)
    for keyword in ("anyOf", "allOf"):
        for i, part in enumerate(node.get(keyword) or ()):
            _check(part, root, f"{path}.{keyword}.{i}", following)
    if not following and node is root:
        for container in DEFINITIONS:
            for name, definition in (node.get(container) or {}).items():
                _check(definition, root, f"{path}.{container}.{name}", following)


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    for _ in range(32):
        if not isinstance(node, dict) or "$ref" not in node:
            return node
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or part not in target:
                raise invalid_request(f"$ref {node['$ref']!r}: no such definition")
            target = target[part]
        node = target
    raise invalid_request("recursive schemas are not supported")


# --- the document ---------------------------------------------------------------------------------

def _digest(text: str, name: str) -> bytes:
    return hashlib.sha256(f"{name}\x00{text}".encode()).digest()


def _number(text: str, name: str) -> int:
    return int.from_bytes(_digest(text, name)[:8], "big")


def _words(text: str, name: str) -> str:
    """One to three words of the text, from a capitalised one when there is any (names read better)."""
    words = [w.strip(".,;:!?()\"'") for w in text.split()]
    words = [w for w in words if w]
    if not words:
        return name or "empty"
    seed = _number(text, name)
    starts = [i for i, w in enumerate(words) if w[0].isupper()] or list(range(len(words)))
    start, length = starts[seed % len(starts)], 1 + (seed >> 16) % 3
    return " ".join(words[start:start + length])


NUMBER_RE = re.compile(r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?<![\w.])-?\d+(?:\.\d+)?")


def _numbers(text: str) -> list[float]:
    return [float(m.group(0).replace(",", "")) for m in NUMBER_RE.finditer(text)]


def _a_number(text: str, name: str, *, integer: bool) -> float | int:
    """One of the text's numbers when it has any (chosen by the hash), else one from the hash."""
    seed = _number(text, name)
    found = [n for n in _numbers(text) if not integer or n.is_integer()]
    if found:
        value = found[seed % len(found)]
        return int(value) if integer else value
    return seed % 100 if integer else round((seed % 100_000) / 100, 2)


def _slug(text: str, name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", _words(text, name).lower())[:20] or "x"


def _formatted(fmt: str, text: str, name: str) -> str:
    seed = _number(text, name)
    moment = EPOCH + timedelta(seconds=seed % (6 * 365 * 86_400))
    return {
        "date-time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "date": moment.strftime("%Y-%m-%d"),
        "time": moment.strftime("%H:%M:%SZ"),
        "duration": f"PT{1 + seed % 59}M",
        "email": f"{_slug(text, name)}@example.com",
        "hostname": f"{_slug(text, name)}.example.com",
        "uri": f"https://example.com/{_slug(text, name)}",
        "ipv4": f"192.0.2.{1 + seed % 254}",
        "ipv6": f"2001:db8::{seed % 65_535:x}",
        "uuid": str(uuid.UUID(bytes=_digest(text, name)[:16])),
    }.get(fmt, _words(text, name))


def _matching(pattern: str, text: str, name: str) -> str:
    """A string the regular expression matches (the provider's subset: no lookaround, no
    backreferences), chosen from the text's hash; the words of the text if the pattern is beyond it."""
    seed = _number(text, name)

    def pick(options: int) -> int:
        nonlocal seed
        seed = (seed * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return (seed >> 33) % max(1, options)

    def chars(items: list[Any]) -> list[str]:
        out: list[str] = []
        negate = False
        for op, arg in items:
            if op == sre_parse.NEGATE:
                negate = True
            elif op == sre_parse.LITERAL:
                out.append(chr(arg))
            elif op == sre_parse.RANGE:
                out.extend(chr(c) for c in range(arg[0], min(arg[1], arg[0] + 64) + 1))
            elif op == sre_parse.CATEGORY:
                out.extend(_CATEGORIES.get(arg, "a"))
        if negate:
            out = [c for c in "abcdefghijklmnopqrstuvwxyz0123456789" if c not in out]
        return out or ["a"]

    def emit(parsed: Any) -> str:
        result = []
        for op, arg in parsed:
            if op == sre_parse.LITERAL:
                result.append(chr(arg))
            elif op == sre_parse.NOT_LITERAL:
                result.append("a" if chr(arg) != "a" else "b")
            elif op == sre_parse.ANY:
                result.append("x")
            elif op == sre_parse.IN:
                options = chars(arg)
                result.append(options[pick(len(options))])
            elif op == sre_parse.CATEGORY:
                options = list(_CATEGORIES.get(arg, "a"))
                result.append(options[pick(len(options))])
            elif op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT):
                low, high, inner = arg
                high = low + MAX_REPEAT if high == sre_parse.MAXREPEAT else min(high, low + MAX_REPEAT)
                result.extend(emit(inner) for _ in range(low + pick(high - low + 1)))
            elif op == sre_parse.SUBPATTERN:
                result.append(emit(arg[-1]))
            elif op == sre_parse.BRANCH:
                branches = arg[1]
                result.append(emit(branches[pick(len(branches))]))
            elif op == sre_parse.AT:
                continue
            else:
                raise ValueError(op)
        return "".join(result)

    try:
        value = emit(sre_parse.parse(pattern))
    except (ValueError, TypeError, re.error):
        return _words(text, name)
    return value if re.search(pattern, value) else _words(text, name)


_CATEGORIES = {
    sre_parse.CATEGORY_DIGIT: "0123456789",
    sre_parse.CATEGORY_WORD: "abcdefghijklmnopqrstuvwxyz0123456789_",
    sre_parse.CATEGORY_SPACE: " ",
    sre_parse.CATEGORY_NOT_DIGIT: "abcdefghij",
    sre_parse.CATEGORY_NOT_WORD: "-",
    sre_parse.CATEGORY_NOT_SPACE: "abcdefghij",
}


def _merged(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """A schema with its allOf parts folded in (properties and required joined)."""
    merged = {k: v for k, v in node.items() if k != "allOf"}
    for part in node.get("allOf") or ():
        part = _resolve(part, root)
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def document(schema: Any, root: dict[str, Any], text: str, name: str = "",
             blocks: list[tuple[str, str]] | None = None) -> Any:
    """A value of `schema` derived from `text` (see the module's doc). `blocks`: a packed call's
    (uid, text) pairs, given to the first array of objects met."""
    node = _merged(_resolve(schema, root), root)
    if "const" in node:
        return node["const"]
    if node.get("enum"):
        values = node["enum"]
        return values[_number(text, name) % len(values)]
    if node.get("anyOf"):
        branches = node["anyOf"]
        chosen = next((b for b in branches if _resolve(b, root).get("type") != "null"), branches[0])
        return document(chosen, root, text, name, blocks)
    types = node.get("type")
    if not types:
        types = ["object" if "properties" in node else "string"]
    types = [types] if isinstance(types, str) else list(types)
    kind = next((t for t in types if t != "null"), "null")
    if kind == "object":
        properties = node.get("properties") or {}
        return {prop: document(sub, root, text, prop, blocks) for prop, sub in properties.items()}
    if kind == "array":
        items = node.get("items", {})
        if blocks is not None and _resolve(items, root).get("type") == "object":
            return [_pack_item(items, root, uid, inner) for uid, inner in blocks]
        count = max(node.get("minItems", 0), 1 + _number(text, name) % 2)
        return [document(items, root, text, f"{name}.{i}") for i in range(count)]
    if kind == "string":
        if "format" in node:
            return _formatted(node["format"], text, name)
        if "pattern" in node:
            return _matching(node["pattern"], text, name)
        return _words(text, name)
    if kind == "integer":
        return _a_number(text, name, integer=True)
    if kind == "number":
        return _a_number(text, name, integer=False)
    if kind == "boolean":
        return _number(text, name) % 2 == 0
    return None


def _pack_item(items: Any, root: dict[str, Any], uid: str, text: str) -> Any:
    node = _merged(_resolve(items, root), root)
    return {prop: uid if prop == "uid" and _resolve(sub, root).get("type") == "string"
            else document(sub, root, text, prop)
            for prop, sub in (node.get("properties") or {}).items()}


def document_text(schema: dict[str, Any], text: str, blocks: list[tuple[str, str]] | None = None) -> str:
    """The answer as the model writes it: the document as JSON."""
    return json.dumps(document(schema, schema, text, "", blocks), ensure_ascii=False)
