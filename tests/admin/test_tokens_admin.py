"""API tokens in the admin: listed without the token (nor the part knox keeps in clear), revoked by
deleting them."""

from django.urls import reverse
from knox.models import AuthToken

from apps.accounts.services import token_create


def test_the_token_list_shows_neither_the_token_nor_its_clear_prefix(client, staff, owner):
    issued = token_create(user=owner)
    client.force_login(staff)
    html = client.get(reverse("admin:knox_authtoken_changelist")).content.decode()
    assert "owner" in html
    # (The row links to the token's primary key, knox's sha512 digest: a hash, not the token.)
    assert issued.token not in html
    assert issued.instance.token_key not in html


def test_staff_revoke_a_token_by_deleting_it(client, staff, owner):
    issued = token_create(user=owner)
    client.force_login(staff)
    url = reverse("admin:knox_authtoken_delete", args=[issued.instance.pk])
    assert client.post(url, {"post": "yes"}).status_code == 302
    assert not AuthToken.objects.exists()


def test_tokens_cannot_be_added_in_the_admin(client, staff):
    client.force_login(staff)
    assert client.get(reverse("admin:knox_authtoken_add")).status_code == 403
