"""A stored secret only ever goes to the base_url it was entered with: pointing a key elsewhere needs
the secret again, and staff change other users' keys only with the model permission."""

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.keys.models import ProviderKey
from apps.keys.services import key_secret, key_update
from tests.keys.conftest import GOOD_SECRET, PROXY_SECRET

ELSEWHERE = "http://127.0.0.1:9"  # allowlisted in the test settings; nothing listens there


@pytest.fixture
def plain_staff(django_user_model):
    """Staff, not a superuser, with no model permissions: may read no one else's key, change none."""
    return django_user_model.objects.create_user("plain-staff", password="plain-staff-pass",
                                                 is_staff=True)


def key_url(key: ProviderKey, suffix: str = "") -> str:
    return f"/api/v1/keys/{key.pk}/{suffix}"


def test_a_new_base_url_without_the_secret_is_a_400_naming_the_secret(owner, api, make_key):
    key = make_key(owner)
    response = api(owner).patch(key_url(key), {"base_url": ELSEWHERE}, format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["secret"]


def test_a_refused_base_url_change_changes_nothing_and_queues_no_call(owner, api, make_key,
                                                                      django_capture_on_commit_callbacks):
    key = make_key(owner)
    with django_capture_on_commit_callbacks() as callbacks:
        api(owner).patch(key_url(key), {"base_url": ELSEWHERE, "label": "Renamed"}, format="json")
    key.refresh_from_db()
    assert (key.base_url, key.label, callbacks) == ("", "Main", [])


def test_a_new_base_url_with_the_secret_is_accepted(owner, api, make_key):
    key = make_key(owner)
    response = api(owner).patch(key_url(key), {"base_url": ELSEWHERE, "secret": PROXY_SECRET},
                                format="json")
    assert response.status_code == 200
    key.refresh_from_db()
    assert (key.base_url, key_secret(key=key)) == (ELSEWHERE, PROXY_SECRET)


def test_sending_the_same_base_url_again_needs_no_secret(owner, api, make_key):
    key = make_key(owner, base_url=ELSEWHERE)
    response = api(owner).patch(key_url(key), {"base_url": ELSEWHERE + "/", "label": "Renamed"},
                                format="json")
    assert response.status_code == 200


def test_the_service_refuses_a_new_base_url_without_the_secret(owner, make_key):
    key = make_key(owner)
    with pytest.raises(ValidationError) as raised:
        key_update(key=key, base_url=ELSEWHERE)
    assert list(raised.value.message_dict) == ["secret"]


def test_the_admin_refuses_a_new_base_url_without_the_secret(staff, client, owner, make_key):
    key = make_key(owner)
    client.force_login(staff)
    response = client.post(reverse("admin:keys_providerkey_change", args=[key.pk]),
                           {"label": key.label, "base_url": ELSEWHERE, "secret": ""})
    assert response.status_code == 200
    assert "needs the secret again" in response.content.decode()
    key.refresh_from_db()
    assert key.base_url == ""


def test_the_admin_accepts_a_new_base_url_with_the_secret(staff, client, owner, make_key):
    key = make_key(owner)
    client.force_login(staff)
    response = client.post(reverse("admin:keys_providerkey_change", args=[key.pk]),
                           {"label": key.label, "base_url": ELSEWHERE, "secret": PROXY_SECRET})
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.base_url, key_secret(key=key)) == (ELSEWHERE, PROXY_SECRET)


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("patch", "", {"label": "Mine now"}),
    ("patch", "", {"base_url": ELSEWHERE, "secret": PROXY_SECRET}),
    ("post", "validate/", None),
    ("delete", "", None),
], ids=["label", "base-url-and-secret", "validate", "delete"])
def test_staff_without_the_permission_cannot_change_another_users_key(
        owner, plain_staff, api, make_key, method, suffix, body, django_capture_on_commit_callbacks):
    key = make_key(owner)
    with django_capture_on_commit_callbacks() as callbacks:
        response = getattr(api(plain_staff), method)(key_url(key, suffix), body, format="json")
    assert response.status_code == 404  # they cannot even see it (apps/teams/access.py)
    assert callbacks == []
    after = ProviderKey.objects.get(pk=key.pk)
    assert (after.label, after.base_url, key_secret(key=after)) == ("Main", "", GOOD_SECRET)


def test_staff_without_the_permission_do_not_see_another_users_key(owner, plain_staff, api, make_key):
    key = make_key(owner)
    assert api(plain_staff).get(key_url(key)).status_code == 404


def test_staff_with_the_view_permission_read_another_users_key(owner, plain_staff, api, make_key):
    plain_staff.user_permissions.add(Permission.objects.get(codename="view_providerkey"))
    key = make_key(owner)
    assert api(plain_staff).get(key_url(key)).status_code == 200


def test_staff_with_the_change_permission_may_change_another_users_key(owner, plain_staff, api, make_key):
    plain_staff.user_permissions.add(Permission.objects.get(codename="change_providerkey"))
    key = make_key(owner)
    response = api(plain_staff).patch(key_url(key), {"label": "Audited"}, format="json")
    assert response.status_code == 200


def test_staff_with_the_change_permission_still_cannot_delete(owner, plain_staff, api, make_key):
    plain_staff.user_permissions.add(Permission.objects.get(codename="change_providerkey"))
    key = make_key(owner)
    assert api(plain_staff).delete(key_url(key)).status_code == 403


def test_a_superuser_may_change_another_users_key(owner, staff, api, make_key):
    key = make_key(owner)
    response = api(staff).patch(key_url(key), {"label": "Audited"}, format="json")
    assert response.status_code == 200


def test_staff_manage_their_own_keys_without_any_permission(plain_staff, api, make_key):
    key = make_key(plain_staff)
    assert api(plain_staff).patch(key_url(key), {"label": "Mine"}, format="json").status_code == 200
