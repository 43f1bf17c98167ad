"""Key pools and model fallback (issue 22): the serving loop against the mock provider over HTTP,
through the real SDK, in this process."""

import threading
import time
from collections.abc import Iterator

import pytest
from django.db.models import Sum

from apps.keys.models import ProviderKey
from apps.runs.models import Attempt, Run, RunKey
from apps.runs.selectors import run_keys_usage, run_models_usage
from mock_provider.testing import MockHandle, running_mock
from tests.factories import make_key, make_run
from tests.runs.helpers import serve, serve_until_settled

pytestmark = pytest.mark.django_db(transaction=True)

SECRETS = ("sk-ant-pool-aaaa-1111", "sk-ant-pool-bbbb-2222", "sk-ant-pool-cccc-3333")
FALLBACK = "claude-sonnet-4-6"
PREFIX = "Grade with care. " * 1200  # about 5,000 tokens: above Haiku 4.5's 4,096 minimum


@pytest.fixture
def pool_mock() -> Iterator[MockHandle]:
    with running_mock(api_keys=list(SECRETS)) as handle:
        yield handle


@pytest.fixture
def keys(owner, pool_mock: MockHandle) -> list[ProviderKey]:
    return [
        make_key(owner, base_url=pool_mock.base_url, secret=secret, label=f"k{i}")
        for i, secret in enumerate(SECRETS)
    ]


def calls_per_key(run: Run) -> dict[int, int]:
    return {row["key"]: row["calls"] for row in run_keys_usage(run=run)}


def test_a_run_over_three_keys_spreads_its_calls_over_all_of_them(owner, keys):
    run = serve_until_settled(
        make_run(owner, None, [f"essay {i}" for i in range(60)], keys=keys, parallelism=12)
    )
    assert (run.status, run.completed_blocks, run.failed_blocks) == ("complete", 60, 0)
    per_key = calls_per_key(run)
    assert set(per_key) == {key.pk for key in keys}
    assert all(n > 0 for n in per_key.values()), per_key
    # Every attempt says which key it used.
    assert not Attempt.objects.filter(run=run, key__isnull=True).exists()


def test_a_key_refused_before_its_first_call_leaves_the_pool_and_the_run_completes(owner, keys, pool_mock):
    pool_mock.configure(api_keys=[SECRETS[0], SECRETS[2]])  # the second key is revoked at the provider
    run = serve_until_settled(
        make_run(owner, None, [f"essay {i}" for i in range(30)], keys=keys, parallelism=6)
    )
    assert (run.status, run.completed_blocks, run.failed_blocks) == ("complete", 30, 0)
    revoked = RunKey.objects.get(run=run, key=keys[1])
    assert (revoked.state, revoked.left_cause) == ("left", "key_rejected")
    keys[1].refresh_from_db()
    assert keys[1].is_valid is False
    assert RunKey.objects.filter(run=run, state="active").count() == 2


def test_a_key_revoked_mid_run_leaves_the_pool_and_the_run_completes_on_the_others(owner, keys, pool_mock):
    pool_mock.configure(latency_ms=40)
    run = make_run(owner, None, [f"essay {i}" for i in range(120)], keys=keys, parallelism=6)
    revoked = threading.Event()

    def revoke_when_a_third_is_done() -> None:
        from django.db import connection

        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if Run.objects.get(pk=run.pk).completed_blocks >= 40:
                    pool_mock.configure(api_keys=[SECRETS[0], SECRETS[2]])
                    revoked.set()
                    return
                time.sleep(0.05)
        finally:
            connection.close()

    watcher = threading.Thread(target=revoke_when_a_third_is_done, daemon=True)
    watcher.start()
    serve(slice_seconds=60)
    watcher.join(5)
    run = serve_until_settled(run)
    assert revoked.is_set()
    assert (run.status, run.completed_blocks, run.failed_blocks) == ("complete", 120, 0)
    left = RunKey.objects.get(run=run, key=keys[1])
    assert (left.state, left.left_cause) == ("left", "key_rejected")
    # The revoked key carried part of the run before it was refused.
    assert Attempt.objects.filter(run=run, key=keys[1], outcome="succeeded").exists()


def test_the_run_pauses_only_when_no_key_of_its_pool_is_left(owner, keys, pool_mock):
    pool_mock.configure(api_keys=["sk-ant-nobody-0000"])
    run = serve_until_settled(
        make_run(owner, None, [f"essay {i}" for i in range(10)], keys=keys, parallelism=3)
    )
    assert (run.status, run.paused_cause) == ("paused", "key_rejected")
    assert run.failed_blocks == 0
    assert RunKey.objects.filter(run=run, state="active").count() == 0


