"""Deleting a run: refused (409) while it may still work; otherwise gone from every list at once and
its rows deleted in batches by the background task, everything of it and nothing of another run."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.test import APIClient

from apps.runs.models import Run
from apps.runs.services.deletion import run_delete, run_rows_delete, runs_delete_stalled
from apps.runs.services.lifecycle import RunStateError
from tests.factories import make_run
from tests.storage_helpers import ended_run, rows_of

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_deleting_a_run_removes_everything_of_it_and_nothing_of_another(owner, offline_key):
    doomed, kept = ended_run(owner, offline_key, 7), ended_run(owner, offline_key, 5)
    before_kept = rows_of(kept.pk)
    assert rows_of(doomed.pk)["failures"] == 1 and rows_of(doomed.pk)["diagnostics"] >= 1

    run_delete(run_id=doomed.pk)
    report = run_rows_delete(run_id=doomed.pk, batch=3)  # 7 blocks: three batches

    assert report == {"blocks": 7, "batches": 3, "run": 1}
    assert set(rows_of(doomed.pk).values()) == {0}
    assert rows_of(kept.pk) == before_kept
    kept.refresh_from_db()
    assert (kept.completed_blocks, kept.failed_blocks, kept.input_tokens) == (4, 1, 500)


def test_the_api_deletes_an_ended_run_in_the_background_and_hides_it_at_once(owner, offline_key):
    run = ended_run(owner, offline_key, 3)
    client = client_for(owner)

    response = client.delete(reverse("run-detail", args=[run.pk]))

    assert response.status_code == 202, response.content
    assert client.get(reverse("run-detail", args=[run.pk])).status_code == 404
    assert str(run.pk) not in {r["id"] for r in client.get(reverse("run-list")).json()["results"]}
    assert Run.objects.filter(pk=run.pk, deleting_at__isnull=False).exists()  # the task has not run yet
    run_rows_delete(run_id=run.pk)
    assert not Run.objects.filter(pk=run.pk).exists()


def test_an_active_run_answers_409_saying_to_cancel_it_first_and_nothing_changes(owner, offline_key):
    run = make_run(owner, offline_key, ["one", "two"])

    response = client_for(owner).delete(reverse("run-detail", args=[run.pk]))

    assert response.status_code == 409
    assert "cancel it first" in response.json()["error"]["message"]
    run.refresh_from_db()
    assert run.deleting_at is None and rows_of(run.pk)["blocks"] == 2
    assert run_rows_delete(run_id=run.pk) == {"blocks": 0, "batches": 0, "run": 0}  # never unasked
    assert rows_of(run.pk)["runs"] == 1


def test_another_users_run_cannot_be_deleted(owner, outsider, offline_key):
    run = ended_run(owner, offline_key, 2)
    assert client_for(outsider).delete(reverse("run-detail", args=[run.pk])).status_code == 404
    assert Run.objects.get(pk=run.pk).deleting_at is None


def test_the_command_deletes_and_refuses_an_active_run(owner, offline_key):
    active = make_run(owner, offline_key, ["one"])
    with pytest.raises(CommandError, match="cancel it first"):
        call_command("runs", "delete", str(active.pk))
    ended = ended_run(owner, offline_key, 2)
    call_command("runs", "delete", str(ended.pk))
    assert Run.objects.get(pk=ended.pk).deleting_at is not None


def test_a_deleting_run_cannot_be_reseeded(owner, offline_key):
    run = ended_run(owner, offline_key, 2)
    run_delete(run_id=run.pk)
    from apps.runs.services.reseed import run_reseed

    with pytest.raises(RunStateError, match="being deleted"):
        run_reseed(run_id=run.pk, scope="all")


def test_a_deletion_left_half_way_is_queued_again_by_the_sweep(owner, offline_key, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    run = ended_run(owner, offline_key, 2)
    Run.objects.filter(pk=run.pk).update(deleting_at=timezone.now() - timedelta(hours=1))
    sent = []
    monkeypatch.setattr(
        "apps.runs.services.deletion.current_app.signature",
        lambda name, args: type("S", (), {"apply_async": lambda self: sent.append(args)})(),
    )
    assert runs_delete_stalled() == 1
    assert sent == [(str(run.pk),)]


def test_a_deleting_runs_failures_are_gone_from_the_api_at_once(owner, offline_key):
    run = ended_run(owner, offline_key, 3)
    client = client_for(owner)
    assert client.get(reverse("failure-list")).json()["count"] == 1
    run_delete(run_id=run.pk)
    assert client.get(reverse("failure-list")).json()["count"] == 0
