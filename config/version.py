"""The version stamp of this build (settings.CONVEYOR["PIPELINE_VERSION"]): what every result, run
and pass records as the code that produced it, and what a reseed can select by."""

import tomllib
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# What the version columns hold (Run, Block, RunPass .pipeline_version; DiagnosticLog.function_version).
MAX_LENGTH = 32


def pipeline_version(pyproject: Path, build: str = "") -> str:
    """`[project] version` of pyproject.toml, with `+<build>` appended when a build id is given (the
    image's git short sha, from CONVEYOR_BUILD)."""
    with pyproject.open("rb") as f:
        version = tomllib.load(f)["project"]["version"]
    build = build.strip()
    stamp = f"{version}+{build}" if build else version
    if len(stamp) > MAX_LENGTH:
        raise ImproperlyConfigured(f"the pipeline version {stamp!r} is longer than {MAX_LENGTH} "
                                   "characters; shorten CONVEYOR_BUILD (a git short sha fits)")
    return stamp
