"""The landing page at /, the favicon, the admin's "View site" and the API root at /api/v1/."""

import re

import pytest
from django.urls import reverse


def test_the_landing_page_says_what_this_server_is_and_links_its_parts(client):
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "pushes large batches of text" in html
    for url in ("/admin/", "/admin/overview/", "/api/v1/", "/api/docs/", "/api/schema/", "/healthz",
                "/readyz"):
        assert f'href="{url}"' in html, url
    assert "<script" not in html


def test_the_landing_page_says_how_to_get_an_api_token(client):
    assert "curl -u USER -X POST http://testserver/api/v1/auth/login/" in client.get("/").content.decode()


def test_favicon_ico_leads_to_the_icon_served_from_this_server(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 302
    assert response["Location"] == "/static/console/favicon.svg"


@pytest.mark.django_db
def test_the_admins_view_site_link_leads_to_the_landing_page(client, staff):
    client.force_login(staff)
    html = client.get(reverse("admin:index")).content.decode()
    assert '<a href="/">View site</a>' in html
    assert re.search(r'<link rel="icon" href="/static/console/favicon\.svg"', html)


def test_the_api_root_lists_every_resource_without_a_token(client):
    response = client.get("/api/v1/", HTTP_ACCEPT="application/json")
    body = response.json()
    assert response.status_code == 200
    assert body["runs"] == "http://testserver/api/v1/runs/"
    assert body["keys"] == "http://testserver/api/v1/keys/"
    assert body["failures"] == "http://testserver/api/v1/failures/"
    assert body["webhook_deliveries"] == "http://testserver/api/v1/webhooks/deliveries/"
    assert body["docs"] == "http://testserver/api/docs/"
    assert "Authorization: Token <token>" in body["authentication"]


def test_the_api_root_is_browsable_in_a_browser(client):
    response = client.get("/api/v1/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert "http://testserver/api/v1/runs/" in response.content.decode()


@pytest.mark.django_db
def test_a_resource_under_the_api_root_still_asks_for_a_token(client):
    assert client.get("/api/v1/runs/", HTTP_ACCEPT="application/json").status_code == 401
