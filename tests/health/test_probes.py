"""`/healthz` says the process serves; `/readyz` says whether the deployment can do its work, and if
not, which dependency is missing. Every failure here is real: a closed port, an unapplied migration,
a heartbeat that is too old."""

import time
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from apps.health.heartbeats import PUMP, heartbeat_record

SECRET_PASSWORD = "hunter2-not-for-anyone"


def test_healthz_answers_ok_without_touching_any_dependency(client, closed_port):
    # No `db` fixture: pytest-django fails any query. And Redis points nowhere.
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port}/0"):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_every_dependency_answers_and_the_pump_ran(client):
    heartbeat_record(PUMP, {"dispatched": 0})
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok", "migrations": "ok", "redis": "ok", "beat": "ok"}


@pytest.mark.django_db
def test_readyz_names_redis_quickly_when_it_does_not_answer(client, closed_port):
    heartbeat_record(PUMP)
    started = time.monotonic()
    with override_settings(CELERY_BROKER_URL=f"redis://:{SECRET_PASSWORD}@127.0.0.1:{closed_port}/0"):
        response = client.get("/readyz")
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["redis"]["status"] == "failing"
    assert f"127.0.0.1:{closed_port}" in checks["redis"]["error"]
    assert checks["database"]["status"] == checks["beat"]["status"] == "ok"


@pytest.mark.django_db
def test_readyz_never_shows_the_redis_password(client, closed_port):
    with override_settings(CELERY_BROKER_URL=f"redis://:{SECRET_PASSWORD}@127.0.0.1:{closed_port}/0"):
        response = client.get("/readyz")
    assert SECRET_PASSWORD not in response.content.decode()


@pytest.mark.django_db
def test_readyz_names_beat_when_the_pump_never_ran(client):
    response = client.get("/readyz")
    assert response.status_code == 503
    beat = response.json()["checks"]["beat"]
    assert beat["status"] == "failing"
    assert "never run" in beat["error"]


@pytest.mark.django_db
def test_readyz_names_beat_when_the_pump_last_ran_too_long_ago(client):
    heartbeat_record(PUMP)
    limit = settings.CONVEYOR["READY_BEAT_MAX_AGE_SECONDS"]
    with time_machine.travel(timezone.now() + timedelta(seconds=limit + 5)):
        response = client.get("/readyz")
    assert response.status_code == 503
    beat = response.json()["checks"]["beat"]
    assert beat["status"] == "failing"
    assert beat["pump_age_seconds"] > limit


@pytest.mark.django_db
def test_readyz_accepts_a_pump_within_the_configured_age(client):
    heartbeat_record(PUMP)
    with time_machine.travel(timezone.now() + timedelta(seconds=90)), \
            override_settings(CONVEYOR={**settings.CONVEYOR, "READY_BEAT_MAX_AGE_SECONDS": 120.0}):
        response = client.get("/readyz")
    assert response.status_code == 200


@pytest.fixture
def health_migrated_to_zero(transactional_db):
    """The health app's migrations unapplied for real (its table dropped), re-applied afterwards."""
    call_command("migrate", "health", "zero", verbosity=0)
    try:
        yield
    finally:
        call_command("migrate", "health", verbosity=0)


def test_readyz_names_the_unapplied_migrations(client, health_migrated_to_zero):
    response = client.get("/readyz")
    assert response.status_code == 503
    migrations = response.json()["checks"]["migrations"]
    assert migrations["status"] == "failing"
    assert "health.0001_heartbeats" in migrations["error"]


@pytest.fixture
def database_unreachable(transactional_db, closed_port):
    """This process's connection pointed at a closed port (with a password to leak), restored after."""
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(PORT=str(closed_port), PASSWORD=SECRET_PASSWORD)
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def test_readyz_names_the_database_when_postgresql_does_not_answer(client, database_unreachable):
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["status"] == "failing"
    # What reads the database says so instead of waiting for it again.
    assert checks["migrations"]["error"] == checks["beat"]["error"] == (
        "skipped: the database does not answer")
    assert SECRET_PASSWORD not in response.content.decode()


@override_settings(ALLOWED_HOSTS=["conveyor.example.com"], SECURE_SSL_REDIRECT=True)
def test_probes_answer_a_container_probe_by_address_over_plain_http(client):
    # What a probe sends: the container's own address as Host, no TLS. Other pages refuse that Host.
    assert client.get("/healthz", HTTP_HOST="10.1.2.3:8000").status_code == 200
    assert client.get("/admin/login/", HTTP_HOST="10.1.2.3:8000").status_code == 400
