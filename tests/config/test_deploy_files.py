"""The image and the compose file are safe by default. There is no Docker engine here, so these read
the files as Docker would (compose's YAML, with its merge keys) and check what they declare."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DJANGO_SERVICES = [name for name, service in SERVICES.items() if service.get("build") == "."]
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
