"""The version stamp: the project's version (and build), on every result the build writes, and a
reseed that takes back exactly what an older build produced."""

from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.runs.services.reseed import run_reseed
from config.version import pipeline_version
from tests.factories import make_run
from tests.failures.helpers import settle

ROOT = Path(__file__).resolve().parents[2]


def test_the_version_is_the_projects_version():
    assert settings.CONVEYOR["PIPELINE_VERSION"] == pipeline_version(ROOT / "pyproject.toml") == "0.1.0"


def test_a_build_id_is_appended(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\nversion = "2.3.1"\n')
    assert pipeline_version(pyproject, "a1b2c3d") == "2.3.1+a1b2c3d"


def test_a_stamp_too_long_for_the_columns_is_refused(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\nversion = "2.3.1"\n')
    with pytest.raises(ImproperlyConfigured, match="CONVEYOR_BUILD"):
        pipeline_version(pyproject, "x" * 40)


@pytest.mark.django_db
def test_a_reseed_by_pipeline_version_takes_back_only_what_that_build_wrote(owner, offline_key, settings):
    settings.CONVEYOR = {**settings.CONVEYOR, "PIPELINE_VERSION": "0.1.0+old"}
    run = settle(make_run(owner, offline_key, ["a", "b", "c"], max_attempts=1), fail={"b1"})
    assert set(run.blocks.values_list("uid", "pipeline_version")) == {
        ("b0", "0.1.0+old"), ("b1", "0.1.0+old"), ("b2", "0.1.0+old")}
    settings.CONVEYOR = {**settings.CONVEYOR, "PIPELINE_VERSION": "0.2.0"}
    run = settle(run_reseed(run_id=run.pk, scope="failed"))  # the new build answers b1
    assert dict(run.blocks.values_list("uid", "pipeline_version"))["b1"] == "0.2.0"

    run = run_reseed(run_id=run.pk, scope="filter", pipeline_version="0.1.0+old")
    assert sorted(run.blocks.filter(status="pending").values_list("uid", flat=True)) == ["b0", "b2"]
    assert run.passes.get(number=run.current_pass).pipeline_version == "0.2.0"
