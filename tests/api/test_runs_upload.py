"""POST /api/v1/runs/ as a multipart JSONL upload: streamed into the database in chunks; a bad line is
reported by number and leaves nothing half-created; oversize is a 413."""

import io
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.runs.models import Block, Run
from apps.runs.services import SubmissionError
from apps.runs.uploads import LineReader
from tests.api.helpers import error_of
from tests.factories import MODEL

URL = "/api/v1/runs/"


def jsonl(*objects: Any) -> bytes:
    return b"".join(json.dumps(obj).encode() + b"\n" for obj in objects)


def upload(client, key, content: bytes, /, **fields: Any):
    form = {"key": key.pk, "model": MODEL, **fields,
            "file": SimpleUploadedFile("blocks.jsonl", content, content_type="application/x-ndjson")}
    return client.post(URL, form, format="multipart")


def test_an_upload_creates_a_run_with_a_block_per_line(owner, offline_key, api):
    response = upload(api(owner), offline_key, jsonl({"uid": "a", "input": "one"}, {"input": "two"}))
    assert response.status_code == 201
    run = Run.objects.get()
    assert list(run.blocks.order_by("block_index").values_list("uid", "input")) == [
        ("a", "one"), ("line-2", "two")
    ]
    assert response.json()["counts"]["total"] == 2


def test_blank_lines_and_windows_line_endings_are_accepted(owner, offline_key, api):
    content = b'{"input": "one"}\r\n\r\n{"input": "two"}'
    response = upload(api(owner), offline_key, content)
    assert response.status_code == 201
    assert list(Block.objects.values_list("uid", flat=True).order_by("block_index")) == ["line-1", "line-3"]


def test_an_upload_takes_the_other_settings_as_form_fields(owner, offline_key, api):
    upload(api(owner), offline_key, jsonl({"input": "one"}), name="nightly", max_tokens="64",
           temperature="0.2",
           prompt_template="Summarise: {input}", options=json.dumps({"pack_size": 5, "cache": True}))
    run = Run.objects.get()
    assert (run.name, run.max_tokens, run.temperature, run.prompt_template) == (
        "nightly", 64, 0.2, "Summarise: {input}")
    assert run.options["pack_size"] == 5 and run.options["cache"] is True


def test_a_large_upload_is_written_in_chunks_with_every_block(owner, offline_key, api):
    content = jsonl(*({"input": f"block {i}"} for i in range(5000)))
    response = upload(api(owner), offline_key, content)
    assert response.status_code == 201
    assert Block.objects.count() == 5000
    assert Block.objects.get(block_index=4999).input == "block 4999"


