"""PostgreSQL connections drop a dead peer and never keep locks in a transaction left idle."""

import environ
from django.db import connection

from config.settings.database import postgres_options


def options_with(monkeypatch, **variables: str) -> dict:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return postgres_options(environ.Env())


def test_a_dead_peer_is_dropped_within_the_knobs_seconds(monkeypatch):
    options = options_with(monkeypatch, DATABASE_DEAD_PEER_SECONDS="30")
    assert options["keepalives"] == 1
    idle, interval, count = (options["keepalives_idle"], options["keepalives_interval"],
                             options["keepalives_count"])
    assert idle + interval * count <= 30


def test_a_session_idle_in_a_transaction_is_ended_after_the_knobs_seconds(monkeypatch):
    options = options_with(monkeypatch, DATABASE_IDLE_IN_TRANSACTION_SECONDS="45")
    assert options["options"] == "-c idle_in_transaction_session_timeout=45000"


def test_zero_turns_both_off(monkeypatch):
    options = options_with(monkeypatch, DATABASE_DEAD_PEER_SECONDS="0",
                           DATABASE_IDLE_IN_TRANSACTION_SECONDS="0")
    assert "keepalives" not in options and "options" not in options


def test_the_test_databases_sessions_carry_the_timeout(db):
    with connection.cursor() as cursor:
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone()[0] == "1min"
