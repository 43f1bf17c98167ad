"""Local settings (what `manage.py` uses) read `.env.local`, never compose's `.env`: following the
README's local section and then its compose section (copy `.env.example` to `.env`) must not break
`runserver` nor change its hosts. Each check runs in a copy of the project, so that no developer's own
`.env` or `.env.local` is read or touched."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = ("import django, json; django.setup(); from django.conf import settings; "
         "from django.core.management import call_command; call_command('check'); "
         "print(json.dumps({'hosts': settings.ALLOWED_HOSTS, 'debug': settings.DEBUG}))")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project's code (no virtualenv, no var/, no env files) in a directory of its own."""
    copy = tmp_path / "conveyor"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("apps", "config", "templates", "mock_provider"):
        shutil.copytree(ROOT / name, copy / name, ignore=ignore)
    for name in ("manage.py", "pyproject.toml", ".env.example"):
        shutil.copy2(ROOT / name, copy / name)
    return copy


def local_settings(project: Path) -> dict:
    env = {"PATH": os.environ["PATH"], "HOME": str(project),
           "DJANGO_SETTINGS_MODULE": "config.settings.local", "LOG_LEVEL": "ERROR"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_a_compose_env_file_beside_manage_py_does_not_reach_local_settings(project):
    # The compose section: `cp .env.example .env` (production values; KEY_ENCRYPTION_KEYS empty).
    shutil.copy2(project / ".env.example", project / ".env")
    seen = local_settings(project)
    assert "conveyor.example.com" not in seen["hosts"]
    assert seen["debug"] is True


def test_local_settings_read_env_local(project):
    (project / ".env.local").write_text("ALLOWED_HOSTS=dev.example.org\nDEBUG=false\n")
    assert local_settings(project) == {"hosts": ["dev.example.org"], "debug": False}
