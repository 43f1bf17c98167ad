"""A webhook_url obeys a key's base_url address rules: refused at create (400 naming the field) when it
is not https or not public, and refused again at call time, on the address actually connected to (DNS
that changed, an allowlist that changed), and a redirect is never followed."""

import pytest
from django.core.management import CommandError, call_command

from apps.core import addresses
from apps.runs.models import Run
from apps.webhooks.models import DeliveryStatus
from tests.factories import MODEL, make_run
from tests.fake_servers import RebindingResolver, internal_service_answer, redirect_to, serving

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("loopback_only")]

URL = "/api/v1/runs/"


def create(api, owner, key, webhook_url: str):
    return api(owner).post(URL, {"key": key.pk, "model": MODEL, "blocks": [{"input": "hello"}],
                                 "webhook_url": webhook_url}, format="json")


@pytest.fixture
def internal_service():
    with serving(internal_service_answer) as server:
        yield server


@pytest.mark.parametrize(("url", "words"), [
    ("http://hooks.example.com/x", "must use https"),
    ("https://10.0.0.8/hook", "private address"),
    ("https://169.254.169.254/latest/meta-data", "link-local address"),
    ("https://user:pw@hooks.example.com/x", "credentials"),
    ("ftp://hooks.example.com/x", "must use https"),
])
def test_a_webhook_url_breaking_an_address_rule_is_refused_at_create_naming_the_field(
        api, owner, offline_key, secret, settings, url, words):
    settings.PROVIDER_HOST_ALLOWLIST = []
    response = create(api, owner, offline_key, url)
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert list(fields) == ["webhook_url"]
    assert words in fields["webhook_url"][0]
    assert not Run.objects.exists()


def test_loopback_is_refused_when_it_is_not_allowlisted(api, owner, offline_key, secret, settings):
    settings.PROVIDER_HOST_ALLOWLIST = []
    response = create(api, owner, offline_key, "https://127.0.0.1:8443/hook")
    assert "loopback address" in response.json()["error"]["fields"]["webhook_url"][0]


def test_a_name_that_resolves_to_a_private_address_is_refused_at_create(
        api, owner, offline_key, secret, settings, monkeypatch):
    settings.PROVIDER_HOST_ALLOWLIST = []
    monkeypatch.setattr(addresses, "_resolve", RebindingResolver(public_answers=0))
    response = create(api, owner, offline_key, "https://hooks.example.test/x")
    assert response.status_code == 400
    assert "resolves to 127.0.0.1" in response.json()["error"]["fields"]["webhook_url"][0]


def test_a_public_https_url_is_accepted_and_shown_on_the_run(api, owner, offline_key, secret, settings,
                                                             monkeypatch):
    settings.PROVIDER_HOST_ALLOWLIST = []
    monkeypatch.setattr(addresses, "_resolve", lambda host, port: [RebindingResolver.PUBLIC])
    response = create(api, owner, offline_key, "https://hooks.example.test/conveyor?team=7")
    assert response.status_code == 201
    assert response.json()["webhook_url"] == "https://hooks.example.test/conveyor?team=7"
    run_id = response.json()["id"]
    assert api(owner).get(f"{URL}{run_id}/").json()["webhook_url"] == "https://hooks.example.test/conveyor?team=7"


def test_a_webhook_url_needs_a_signing_secret_first(api, owner, offline_key, receiver):
    response = create(api, owner, offline_key, receiver.url)
    assert response.status_code == 400
    assert "no webhook signing secret" in response.json()["error"]["fields"]["webhook_url"][0]


def test_the_estimate_checks_the_webhook_url_as_a_create_does(api, owner, offline_key, secret, settings):
    settings.PROVIDER_HOST_ALLOWLIST = []
    response = api(owner).post(f"{URL}estimate/", {"key": offline_key.pk, "model": MODEL,
                                                   "blocks": [{"input": "x"}],
                                                   "webhook_url": "http://hooks.example.com"},
                               format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["webhook_url"]


def test_submit_refuses_a_bad_webhook_url_naming_the_option(owner, offline_key, secret, settings, tmp_path):
    settings.PROVIDER_HOST_ALLOWLIST = []
    blocks = tmp_path / "blocks.jsonl"
    blocks.write_text('{"input": "hello"}\n')
    with pytest.raises(CommandError, match="https"):
        call_command("submit", str(blocks), "--user", owner.username, "--key", str(offline_key.pk),
                     "--webhook-url", "http://hooks.example.com/x")
    assert not Run.objects.exists()


def test_submit_sets_the_webhook_url(owner, offline_key, secret, receiver, tmp_path, capsys):
    blocks = tmp_path / "blocks.jsonl"
    blocks.write_text('{"input": "hello"}\n')
    call_command("submit", str(blocks), "--user", owner.username, "--key", str(offline_key.pk),
                 "--webhook-url", receiver.url)
    assert Run.objects.get().webhook_url == receiver.url


def test_a_name_that_turns_private_after_create_gets_no_delivery_at_call_time(
        owner, offline_key, secret, end_run, deliver_inline, settings, monkeypatch, receiver):
    settings.PROVIDER_HOST_ALLOWLIST = []
    # Public when the run is created; loopback (where the receiver listens) when the delivery connects.
    resolver = RebindingResolver(public_answers=1)
    monkeypatch.setattr(addresses, "_resolve", resolver)
    port = receiver.server.base_url.rsplit(":", 1)[1]
    run = make_run(owner, offline_key, ["one"], webhook_url=f"https://hooks.example.test:{port}/x")
    delivery = end_run(run)
    delivery.refresh_from_db()
    assert len(resolver.lookups) == 2
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.PENDING, "address_not_allowed")
    assert "loopback" in delivery.last_error_detail and "webhook_url" in delivery.last_error_detail
    assert receiver.received == []


def test_a_host_taken_off_the_allowlist_gets_no_delivery_at_call_time(
        owner, offline_key, secret, end_run, deliver_inline, settings, receiver):
    run = make_run(owner, offline_key, ["one"], webhook_url=receiver.url)  # allowlisted: 127.0.0.1
    settings.PROVIDER_HOST_ALLOWLIST = []
    delivery = end_run(run)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == (DeliveryStatus.PENDING, "url_not_allowed")
    assert receiver.received == []


def test_an_https_url_to_a_host_taken_off_the_allowlist_is_refused_on_the_connection(
        owner, offline_key, secret, end_run, deliver_inline, settings, receiver):
    run = make_run(owner, offline_key, ["one"], webhook_url="https://127.0.0.1:9/hook")
    settings.PROVIDER_HOST_ALLOWLIST = []
    delivery = end_run(run)
    delivery.refresh_from_db()
    assert (delivery.last_error, delivery.last_status_code) == ("address_not_allowed", None)


def test_a_redirect_is_not_followed_and_is_a_failed_delivery(owner, offline_key, secret, end_run,
                                                             deliver_inline, internal_service):
    with serving(redirect_to(internal_service.base_url, 302)) as redirector:
        run = make_run(owner, offline_key, ["one"], webhook_url=redirector.base_url + "/hook")
        delivery = end_run(run)
        assert len(redirector.received) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_status_code, delivery.last_error) == (
        DeliveryStatus.PENDING, 302, "redirect")
    assert internal_service.received == []
