"""Credentials: a token (`Authorization: Token ...`) or a session."""

from rest_framework.test import APIClient

from apps.accounts.services import token_create


def test_a_token_authenticates(owner, run):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=owner).token}")
    response = client.get("/api/v1/runs/")
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_a_session_authenticates(owner, run):
    client = APIClient()
    client.force_login(owner)
    assert client.get(f"/api/v1/runs/{run.pk}/").status_code == 200


def test_a_session_write_needs_the_csrf_token(owner, run):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(owner)
    response = client.post(f"/api/v1/runs/{run.pk}/cancel/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
