"""The README's first command (`manage.py demo`) migrates a fresh SQLite database in `var/`: every
migration must apply there too, not only on PostgreSQL (a data migration written as PostgreSQL-only
SQL broke the demo on a fresh machine while the whole suite, on PostgreSQL, passed)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_migration_applies_to_the_demos_fresh_sqlite_database(tmp_path: Path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "config.settings.local", "DJANGO_READ_DOT_ENV_FILE": "false",
           "LOG_LEVEL": "ERROR",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}
    done = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "demo.sqlite3").stat().st_size > 0
