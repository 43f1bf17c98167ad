import io

import pytest
from django.conf import settings

from apps.keys.models import ProviderKey
from apps.runs.models import Block, Run
from apps.runs.services import SubmissionError, parse_jsonl, run_create
from apps.runs.services.reseed import run_reseed
from apps.runs.services.submission import IdempotencyKeyReused, KeyInvalid
from tests.factories import MODEL

pytestmark = pytest.mark.django_db


def submit(owner, offline_key, text: bytes, **options):
    options.setdefault("model", MODEL)
    return run_create(owner=owner, key=offline_key, blocks=parse_jsonl(io.BytesIO(text)), **options)


def test_it_creates_blocks_in_line_order_with_derived_uids(owner, offline_key):
    run = submit(owner, offline_key, b'{"input": "first"}\n\n{"uid": "x", "input": "second"}\n')
    blocks = list(run.blocks.order_by("block_index").values_list("block_index", "uid", "input"))
    assert blocks == [(0, "line-1", "first"), (1, "x", "second")]
    assert run.total_blocks == 2
    assert run.status == "queued"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"input": "ok"}\nnot json\n', "line 2: is not valid JSON"),
        (b'["input"]\n', "line 1: a block must be a JSON object"),
        (b'{"uid": "a", "input": "x"}\n{"uid": "a", "input": "y"}\n', "line 2: duplicate uid 'a'"),
        (b'{"input": "   "}\n', "line 1: `input` is empty"),
        (b'{"input": 5}\n', "line 1: `input` must be a string"),
        (b'{"input": "x", "colour": "red"}\n', "line 1: unknown field(s) colour"),
        (b'{"input": "ok"}\n{"input": "caf\xe9"}\n', "line 2: is not valid UTF-8"),
    ],
)
def test_bad_lines_are_reported_by_line_and_nothing_is_created(owner, offline_key, text, message):
    with pytest.raises(SubmissionError) as excinfo:
        submit(owner, offline_key, text)
    assert str(excinfo.value).startswith(message)
    assert Run.objects.count() == 0
    assert Block.objects.count() == 0


def test_a_run_with_zero_blocks_is_refused(owner, offline_key):
    with pytest.raises(SubmissionError, match="at least one block"):
        submit(owner, offline_key, b"\n\n")
    assert Run.objects.count() == 0


def test_an_unknown_model_is_refused_naming_the_field(owner, offline_key):
    with pytest.raises(SubmissionError) as excinfo:
        submit(owner, offline_key, b'{"input": "x"}\n', model="claude-imaginary-9")
    assert excinfo.value.field == "model"
    assert Run.objects.count() == 0


def test_another_users_key_cannot_be_used(owner, outsider, offline_key):
    with pytest.raises(SubmissionError) as excinfo:
        submit(outsider, offline_key, b'{"input": "x"}\n')
    assert excinfo.value.field == "key"


def test_the_same_idempotency_key_returns_the_first_run(owner, offline_key):
    first = submit(owner, offline_key, b'{"input": "x"}\n', idempotency_key="abc")
    again = submit(owner, offline_key, b'{"input": "x"}\n', idempotency_key="abc")
    assert again.pk == first.pk
    assert Run.objects.count() == 1


def test_the_run_is_stamped_with_pipeline_and_prompt_versions(owner, offline_key):
    a = submit(owner, offline_key, b'{"input": "x"}\n', system_prompt="Grade it.")
    b = submit(owner, offline_key, b'{"input": "x"}\n', system_prompt="Grade it kindly.")
    assert a.pipeline_version == settings.CONVEYOR["PIPELINE_VERSION"]
    assert a.prompt_version != b.prompt_version
    assert a.blocks.get().prompt_version == a.prompt_version


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b'{"input": "nul \\u0000 here"}\n', "line 1: `input` contains a NUL"),
        (b'{"input": "half \\ud800 pair"}\n', "line 1: `input` contains a NUL or an unpaired"),
        (b"[" * 100_000 + b"\n", "line 1: is nested too deeply"),
    ],
)
def test_text_postgresql_cannot_store_is_refused_by_line(owner, offline_key, text, message):
    with pytest.raises(SubmissionError) as excinfo:
        submit(owner, offline_key, text)
    assert str(excinfo.value).startswith(message)
    assert Run.objects.count() == 0


def test_a_key_whose_validation_failed_is_refused_before_anything_is_stored(owner, offline_key):
    ProviderKey.objects.filter(pk=offline_key.pk).update(is_valid=False, validation_error="revoked")
    offline_key.refresh_from_db()
    with pytest.raises(KeyInvalid, match="key is invalid: revoked"):
        submit(owner, offline_key, b'{"input": "x"}\n')
    assert Run.objects.count() == 0


def test_the_same_idempotency_key_with_another_request_fingerprint_is_refused(owner, offline_key):
    submit(owner, offline_key, b'{"input": "x"}\n', idempotency_key="abc", request_fingerprint="f1")
    with pytest.raises(IdempotencyKeyReused):
        submit(owner, offline_key, b'{"input": "x"}\n', idempotency_key="abc", request_fingerprint="f2")


def test_a_reseed_onto_a_model_that_cannot_write_max_tokens_is_refused(owner, offline_key):
    run = submit(owner, offline_key, b'{"input": "x"}\n', model="claude-sonnet-4-6", max_tokens=100_000)
    Run.objects.filter(pk=run.pk).update(status="complete")
    with pytest.raises(SubmissionError) as excinfo:
        run_reseed(run_id=run.pk, scope="all", model="claude-haiku-4-5")
    assert excinfo.value.field == "max_tokens"
