"""The secret never leaves: not in API responses, admin pages, logs, stored errors or exception
messages, even when the provider quotes it back. PROXY_SECRET matches no redaction pattern, so these
tests pass only because the exact secret is redacted."""

import logging

import pytest
from django.urls import reverse

from apps.core.redaction import REDACTED, redact
from apps.keys.models import ProviderKey
from apps.keys.services import KeyValidationInconclusive, key_create, key_mark_invalid, key_validate
from apps.keys.tasks import validate_key
from tests.keys.conftest import GOOD_SECRET, PROXY_SECRET


@pytest.fixture
def echoed_key(owner, echoing_provider) -> ProviderKey:
    """A key whose provider has answered its validation by quoting the secret back."""
    key = key_create(owner=owner, label="Proxy", secret=PROXY_SECRET, base_url=echoing_provider.base_url)
    validate_key(key.pk)
    assert echoing_provider.seen_keys == [PROXY_SECRET]  # the provider really did see and echo it
    key.refresh_from_db()
    return key


def test_a_provider_error_quoting_the_secret_is_stored_redacted(echoed_key):
    assert echoed_key.validation_error == f"authentication_error: invalid x-api-key {REDACTED}"


def test_logs_never_contain_the_secret_even_when_the_provider_quotes_it(owner, echoing_provider, caplog):
    caplog.set_level(logging.DEBUG)
    key = key_create(owner=owner, label="Proxy", secret=PROXY_SECRET, base_url=echoing_provider.base_url)
    validate_key(key.pk)
    assert "failed validation" in caplog.text  # the failure was logged...
    assert PROXY_SECRET not in caplog.text  # ...without the secret


def test_an_inconclusive_validation_error_does_not_carry_the_secret(owner, echoing_provider):
    echoing_provider.status, echoing_provider.error_type = 503, "api_error"
    key = key_create(owner=owner, label="Proxy", secret=PROXY_SECRET, base_url=echoing_provider.base_url)
    with pytest.raises(KeyValidationInconclusive) as error:
        key_validate(key=key)
    assert "api_error" in str(error.value)
    assert PROXY_SECRET not in str(error.value)


def test_an_engine_reported_rejection_quoting_the_secret_is_stored_redacted(owner, caplog):
    caplog.set_level(logging.DEBUG)
    key = key_create(owner=owner, label="Proxy", secret=PROXY_SECRET)
    key_mark_invalid(key_id=key.pk, error=f"authentication_error: bad key {PROXY_SECRET}")
    key.refresh_from_db()
    assert PROXY_SECRET not in key.validation_error
    assert PROXY_SECRET not in caplog.text


def test_api_responses_never_contain_the_secret(owner, api, echoed_key):
    client = api(owner)
    responses = [
        client.post("/api/v1/keys/", {"label": "New", "secret": GOOD_SECRET}, format="json"),
        client.get("/api/v1/keys/"),
        client.get(f"/api/v1/keys/{echoed_key.pk}/"),
        client.patch(f"/api/v1/keys/{echoed_key.pk}/", {"label": "Renamed"}, format="json"),
        client.post(f"/api/v1/keys/{echoed_key.pk}/validate/"),
    ]
    assert [r.status_code for r in responses] == [201, 200, 200, 200, 202]
    for response in responses:
        assert PROXY_SECRET not in response.content.decode()
        assert GOOD_SECRET not in response.content.decode()
        assert echoed_key.secret_ciphertext not in response.content.decode()


def test_a_rejected_create_does_not_echo_the_secret(owner, api):
    response = api(owner).post("/api/v1/keys/", {"label": "x" * 101, "secret": PROXY_SECRET,
                                                 "base_url": "http://10.0.0.1"}, format="json")
    assert response.status_code == 400
    assert PROXY_SECRET not in response.content.decode()


def test_an_html_request_gets_no_form_echoing_the_secret(owner, api):
    response = api(owner).post("/api/v1/keys/", {"label": "", "secret": PROXY_SECRET},
                               HTTP_ACCEPT="text/html")
    assert PROXY_SECRET not in response.content.decode()


def test_admin_list_change_and_add_pages_never_contain_the_secret(staff, client, echoed_key):
    client.force_login(staff)
    pages = [
        reverse("admin:keys_providerkey_changelist"),
        reverse("admin:keys_providerkey_change", args=[echoed_key.pk]),
        reverse("admin:keys_providerkey_add"),
        reverse("admin:keys_providerkey_history", args=[echoed_key.pk]),
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert PROXY_SECRET not in html
        assert echoed_key.secret_ciphertext not in html
    # The change page shows the suffix and the (redacted) provider error.
    change = client.get(pages[1]).content.decode()
    assert echoed_key.suffix in change
    assert "authentication_error" in change


def test_an_admin_form_shown_again_after_an_error_does_not_echo_the_secret(staff, owner, client):
    client.force_login(staff)
    response = client.post(reverse("admin:keys_providerkey_add"), {
        "owner": owner.pk, "provider": "anthropic", "label": "Main", "secret": PROXY_SECRET,
        "base_url": "https://10.0.0.1",
    })
    assert response.status_code == 200  # the form again, with the error
    html = response.content.decode()
    assert "private" in html
    assert PROXY_SECRET not in html


def test_a_failure_snapshot_passed_through_redact_carries_no_secret():
    snapshot = {
        "headers": {"x-api-key": PROXY_SECRET, "content-type": "application/json"},
        "error": f"provider said: invalid x-api-key {PROXY_SECRET}",
        "attempts": [{"message": f"Bearer {PROXY_SECRET}"}],
    }
    redacted = redact(snapshot, [PROXY_SECRET])
    assert PROXY_SECRET not in repr(redacted)
    assert redacted["headers"]["content-type"] == "application/json"
