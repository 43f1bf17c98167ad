"""API token authentication: django-rest-knox tokens (stored as hashes, expiring), with guessing slowed
down. After API_TOKEN_FAILURE_LIMIT failed tokens from one client address within
API_TOKEN_FAILURE_WINDOW_SECONDS, every token request from that address answers 429 until the window
ends, even with a good token (the guesser cannot tell a hit). The counter lives in the cache (Redis),
so every web process counts together."""

from typing import Any

from django.conf import settings
from django.core.cache import cache
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request

from config.security import client_ip


def _failures_key(request: Request) -> str:
    return f"api-token-failures:{client_ip(request)}"


class TokenAuthentication(KnoxTokenAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.lower().startswith(self.authenticate_header(request).lower()):
            return None  # no token offered: not ours to count
        key = _failures_key(request)
        window = settings.API_TOKEN_FAILURE_WINDOW_SECONDS
        if (cache.get(key) or 0) >= settings.API_TOKEN_FAILURE_LIMIT:
            raise Throttled(wait=window, detail="Too many failed tokens from this address; wait.")
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            # add() starts the window on the first failure; incr() keeps its expiry.
            cache.add(key, 0, timeout=window)
            try:
                cache.incr(key)
            except ValueError:  # expired between the two calls: this failure starts a new window
                cache.add(key, 1, timeout=window)
            raise
