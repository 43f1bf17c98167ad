"""Cache warm-up per pass: a caching run's first call goes alone and the rest fan out once it has
answered; a reseed that changes the cached prefix (another prompt or model), or comes after the cache
expired, warms again; one with the same prefix while the cache is warm fans out at once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.runs.caching import prefix_sha256
from apps.runs.models import Attempt, Block, Run, RunStatus
from apps.runs.services.reseed import run_reseed
from tests.api.helpers import record_attempt, set_status
from tests.factories import make_run
from tests.runs.helpers import serve_until_settled

RUBRIC = "Grade with care. " * 1200  # about 5,000 tokens: above Haiku 4.5's 4,096 minimum
OTHER_RUBRIC = "Grade strictly, citing the text. " * 700


def cache_writes_and_reads(run: Run, pass_number: int) -> tuple[int, int]:
    attempts = Attempt.objects.filter(run=run, pass_number=pass_number)
    return (attempts.filter(cache_creation_input_tokens__gt=0).count(),
            attempts.filter(cache_read_input_tokens__gt=0).count())


@pytest.mark.django_db(transaction=True)
def test_a_reseed_with_another_system_prompt_warms_the_cache_again_before_fanning_out(owner, mock_key):
    run = serve_until_settled(make_run(owner, mock_key, [f"essay {i}" for i in range(16)], parallelism=16,
                                       system_prompt=RUBRIC, options={"cache": True}))
    assert cache_writes_and_reads(run, 1) == (1, 15)
    run = run_reseed(run_id=run.pk, scope="all", system_prompt=OTHER_RUBRIC)
    assert not run.cache_warmed
    run = serve_until_settled(run)
    assert run.status == "complete" and run.cache_warmed
    assert cache_writes_and_reads(run, 2) == (1, 15)
    assert run.cache_prefix_sha256 == prefix_sha256(run.call_spec, packed=False)


# --- when a new pass warms again -------------------------------------------------------------------

@pytest.fixture
def warmed(owner, offline_key) -> Run:
    """A caching run that ended a minute ago, its cache warmed for its prefix."""
    run = make_run(owner, offline_key, ["a", "b"], system_prompt=RUBRIC, options={"cache": True})
    record_attempt(Block.objects.get(run=run, uid="b0"), request_id="req_1")
    Attempt.objects.filter(run=run).update(created_at=timezone.now() - timedelta(minutes=1))
    return set_status(run, RunStatus.COMPLETE, cache_warmed=True,
                      cache_prefix_sha256=prefix_sha256(run.call_spec, packed=False))


@pytest.mark.django_db
def test_a_reseed_with_the_same_prefix_while_the_cache_is_warm_fans_out_at_once(warmed):
    assert run_reseed(run_id=warmed.pk, scope="all").cache_warmed


@pytest.mark.django_db
@pytest.mark.parametrize("change", [{"model": "claude-sonnet-4-6"}, {"system_prompt": OTHER_RUBRIC},
                                    {"prompt_template": "Essay:\n{input}"}])
def test_a_reseed_that_changes_the_cached_prefix_warms_again(warmed, change):
    assert not run_reseed(run_id=warmed.pk, scope="all", **change).cache_warmed


@pytest.mark.django_db
def test_a_reseed_after_the_cache_expired_warms_again(warmed):
    Attempt.objects.filter(run=warmed).update(created_at=timezone.now() - timedelta(minutes=6))
    assert not run_reseed(run_id=warmed.pk, scope="all").cache_warmed
