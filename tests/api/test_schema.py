"""The OpenAPI schema: generated without warnings, valid, served, with a docs page."""

import re

import yaml
from django.contrib.staticfiles import finders
from django.core.management import call_command


def test_the_schema_generates_and_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    assert "/api/v1/runs/{run_id}/results/" in yaml.safe_load(target.read_text())["paths"]


def test_the_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Conveyor API"


def test_the_docs_page_is_served(client):
    assert client.get("/api/docs/").status_code == 200


def test_the_docs_page_loads_swagger_ui_from_this_server_not_a_cdn(client):
    html = client.get("/api/docs/").content.decode()
    scripts = re.findall(r'src="([^"]+)"', html)
    assert any("swagger-ui-bundle.js" in src for src in scripts), scripts
    assert all(src.startswith("/") and not src.startswith("//") for src in scripts), scripts  # this server
    assert "cdn" not in html.lower()


def test_the_swagger_ui_files_the_docs_page_loads_are_installed():
    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")


def test_the_create_documents_both_inline_and_upload_bodies(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    content = schema["paths"]["/api/v1/runs/"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}


def test_every_run_operation_documents_its_errors_in_the_shared_shape(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, operations in schema["paths"].items():
        if not path.startswith("/api/v1/runs/"):
            continue
        for operation in operations.values():
            errors = {code: r for code, r in operation["responses"].items() if code.startswith("4")}
            assert "401" in errors, (path, operation["operationId"])
            for response in errors.values():
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/Error"}


def test_every_paged_list_documents_page_size_and_its_alias_limit(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path in ("/api/v1/runs/", "/api/v1/failures/", "/api/v1/webhooks/deliveries/",
                 "/api/v1/runs/{run_id}/blocks/"):
        names = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert {"page_size", "limit"} <= names, (path, names)
