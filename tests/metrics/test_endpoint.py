"""GET /metrics: Prometheus's text format behind a bearer token; absent when no token is configured;
every family there from the first scrape; no secret in it."""

import pytest
from django.test import Client

from tests.factories import SECRET, make_key, make_run

pytestmark = pytest.mark.django_db

FAMILIES = {
    # gauges, read at scrape time
    "conveyor_runs", "conveyor_runs_paused", "conveyor_runs_caching", "conveyor_runs_stalled",
    "conveyor_runs_cache_not_hitting",
    "conveyor_blocks", "conveyor_dead_letters", "conveyor_keys", "conveyor_pump_lag_seconds",
    "conveyor_lane_throttled", "conveyor_lane_overloaded", "conveyor_lane_rate_rpm",
    "conveyor_lane_in_flight", "conveyor_lane_window", "conveyor_lane_useful_concurrency",
    "conveyor_lane_ceiling_bound",
    "conveyor_metrics_source_up",
    # counters and the histogram, added up by the workers
    "conveyor_blocks_finished", "conveyor_provider_calls", "conveyor_provider_refusals",
    "conveyor_tokens", "conveyor_cost_usd", "conveyor_packs", "conveyor_pack_splits",
    "conveyor_provider_call_duration_seconds",
}


def test_without_a_configured_token_metrics_is_not_found(settings):
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics").status_code == 404


def test_without_a_configured_token_metrics_says_in_plain_text_how_to_turn_it_on(settings):
    settings.METRICS_TOKEN = ""
    response = Client().get("/metrics")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "set METRICS_TOKEN" in response.content.decode()
    assert "Authorization: Bearer <METRICS_TOKEN>" in response.content.decode()


def test_a_request_without_the_token_is_refused(metrics_token):
    response = Client().get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"conveyor_" not in response.content


def test_a_wrong_token_is_refused(metrics_token):
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}x")
    assert response.status_code == 401


def test_the_token_in_another_scheme_is_refused(metrics_token):
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Token {metrics_token}")
    assert response.status_code == 401


def test_with_the_token_it_answers_in_the_prometheus_text_format(metrics_token):
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"] or "no-store" in response["Cache-Control"]


def test_every_family_is_there_before_anything_happened(scrape):
    assert set(scrape().families) >= FAMILIES


def test_every_family_is_prefixed_conveyor(scrape):
    assert all(name.startswith("conveyor_") for name in scrape().families)


def test_both_sources_are_up(scrape):
    result = scrape()
    assert result.value("conveyor_metrics_source_up", source="postgres") == 1
    assert result.value("conveyor_metrics_source_up", source="redis") == 1


def test_no_key_secret_or_key_label_appears(owner, scrape):
    key = make_key(owner, label="team-secret-label")
    make_run(owner, key, ["x"])
    text = scrape().text
    assert SECRET not in text
    assert "team-secret-label" not in text