@pytest.mark.parametrize(("lines", "line", "words"), [
    ([b'{"input": "ok"}', b'{"input": "ok"', b'{"input": "ok"}'], 2, "not valid JSON"),
    ([b'{"input": "ok"}', b'["a list"]'], 2, "JSON object"),
    ([b'{"input": "ok"}', b'', b'{"input": 5}'], 3, "`input` must be a string"),
    ([b'{"input": "   "}'], 1, "`input` is empty"),
    ([b'{"input": "ok", "uid": "a"}', b'{"input": "ok", "uid": "a"}'], 2, "duplicate uid"),
    ([b'{"input": "ok", "colour": "blue"}'], 1, "unknown field"),
    ([b'{"input": "ok"}', b'{"input": "caf\xe9"}'], 2, "not valid UTF-8"),
    ([b'{"input": "nul \\u0000"}'], 1, "NUL"),
    ([b'{"input": "half \\ud800 a pair"}'], 1, "surrogate"),
    ([b'{"input": "ok", "uid": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"], 1, "nested too deeply"),
], ids=["bad-json", "not-an-object", "input-type", "empty-input", "duplicate-uid", "unknown-field",
        "bad-utf8", "nul", "lone-surrogate", "deep-nesting"])
def test_a_bad_line_is_reported_by_number_and_nothing_is_created(owner, offline_key, api, lines, line, words):
    response = upload(api(owner), offline_key, b"\n".join(lines) + b"\n")
    assert response.status_code == 400
    error = error_of(response)
    assert error["line"] == line
    assert error["fields"]["file"][0].startswith(f"line {line}: ")
    assert words in error["message"]
    assert not Run.objects.exists()


def test_a_bad_line_after_thousands_of_good_ones_leaves_no_block_behind(owner, offline_key, api):
    content = jsonl(*({"input": f"block {i}"} for i in range(4500))) + b"not json\n"
    response = upload(api(owner), offline_key, content)
    assert error_of(response)["line"] == 4501
    assert not Run.objects.exists() and not Block.objects.exists()


def test_an_empty_file_is_refused(owner, offline_key, api):
    response = upload(api(owner), offline_key, b"")
    assert response.status_code == 400
    assert "file" in error_of(response)["fields"]


def test_a_file_of_only_blank_lines_is_refused_as_having_no_blocks(owner, offline_key, api):
    response = upload(api(owner), offline_key, b"\n\n  \n")
    assert response.status_code == 400
    assert error_of(response)["fields"] == {"file": ["a run needs at least one block"]}


def test_an_upload_without_a_file_is_refused(owner, offline_key, api):
    response = api(owner).post(URL, {"key": offline_key.pk, "model": MODEL}, format="multipart")
    assert response.status_code == 400
    assert "file" in error_of(response)["fields"]


def test_an_upload_with_a_stray_field_and_no_file_hears_about_both_at_once(owner, offline_key, api):
    response = api(owner).post(URL, {"key": offline_key.pk, "model": MODEL, "other": "x"}, format="multipart")
    assert response.status_code == 400
    assert error_of(response)["fields"] == {"file": ["No file was submitted."], "other": ["Unknown field."]}
    assert error_of(response)["message"] == "file: No file was submitted. (and 1 more)"


@pytest.mark.parametrize(("options", "field"), [
    ("not json", "options"),
    ("[1, 2]", "options"),
    ('{"pack_size": 0}', "options.pack_size"),
    ('{"colour": "blue"}', "options.colour"),
])
def test_upload_options_must_be_a_valid_json_object(owner, offline_key, api, options, field):
    response = upload(api(owner), offline_key, jsonl({"input": "x"}), options=options)
    assert response.status_code == 400
    assert field in error_of(response)["fields"]


@pytest.mark.parametrize(("fields", "name"), [
    ({"max_tokens": "many"}, "max_tokens"),
    ({"temperature": "2"}, "temperature"),
    ({"model": "gpt-4o"}, "model"),
    ({"key": "999999"}, "key"),
    ({"max_tokens": "100000"}, "max_tokens"),
    ({"prallelism": "4"}, "prallelism"),
])
def test_upload_form_fields_are_checked_like_json_ones(owner, offline_key, api, fields, name):
    response = upload(api(owner), offline_key, jsonl({"input": "x"}), **fields)
    assert response.status_code == 400
    assert name in error_of(response)["fields"]


def test_a_uid_with_a_control_character_is_refused_naming_its_line(owner, offline_key, api):
    response = upload(api(owner), offline_key, jsonl({"input": "x"}, {"uid": "a\x7fb", "input": "y"}))
    error = error_of(response)
    assert (error["line"], list(error["fields"])) == (2, ["file"])
    assert "line 2: `uid` contains the control character U+007F" in error["fields"]["file"][0]
    assert not Run.objects.exists()


def test_an_upload_over_the_byte_limit_is_a_413_and_is_not_read(owner, offline_key, api, settings):
    settings.MAX_UPLOAD_BYTES = 1024
    response = upload(api(owner), offline_key, jsonl(*({"input": "x" * 100} for _ in range(20))))
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    assert not Run.objects.exists()


def test_an_upload_of_more_blocks_than_the_limit_is_a_413_and_creates_nothing(owner, offline_key, api,
                                                                              settings):
    settings.MAX_UPLOAD_BLOCKS = 3
    response = upload(api(owner), offline_key, jsonl(*({"input": "x"} for _ in range(4))))
    assert response.status_code == 413
    assert "at most 3 blocks" in error_of(response)["message"]
    assert not Run.objects.exists() and not Block.objects.exists()


def test_an_upload_of_exactly_the_block_limit_is_accepted(owner, offline_key, api, settings):
    settings.MAX_UPLOAD_BLOCKS = 3
    response = upload(api(owner), offline_key, jsonl(*({"input": "x"} for _ in range(3))))
    assert response.status_code == 201


def test_a_retried_upload_with_its_idempotency_key_returns_the_first_run(owner, offline_key, api):
    client = api(owner)

    def body() -> dict:
        return {"key": offline_key.pk, "model": MODEL, "file": io.BytesIO(jsonl({"input": "x"}))}

    first = client.post(URL, body(), format="multipart", HTTP_IDEMPOTENCY_KEY="upload-1")
    again = client.post(URL, body(), format="multipart", HTTP_IDEMPOTENCY_KEY="upload-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("second", [
    {"file": jsonl({"input": "y"})},
    {"file": b"\n"},
    {"name": "other"},
], ids=["other-file", "empty-file", "other-field"])
def test_an_upload_reusing_an_idempotency_key_with_a_different_body_is_a_422(owner, offline_key, api,
                                                                            second):
    client = api(owner)
    first = {"key": offline_key.pk, "model": MODEL, "file": io.BytesIO(jsonl({"input": "x"}))}
    client.post(URL, first, format="multipart", HTTP_IDEMPOTENCY_KEY="upload-1")
    again = {"key": offline_key.pk, "model": MODEL, "file": io.BytesIO(jsonl({"input": "x"}))}
    again.update({name: io.BytesIO(value) if name == "file" else value for name, value in second.items()})
    response = client.post(URL, again, format="multipart", HTTP_IDEMPOTENCY_KEY="upload-1")
    assert response.status_code == 422
    assert error_of(response)["code"] == "idempotency_key_reused"
    assert Run.objects.count() == 1


def test_an_empty_multipart_body_reusing_an_idempotency_key_is_a_422(owner, offline_key, api):
    client = api(owner)
    first = {"key": offline_key.pk, "model": MODEL, "file": io.BytesIO(jsonl({"input": "x"}))}
    client.post(URL, first, format="multipart", HTTP_IDEMPOTENCY_KEY="upload-1")
    response = client.post(URL, {}, format="multipart", HTTP_IDEMPOTENCY_KEY="upload-1")
    assert response.status_code == 422


# --- reading lines ---------------------------------------------------------------------------------

def test_lines_split_across_read_chunks_are_joined(monkeypatch):
    monkeypatch.setattr("apps.runs.uploads.READ_SIZE", 4)
    assert list(LineReader(io.BytesIO(b"alpha\nbeta\ngamma"))) == [b"alpha", b"beta", b"gamma"]


def test_a_line_longer_than_the_limit_is_refused_with_its_number():
    reader = LineReader(io.BytesIO(b"short\n" + b"x" * 50 + b"\n"), max_line_bytes=20)
    with pytest.raises(SubmissionError) as raised:
        list(reader)
    assert raised.value.line == 2


def test_an_endless_line_is_refused_before_it_is_read_whole(monkeypatch):
    monkeypatch.setattr("apps.runs.uploads.READ_SIZE", 8)
    source = io.BytesIO(b"x" * 1000)
    with pytest.raises(SubmissionError):
        list(LineReader(source, max_line_bytes=20))
    assert source.tell() < 100


def test_form_fields_beyond_djangos_memory_limit_are_a_413(owner, offline_key, api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = upload(api(owner), offline_key, jsonl({"input": "x"}), system_prompt="s" * 200)
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
