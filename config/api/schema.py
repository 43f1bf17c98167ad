"""How the API's own authentication classes appear in the OpenAPI schema (imported at startup by
apps.accounts)."""

from typing import Any

from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(KnoxTokenScheme):
    target_class = "config.api.authentication.TokenAuthentication"
    name = "apiToken"


class PasswordScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.api.PasswordAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "basic"}
