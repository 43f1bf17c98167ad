"""Production settings, each in a fresh process (settings are configured once per process): they
refuse weak secrets, saying how to make good ones, pass `check --deploy` cleanly, and send HSTS and a
Content-Security-Policy."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management.utils import get_random_secret_key

from config.security import GENERATE_FERNET_KEY, GENERATE_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET_KEY = get_random_secret_key()
GOOD_FERNET_KEY = Fernet.generate_key().decode()
DEV_KEY = "Y29udmV5b3ItbG9jYWwtZGV2LW9ubHkta2V5LTMyYiE="


def production(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`manage.py <args>` under production settings with good secrets unless `env` says otherwise;
    nothing from the developer's environment or `.env` leaks in."""
    base = {
        "PATH": os.environ["PATH"], "HOME": str(tmp_path), "DJANGO_READ_DOT_ENV_FILE": "false",
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": GOOD_SECRET_KEY, "KEY_ENCRYPTION_KEYS": GOOD_FERNET_KEY,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:1/0",  # never reached by these commands
        "ALLOWED_HOSTS": "conveyor.example.com,testserver",
        "LOG_LEVEL": "ERROR",
        "STATIC_ROOT": str(tmp_path / "static"),
    }
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("secret_key", [
    "change-me", "django-insecure-local-development-only", "x" * 49, "ab" * 40,
], ids=["placeholder", "django-default", "short", "few-distinct-characters"])
def test_production_refuses_a_weak_secret_key(tmp_path, secret_key):
    result = production(["check"], tmp_path, SECRET_KEY=secret_key)
    assert result.returncode != 0
    assert "SECRET_KEY is not fit for production" in result.stderr


def test_the_secret_key_refusal_prints_how_to_generate_one(tmp_path):
    result = production(["check"], tmp_path, SECRET_KEY="change-me")
    assert GENERATE_SECRET_KEY in result.stderr


@pytest.mark.parametrize("keys", ["", "short", "a-passphrase-that-is-not-a-fernet-key-at-all-really",
                                  DEV_KEY, f"{GOOD_FERNET_KEY},{DEV_KEY}"],
                         ids=["unset", "short", "passphrase", "dev-key", "dev-key-second"])
def test_production_refuses_encryption_keys_that_are_not_real_fernet_keys(tmp_path, keys):
    result = production(["check"], tmp_path, KEY_ENCRYPTION_KEYS=keys)
    assert result.returncode != 0
    assert "KEY_ENCRYPTION_KEYS is not fit for production" in result.stderr


def test_the_encryption_key_refusal_prints_how_to_generate_one_and_never_the_key(tmp_path):
    result = production(["check"], tmp_path, KEY_ENCRYPTION_KEYS="my-own-passphrase-1234")
    assert GENERATE_FERNET_KEY in result.stderr
    assert "my-own-passphrase-1234" not in result.stderr


