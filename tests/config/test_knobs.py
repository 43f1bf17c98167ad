"""The serving and lane knobs are read strictly: a value that is not a positive number of the right
kind stops the process, naming the knob and the value; a worker refuses to start on one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from config.celery_app import refuse_bad_knobs
from config.settings.knobs import knob, knob_problems

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["SERVE_MAX_IN_FLIGHT", "LANE_INITIAL_WINDOW", "LANE_BURST_SECONDS",
                                  "SERVE_SLICE_SECONDS", "LANE_CONCURRENCY_HEADROOM"])
@pytest.mark.parametrize("value", ["abc", "0", "-3"])
def test_a_knob_that_is_not_a_positive_number_is_refused_by_name(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=f"{name}='{value}' is not a positive"):
        knob(name, 1)


@pytest.mark.parametrize("name", ["LANE_INITIAL_WINDOW", "LANE_WINDOW_AFTER_HEADERS", "LANE_MIN_WINDOW",
                                  "SERVE_MAX_IN_FLIGHT"])
def test_a_window_or_ceiling_must_be_a_whole_number(monkeypatch, name):
    monkeypatch.setenv(name, "2.5")
    with pytest.raises(ImproperlyConfigured, match=f"{name}='2.5' is not a positive integer"):
        knob(name, 1)


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("SERVE_MAX_IN_FLIGHT", "1000", 1000), ("LANE_INITIAL_WINDOW", " 8 ", 8),
    ("LANE_BURST_SECONDS", "0.25", 0.25), ("LANE_CONCURRENCY_HEADROOM", "2", 2.0),
    ("SERVE_PROCESSES_PER_HOST", "0", 0), ("LANE_RATE_SAFETY", "1", 1.0),
])
def test_good_values_are_taken(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    assert knob(name, 1) == expected


def test_an_unset_or_empty_knob_takes_its_default(monkeypatch):
    monkeypatch.delenv("LANE_BURST_SECONDS", raising=False)
    assert knob("LANE_BURST_SECONDS", 0.5) == 0.5
    monkeypatch.setenv("LANE_BURST_SECONDS", "")
    assert knob("LANE_BURST_SECONDS", 0.5) == 0.5


def test_a_knob_that_may_be_unset_means_automatic_when_it_is(monkeypatch):
    monkeypatch.delenv("SERVE_MAX_IN_FLIGHT", raising=False)
    assert knob("SERVE_MAX_IN_FLIGHT", None) is None
    monkeypatch.setenv("SERVE_MAX_IN_FLIGHT", "-3")
    with pytest.raises(ImproperlyConfigured, match=r"SERVE_MAX_IN_FLIGHT='-3'"):
        knob("SERVE_MAX_IN_FLIGHT", None)


def test_a_share_above_one_is_refused(monkeypatch):
    monkeypatch.setenv("LANE_RATE_SAFETY", "1.5")
    with pytest.raises(ImproperlyConfigured, match=r"LANE_RATE_SAFETY='1\.5'"):
        knob("LANE_RATE_SAFETY", 0.98)


def test_the_settings_in_force_have_no_problem():
    assert knob_problems(settings.CONVEYOR) == []


def test_only_serving_and_lane_knobs_are_checked():
    conveyor = {"PUMP_INTERVAL_SECONDS": -1, "LANE_MIN_WINDOW": 0, "SERVE_MAX_IN_FLIGHT": None}
    assert knob_problems(conveyor) == ["LANE_MIN_WINDOW=0 is not a positive integer"]


def test_a_worker_with_a_bad_knob_in_its_settings_refuses_to_start_naming_it(settings):
    settings.CONVEYOR = {**settings.CONVEYOR, "LANE_WINDOW_AFTER_HEADERS": -3}
    with pytest.raises(SystemExit, match="LANE_WINDOW_AFTER_HEADERS=-3 is not a positive integer"):
        refuse_bad_knobs()


def test_a_worker_started_with_a_bad_knob_in_its_environment_stops_and_names_it(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DJANGO_READ_DOT_ENV_FILE": "false",
           "DJANGO_SETTINGS_MODULE": "config.settings.local", "LANE_INITIAL_WINDOW": "abc",
           "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}  # never reached
    result = subprocess.run([sys.executable, "-m", "celery", "-A", "config", "worker", "-c", "1"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "LANE_INITIAL_WINDOW='abc' is not a positive integer" in result.stderr
