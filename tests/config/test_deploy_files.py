"""The image and the compose file are safe by default and come up in order. There is no Docker engine
here, so these read the files as Docker would (compose's YAML, with its merge keys) and check what they
declare; the compose file is also validated by docker-compose's own `config` when it is installed
(.ci/run installs it: Debian's `docker-compose`)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.core.management import get_commands
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
IMAGE = "conveyor:latest"
DJANGO_SERVICES = [name for name, service in SERVICES.items() if service.get("image") == IMAGE]
# Everything but the one-shot migrate: running until stopped.
LONG_RUNNING = [name for name in SERVICES if name != "migrate"]
APP_SERVICES = [name for name in DJANGO_SERVICES if name != "migrate"]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def published(service: dict) -> list[str]:
    return [str(port) for port in service.get("ports", [])]


def test_every_django_service_runs_production_settings():
    settings = {name: SERVICES[name]["environment"]["DJANGO_SETTINGS_MODULE"] for name in DJANGO_SERVICES}
    assert set(settings.values()) == {"config.settings.production"}
    assert set(DJANGO_SERVICES) >= {"web", "worker", "beat", "flower", "migrate"}


def test_web_is_served_by_gunicorn_not_runserver():
    command = SERVICES["web"]["command"]
    assert command.startswith("gunicorn config.wsgi:application")
    assert "runserver" not in (ROOT / "docker-compose.yml").read_text()


def test_flower_listens_on_this_machine_only():
    assert published(SERVICES["flower"]) == ["127.0.0.1:5555:5555"]


def test_flower_refuses_to_start_without_a_login():
    assert SERVICES["flower"]["environment"]["FLOWER_BASIC_AUTH"].startswith("${FLOWER_BASIC_AUTH:?")


def test_the_mock_is_opt_in_and_never_published_publicly():
    mock = SERVICES["mock"]
    assert mock["profiles"] == ["mock"]
    assert all(port.startswith("127.0.0.1:") for port in published(mock))


@pytest.mark.parametrize("name", ["postgres", "redis", "worker", "beat", "migrate"])
def test_internal_services_are_not_published(name):
    assert published(SERVICES[name]) == []


def test_the_image_defaults_to_production_settings():
    assert "DJANGO_SETTINGS_MODULE=config.settings.production" in DOCKERFILE


def test_the_image_serves_with_gunicorn():
    cmd = re.search(r"^CMD (.+)$", DOCKERFILE, re.MULTILINE)
    assert cmd is not None
    assert cmd.group(1).startswith('["gunicorn", "config.wsgi:application"')
    assert "runserver" not in DOCKERFILE


def test_the_image_runs_as_a_non_root_user():
    users = re.findall(r"^USER (\S+)$", DOCKERFILE, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    # The last USER comes before CMD: the server runs as that user.
    assert DOCKERFILE.rindex("USER ") < DOCKERFILE.rindex("CMD ")


def test_the_image_collects_static_files_under_production_settings():
    assert "collectstatic --noinput --settings=config.settings.production" in DOCKERFILE


@pytest.mark.parametrize("path", [".env", "var/", ".venv/"])
def test_local_secrets_and_data_stay_out_of_the_image(path):
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert path in ignored


def test_the_env_example_holds_no_usable_secret():
    values = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                  if line and not line.startswith("#"))
    assert values["SECRET_KEY"] == ""
    assert values["KEY_ENCRYPTION_KEYS"] == ""
    assert "DJANGO_SETTINGS_MODULE" not in values


def test_the_image_is_built_once_by_migrate():
    builders = [name for name, service in SERVICES.items() if "build" in service]
    assert builders == ["migrate"]
    assert SERVICES["migrate"]["image"] == IMAGE


@pytest.mark.parametrize("name", APP_SERVICES)
def test_the_other_django_services_reuse_the_built_image_and_never_pull_it(name):
    assert SERVICES[name]["image"] == IMAGE
    assert SERVICES[name]["pull_policy"] == "never"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_django_services_start_only_after_migrations_completed(name):
    assert SERVICES[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}


@pytest.mark.parametrize("name", ["migrate", *APP_SERVICES])
def test_django_services_wait_for_a_healthy_postgresql(name):
    assert SERVICES[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_healthcheck_and_restarts(name):
    service = SERVICES[name]
    assert service["healthcheck"]["test"][0] == "CMD"
    assert not service["healthcheck"].get("disable")
    assert service["restart"] == "unless-stopped"


def test_migrate_runs_once_and_is_judged_by_its_exit_code():
    assert SERVICES["migrate"]["command"] == "python manage.py migrate --noinput"
    assert SERVICES["migrate"]["restart"] == "no"
    assert SERVICES["migrate"]["healthcheck"] == {"disable": True}


def healthcheck(name: str) -> list[str]:
    return SERVICES[name]["healthcheck"]["test"][1:]


def test_postgres_and_redis_healthchecks_ask_the_servers():
    assert healthcheck("postgres")[:3] == ["pg_isready", "-U", "postgres"]
    assert healthcheck("redis") == ["redis-cli", "ping"]


def test_web_is_healthy_only_when_ready_asked_without_curl():
    # The image has no curl; Python's urlopen fails on /readyz's 503.
    command = healthcheck("web")
    assert command[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8000/readyz" in command[2]
    assert resolve("/readyz").url_name == "readyz"
    assert "curl" not in DOCKERFILE


@pytest.mark.parametrize(("name", "command"), [("worker", "worker_alive"), ("beat", "beat_alive")])
def test_worker_and_beat_healthchecks_run_the_liveness_commands(name, command):
    assert healthcheck(name)[:3] == ["python", "manage.py", command]
    assert command in get_commands()


def test_flower_healthcheck_asks_its_unauthenticated_healthcheck_page():
    assert "http://127.0.0.1:5555/healthcheck" in healthcheck("flower")[2]


def test_the_worker_gets_time_to_finish_its_serving_slice_on_stop():
    assert SERVICES["worker"]["stop_grace_period"] == "90s"


def compose_config(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """docker-compose's own validation of a copy of the file, beside an empty .env."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text("")
    clean = {key: value for key, value in os.environ.items() if key != "FLOWER_BASIC_AUTH"}
    return subprocess.run(["docker-compose", "config", "--quiet"], cwd=tmp_path, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


def test_docker_compose_accepts_the_file(tmp_path):
    result = compose_config(tmp_path, FLOWER_BASIC_AUTH="admin:a-long-password")
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_the_file_without_a_flower_login(tmp_path):
    result = compose_config(tmp_path)
    assert result.returncode != 0
    assert "set FLOWER_BASIC_AUTH=user:password" in result.stderr


def gunicorn_settings() -> dict:
    import runpy

    return runpy.run_path(str(ROOT / "gunicorn.conf.py"))


def test_the_web_server_serves_with_threads_so_a_live_progress_stream_holds_a_thread_not_a_process():
    """gunicorn reads ./gunicorn.conf.py (the image's working directory) unless told otherwise."""
    config = gunicorn_settings()
    assert (config["worker_class"], config["threads"] > 1) == ("gthread", True)
    commands = [SERVICES["web"]["command"], re.search(r"^CMD (.+)$", DOCKERFILE, re.MULTILINE).group(1)]
    for command in commands:
        assert "--config" not in command and "-c " not in command, command
        assert "--worker-class" not in command and "-k " not in command, command
    assert "WORKDIR /app" in DOCKERFILE


def test_the_image_compiles_bytecode_when_it_installs():
    assert "uv sync --locked --no-dev --compile-bytecode" in DOCKERFILE


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_a_second_uv_run_says_nothing_of_its_own():
    """`compile-bytecode = true` in pyproject made every `uv run` re-check every file of the environment
    and print "Bytecode compiled 8583 files"; compiled once by `uv sync --compile-bytecode`, it stays."""
    def uv_run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["uv", "run", "python", "-c", "print('ran')"], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)

    uv_run()
    second = uv_run()
    assert (second.returncode, second.stdout, second.stderr) == (0, "ran\n", "")