def test_check_deploy_reports_nothing_under_production_settings(tmp_path):
    result = production(["check", "--deploy", "--fail-level", "WARNING"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


RESPONSE_HEADERS = """
import django, json
django.setup()
from django.test import Client
response = Client().get("/api/v1/runs/", secure=True, HTTP_HOST="testserver")
print("ANSWER", json.dumps({"status": response.status_code, "headers": dict(response.headers)}))
"""


def answer_of(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("ANSWER "))
    return json.loads(line.removeprefix("ANSWER "))


@pytest.fixture
def production_response(tmp_path) -> dict:
    return answer_of(production(["shell", "-c", RESPONSE_HEADERS], tmp_path))


def test_production_sends_hsts(production_response):
    assert production_response["headers"]["Strict-Transport-Security"] == (
        "max-age=31536000; includeSubDomains; preload")


def test_production_sends_a_content_security_policy_without_inline_scripts(production_response):
    policy = production_response["headers"]["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"


def test_production_redirects_plain_http_to_https(tmp_path):
    code = RESPONSE_HEADERS.replace("secure=True", "secure=False")
    answer = answer_of(production(["shell", "-c", code], tmp_path))
    assert (answer["status"], answer["headers"]["Location"]) == (301, "https://testserver/api/v1/runs/")


def test_hsts_is_configurable_from_the_environment(tmp_path):
    answer = answer_of(production(["shell", "-c", RESPONSE_HEADERS], tmp_path, SECURE_HSTS_SECONDS="600",
                                  SECURE_HSTS_PRELOAD="false", SECURE_HSTS_INCLUDE_SUBDOMAINS="false"))
    assert answer["headers"]["Strict-Transport-Security"] == "max-age=600"


def test_production_runs_with_debug_off_even_if_the_environment_says_otherwise(tmp_path):
    result = production(["shell", "-c", "from django.conf import settings; print('ANSWER', settings.DEBUG)"],
                        tmp_path, DEBUG="true")
    assert "ANSWER False" in result.stdout.splitlines()


@pytest.mark.parametrize("module", ["config.wsgi", "config.asgi", "config.celery_app"])
def test_what_serves_traffic_defaults_to_production_settings(module):
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    code = f"import os, {module}; print(os.environ['DJANGO_SETTINGS_MODULE'])"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "SECRET_KEY": GOOD_SECRET_KEY,
                            "KEY_ENCRYPTION_KEYS": GOOD_FERNET_KEY, "DJANGO_READ_DOT_ENV_FILE": "false"},
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "config.settings.production", result.stderr


def test_a_secret_key_starting_with_a_dollar_sign_is_taken_as_it_is(tmp_path):
    """get_random_secret_key() can start with "$", which django-environ would read as a reference."""
    key = "$" + GOOD_SECRET_KEY[1:]
    result = production(["shell", "-c", "from django.conf import settings; print(len(settings.SECRET_KEY))"],
                        tmp_path, SECRET_KEY=key)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str(len(key))


ADMIN_AND_ITS_STYLES = """
import django, json, re
django.setup()
from django.test import Client
client = Client()
page = client.get("/admin/login/", secure=True)
css = re.search(r'href="(/static/admin/css/base[^"]*)"', page.content.decode()).group(1)
style = client.get(css, secure=True)
print("ANSWER", json.dumps({"page": page.status_code, "css": css, "style": style.status_code}))
"""


def test_production_settings_from_source_serve_the_admin_before_collectstatic(tmp_path):
    """Not a 500 ("Missing staticfiles manifest entry"): the files under their plain names, from the
    apps, with a warning that says how to collect them."""
    result = production(["shell", "-c", ADMIN_AND_ITS_STYLES], tmp_path, LOG_LEVEL="WARNING")
    assert answer_of(result) == {"page": 200, "css": "/static/admin/css/base.css", "style": 200}
    assert "collectstatic --noinput --settings=config.settings.production" in result.stderr


def test_production_settings_serve_hashed_static_files_once_collected(tmp_path):
    assert production(["collectstatic", "--noinput"], tmp_path).returncode == 0
    answer = answer_of(production(["shell", "-c", ADMIN_AND_ITS_STYLES], tmp_path))
    assert re.fullmatch(r"/static/admin/css/base\.[0-9a-f]{12}\.css", answer["css"]), answer
    assert (answer["page"], answer["style"]) == (200, 200)


WITHOUT_A_PROXY = """
import django, json
django.setup()
from django.conf import settings
from django.test import Client
page = Client().get("/admin/login/", HTTP_HOST="localhost:8000")
print("ANSWER", json.dumps({"status": page.status_code, "secure_cookies": [
    settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE]}))
"""


def test_the_readmes_settings_for_a_stack_without_a_proxy_serve_the_admin_over_http(tmp_path):
    """With the README's values the admin answers plain http on localhost and its cookies come back
    over it: secure cookies are never sent over http, and the login would loop."""
    from tests.config.test_readme import readme_settings_without_a_proxy

    answer = answer_of(production(["shell", "-c", WITHOUT_A_PROXY], tmp_path,
                                  **readme_settings_without_a_proxy()))
    assert answer == {"status": 200, "secure_cookies": [False, False]}


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_a_serve_max_in_flight_that_is_not_a_positive_integer_stops_the_process_naming_it(tmp_path, value):
    result = production(["check"], tmp_path, SERVE_MAX_IN_FLIGHT=value)
    assert result.returncode != 0
    assert f"SERVE_MAX_IN_FLIGHT={value!r} is not a positive integer" in result.stderr