def test_a_key_that_validates_again_rejoins_the_pool_and_resumes_the_run(owner, keys, pool_mock):
    from apps.runs.services.lifecycle import runs_resume_for_key

    pool_mock.configure(api_keys=["sk-ant-nobody-0000"])
    run = serve_until_settled(
        make_run(owner, None, [f"essay {i}" for i in range(6)], keys=keys[:2], parallelism=2)
    )
    assert run.status == "paused"
    pool_mock.configure(api_keys=[SECRETS[1]])
    assert runs_resume_for_key(key_id=keys[1].pk) == 1  # what key_validated does
    run = serve_until_settled(run)
    assert (run.status, run.completed_blocks) == ("complete", 6)
    assert RunKey.objects.get(run=run, key=keys[1]).state == "active"
    assert RunKey.objects.get(run=run, key=keys[0]).state == "left"


def test_a_model_answering_404_sends_its_blocks_to_the_fallback_with_cost_per_model(owner, keys, pool_mock):
    pool_mock.configure(models_not_found=["claude-haiku-4-5"])
    run = serve_until_settled(
        make_run(owner, None, [f"essay {i}" for i in range(8)], keys=keys[:1], fallback_models=[FALLBACK])
    )
    assert (run.status, run.completed_blocks, run.failed_blocks) == ("complete", 8, 0)
    assert set(run.blocks.values_list("model_index", flat=True)) == {1}
    models = {row["model"]: row for row in run_models_usage(run=run)}
    primary = models["claude-haiku-4-5"]
    assert (primary["calls"], primary["blocks_answered"], primary["cost_usd"]) == (8, 0, 0)
    answered = sum(row["blocks_answered"] for model, row in models.items() if model.startswith(FALLBACK))
    assert answered == 8
    fallback_cost = sum(row["cost_usd"] for model, row in models.items() if model.startswith(FALLBACK))
    assert fallback_cost == run.cost_usd > 0
    # The fallback was priced as itself: sonnet costs more per token than haiku.
    from apps.providers.usage import TokenUsage, cost_usd

    usage = Attempt.objects.filter(run=run, outcome="succeeded").aggregate(
        i=Sum("input_tokens"), o=Sum("output_tokens")
    )
    assert fallback_cost == cost_usd(FALLBACK, TokenUsage(input_tokens=usage["i"], output_tokens=usage["o"]))
    # The move is on each block's record: a retry naming both models, then the answer.
    first = Attempt.objects.filter(run=run).order_by("id").first()
    assert "moved to claude-sonnet-4-6" in first.error_message


def test_without_a_fallback_a_model_answering_404_fails_its_blocks_as_before(owner, keys, pool_mock):
    pool_mock.configure(models_not_found=["claude-haiku-4-5"])
    run = serve_until_settled(make_run(owner, None, ["essay"], keys=keys[:1]))
    assert (run.status, run.failed_blocks) == ("complete", 1)


def test_a_pool_with_room_on_its_warm_key_writes_the_prefix_once(owner, keys, pool_mock):
    run = serve_until_settled(
        make_run(
            owner,
            None,
            [f"essay {i}" for i in range(30)],
            keys=keys,
            system_prompt=PREFIX,
            parallelism=4,
            options={"cache": True},
        )
    )
    assert (run.status, run.completed_blocks) == ("complete", 30)
    assert Attempt.objects.filter(run=run, cache_creation_input_tokens__gt=0).count() == 1
    assert [row["key"] for row in run_keys_usage(run=run) if row["calls"]] == [keys[0].pk]
    assert run.cache_read_input_tokens > 0


def test_a_pool_whose_warm_key_is_full_warms_each_other_key_once(owner, keys, pool_mock):
    pool_mock.configure(rpm=240)  # per key: one key cannot carry the run alone
    run = serve_until_settled(
        make_run(
            owner,
            None,
            [f"essay {i}" for i in range(60)],
            keys=keys,
            system_prompt=PREFIX,
            parallelism=12,
            options={"cache": True},
        )
    )
    assert (run.status, run.completed_blocks, run.failed_blocks) == ("complete", 60, 0)
    used = [row for row in run_keys_usage(run=run) if row["calls"]]
    assert len(used) >= 2, used
    for row in used:  # each key's workspace written once, never once per call
        writing = Attempt.objects.filter(run=run, key_id=row["key"], cache_creation_input_tokens__gt=0)
        assert writing.count() == 1, row
        assert RunKey.objects.get(run=run, key_id=row["key"]).cache_warmed
    assert run.cache_read_input_tokens > 0


def test_a_run_resumed_by_hand_takes_its_keys_back_into_the_pool(owner, keys, pool_mock):
    from apps.runs.services.lifecycle import run_resume

    pool_mock.configure(api_keys=["sk-ant-nobody-0000"])
    run = serve_until_settled(make_run(owner, None, ["a", "b"], keys=keys[:2], parallelism=2))
    assert run.status == "paused"
    pool_mock.configure(api_keys=list(SECRETS))
    run_resume(run_id=run.pk)
    assert RunKey.objects.filter(run=run, state="active").count() == 2
    run = serve_until_settled(run)
    assert (run.status, run.completed_blocks) == ("complete", 2)
