"""A run's mode: live, batch, or auto from its deadline; bad combinations refused before anything is
created."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.runs.models import Run
from tests.api.test_runs_create import URL, payload

pytestmark = pytest.mark.django_db


def create(api, owner, key, **fields):
    return api(owner).post(URL, payload(key, **fields), format="json")


def test_a_run_asked_for_in_batch_mode_uses_batches_at_half_the_estimated_price(owner, offline_key, api):
    live = create(api, owner, offline_key).json()
    batch = create(api, owner, offline_key, mode="batch").json()
    assert (batch["mode"], batch["effective_mode"]) == ("batch", "batch")
    assert float(batch["estimate"]["cost_usd"]["high"]) == pytest.approx(
        float(live["estimate"]["cost_usd"]["high"]) / 2, rel=1e-6)


def test_auto_with_a_deadline_days_away_goes_batch_and_says_what_it_saves(owner, offline_key, api):
    body = create(api, owner, offline_key, mode="auto",
                  deadline=(timezone.now() + timedelta(days=3)).isoformat()).json()
    assert body["effective_mode"] == "batch"
    assert "batch (half price" in body["mode_reason"] and "instead of" in body["mode_reason"]


def test_auto_with_a_deadline_within_the_day_goes_live(owner, offline_key, api):
    body = create(api, owner, offline_key, mode="auto",
                  deadline=(timezone.now() + timedelta(hours=3)).isoformat()).json()
    assert (body["effective_mode"], body["mode_reason"].startswith("auto: deadline in 3")) == ("live", True)


@pytest.mark.parametrize(("fields", "field"), [
    ({"mode": "auto"}, "deadline"),
    ({"mode": "weekly"}, "mode"),
    ({"mode": "batch", "options": {"stream": True}}, "options.stream"),
    ({"mode": "auto", "deadline": "2001-01-01T00:00:00Z"}, "deadline"),
])
def test_a_mode_that_cannot_work_is_refused_and_nothing_is_created(owner, offline_key, api, fields, field):
    response = create(api, owner, offline_key, **fields)
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert not Run.objects.exists()
