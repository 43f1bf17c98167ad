"""Staff manage every key in the admin, through the same services as the API."""

from django.urls import reverse

from apps.keys.models import ProviderKey
from apps.keys.services import key_secret
from tests.keys.conftest import GOOD_SECRET, PROXY_SECRET


def add_form(owner, **overrides) -> dict:
    return {"owner": owner.pk, "provider": "anthropic", "label": "Main", "secret": GOOD_SECRET,
            "base_url": "", **overrides}


def change_form(key: ProviderKey, **overrides) -> dict:
    return {"label": key.label, "base_url": key.base_url, "secret": "", **overrides}


def test_staff_add_a_key_for_a_user_through_the_admin(staff, owner, client):
    client.force_login(staff)
    response = client.post(reverse("admin:keys_providerkey_add"), add_form(owner))
    assert response.status_code == 302
    key = ProviderKey.objects.get()
    assert (key.owner, key.suffix, key_secret(key=key)) == (owner, GOOD_SECRET[-4:], GOOD_SECRET)


def test_the_secret_field_is_a_password_input(staff, client):
    client.force_login(staff)
    html = client.get(reverse("admin:keys_providerkey_add")).content.decode()
    assert 'type="password" name="secret"' in html


def test_saving_a_key_with_an_empty_secret_keeps_the_old_one(staff, client, owner, make_key):
    key = make_key(owner)
    client.force_login(staff)
    client.post(reverse("admin:keys_providerkey_change", args=[key.pk]), change_form(key, label="New"))
    key.refresh_from_db()
    assert (key.label, key_secret(key=key)) == ("New", GOOD_SECRET)


def test_a_new_secret_in_the_admin_replaces_the_old_and_resets_the_verdict(staff, client, owner, make_key):
    key = make_key(owner)
    ProviderKey.objects.filter(pk=key.pk).update(is_valid=False)
    client.force_login(staff)
    response = client.post(reverse("admin:keys_providerkey_change", args=[key.pk]),
                           change_form(key, secret=PROXY_SECRET))
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key_secret(key=key), key.suffix, key.is_valid) == (PROXY_SECRET, PROXY_SECRET[-4:], None)


def test_a_taken_label_is_a_form_error_not_a_crash(staff, client, owner, make_key):
    make_key(owner, label="Main")
    other = make_key(owner, label="Other")
    client.force_login(staff)
    response = client.post(reverse("admin:keys_providerkey_change", args=[other.pk]),
                           change_form(other, label="Main"))
    assert response.status_code == 200
    assert "already has a key labelled" in response.content.decode()


def test_validate_now_queues_one_validation_per_selected_key(staff, client, owner, make_key,
                                                             django_capture_on_commit_callbacks):
    keys = [make_key(owner, label="A"), make_key(owner, label="B")]
    client.force_login(staff)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(reverse("admin:keys_providerkey_changelist"), {
            "action": "validate_now", "_selected_action": [k.pk for k in keys],
        })
    assert response.status_code == 302
    assert len(callbacks) == 2


def test_the_list_filters_by_validity(staff, client, owner, make_key):
    make_key(owner, label="Good-one")
    bad = make_key(owner, label="Bad-one")
    ProviderKey.objects.filter(pk=bad.pk).update(is_valid=False)
    client.force_login(staff)
    html = client.get(reverse("admin:keys_providerkey_changelist"), {"is_valid__exact": "0"}).content.decode()
    assert "Bad-one" in html
    assert "Good-one" not in html
