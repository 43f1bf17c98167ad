"""Block metadata in the engine: read from the claim only for the fields a template names, reserved
against a budget with the prompt it is sent in, and checked again when a reseed names new fields."""

import pytest

from apps.runs.models import Block, Run
from apps.runs.services import BlockSpec, blocks_claim, run_create
from apps.runs.services.reseed import run_reseed
from apps.runs.services.submission import SubmissionError
from tests.api.helpers import complete
from tests.factories import MODEL

pytestmark = pytest.mark.django_db


def run_of(owner, key, metadata: list[dict | None], **settings) -> Run:
    blocks = [BlockSpec(uid=f"b{i}", input=f"text {i}", metadata=m) for i, m in enumerate(metadata)]
    return run_create(owner=owner, key=key, blocks=blocks, model=MODEL, **settings)


def test_a_claim_carries_the_metadata_a_template_names(owner, offline_key):
    run = run_of(owner, offline_key, [{"title": "A"}], prompt_template="{metadata.title}: {input}")
    assert [b.metadata for b in blocks_claim(run_id=run.pk, limit=5, worker="w").blocks] == [{"title": "A"}]


def test_a_claim_leaves_metadata_behind_when_the_template_names_none(owner, offline_key):
    run = run_of(owner, offline_key, [{"title": "A"}])
    assert [b.metadata for b in blocks_claim(run_id=run.pk, limit=5, worker="w").blocks] == [None]


def test_a_budget_reserves_the_metadata_sent_in_the_prompt(owner, offline_key):
    big = {"title": "t" * 6000}
    options = {"max_cost_usd": "10"}
    named = run_of(owner, offline_key, [big], prompt_template="{metadata.title} {input}", options=options)
    unnamed = run_of(owner, offline_key, [big], prompt_template="Title: {input}", options=options)
    blocks_claim(run_id=named.pk, limit=1, worker="w")
    blocks_claim(run_id=unnamed.pk, limit=1, worker="w")
    reserved = {run.pk: Block.objects.get(run=run).reserved_usd for run in (named, unnamed)}
    assert reserved[named.pk] > reserved[unnamed.pk] > 0


def test_a_reseed_whose_template_names_a_field_some_block_lacks_is_refused(owner, offline_key):
    run = complete(run_of(owner, offline_key, [{"title": "A"}, {"other": 1}]))
    with pytest.raises(SubmissionError, match="block 'b1' has no metadata field 'title'"):
        run_reseed(run_id=run.pk, scope="all", prompt_template="{metadata.title}: {input}")
    assert Run.objects.get(pk=run.pk).current_pass == 1


def test_a_reseed_whose_template_names_fields_every_block_has_is_accepted(owner, offline_key):
    run = complete(run_of(owner, offline_key, [{"book": {"title": "A"}}, {"book": {"title": "B"}}]))
    run = run_reseed(run_id=run.pk, scope="all", prompt_template="{metadata.book.title}: {input}")
    assert (run.current_pass, run.prompt_template) == (2, "{metadata.book.title}: {input}")


def test_a_block_without_metadata_lacks_every_field(owner, offline_key):
    run = complete(run_of(owner, offline_key, [{"title": "A"}, None]))
    with pytest.raises(SubmissionError, match="block 'b1'"):
        run_reseed(run_id=run.pk, scope="all", prompt_template="{metadata.title}: {input}")
