"""deploy/prometheus/alerts.yml and deploy/grafana/conveyor.json: valid, complete, and written against
the families /metrics really exposes (scraped here, with a sample in every family)."""

import json
import re
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from apps.counters.recording import (
    metrics_flush,
    record_block_finished,
    record_call,
    record_pack,
    record_split,
    record_usage,
)
from apps.providers.errors import FailureKind, ProviderFailure
from apps.providers.usage import TokenUsage
from tests.factories import MODEL

pytestmark = pytest.mark.django_db

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "conveyor.json"
REQUIRED_ALERTS = {"LLMPromptCacheLowHitRate", "ConveyorRunCacheNotHitting", "ConveyorDeadLetterGrowing",
                   "ConveyorRunStalled", "ConveyorKeyInvalid", "ConveyorRunPausedOnBudget"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
# `name{label="v", other=~"x|y"}`: a metric name and its label matchers.
SELECTOR = re.compile(r"\b(conveyor_[a-z0-9_]+)\b(\{[^}]*\})?")
MATCHER = re.compile(r"([a-z_]+)\s*(?:=~|!~|!=|=)")


@pytest.fixture
def exposed(owner, offline_key, scrape) -> dict[str, set[str]]:
    """Sample name -> the label names it carries, from a scrape where every family has samples."""
    record_call(model=MODEL, failure=None, latency_seconds=0.2)
    record_call(model=MODEL, failure=ProviderFailure(FailureKind.OVERLOADED, "overloaded_error", "busy",
                                                     http_status=529), latency_seconds=0.2)
    record_usage(model=MODEL, usage=TokenUsage(1, 1, 1, 1), cost=Decimal("0.01"))
    record_block_finished(status="succeeded")
    record_pack(model=MODEL)
    record_split(model=MODEL)
    metrics_flush()
    result = scrape()
    names: dict[str, set[str]] = {}
    for family in result.families.values():
        for suffix in SUFFIXES.get(family.type, ("",)):
            names[family.name + suffix] = set()
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    # `le` is the histogram's own label
    names["conveyor_provider_call_duration_seconds_bucket"].add("le")
    return names


def assert_uses_exposed_families(expr: str, exposed: dict[str, set[str]], where: str) -> None:
    found = SELECTOR.findall(expr)
    assert found, f"{where}: no conveyor_ family in {expr!r}"
    for name, matchers in found:
        assert name in exposed, f"{where}: {name} is not exposed by /metrics"
        for label in MATCHER.findall(matchers or ""):
            if exposed[name]:  # a family with samples: its labels are known
                assert label in exposed[name], f"{where}: {name} has no label {label!r}"


def rules() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_the_alert_rules_parse_and_have_what_an_alert_needs():
    names = []
    for rule in rules():
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("critical", "warning", "info")
        assert rule["annotations"]["summary"]
        names.append(rule["alert"])
    assert len(names) == len(set(names))


def test_the_required_alerts_are_there():
    assert {rule["alert"] for rule in rules()} >= REQUIRED_ALERTS


def test_every_alert_expression_uses_families_metrics_exposes(exposed):
    for rule in rules():
        assert_uses_exposed_families(rule["expr"], exposed, rule["alert"])


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed "
                    "(Debian: apt-get install prometheus)")
def test_promtool_finds_the_rules_valid():
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed "
                    "(Debian: apt-get install prometheus)")
def test_the_alerts_fire_on_their_unit_tests():
    result = subprocess.run(["promtool", "test", "rules", "alerts.test.yml"], capture_output=True,
                            text=True, timeout=60, cwd=ALERTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_valid_json_with_unique_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert dashboard["title"] and dashboard["uid"]
    assert len(ids) == len(set(ids))
    assert all(panel["targets"] for panel in dashboard["panels"])


def test_every_dashboard_query_uses_families_metrics_exposes(exposed):
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert_uses_exposed_families(target["expr"], exposed, panel["title"])


def test_the_dashboard_shows_every_family(exposed):
    text = DASHBOARD.read_text()
    families = {name for name in exposed if not name.endswith(("_bucket", "_sum", "_count"))}
    missing = {name for name in families if name not in text and name + "_bucket" not in text}
    assert missing == set()
