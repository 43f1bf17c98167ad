"""Throttling of the write endpoints.

A view opts in by naming a scope (`throttle_scope = "uploads"` or `"writes"`); its reads are never
throttled. Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (set from the environment) and are
read on every request, so `override_settings` in tests takes effect. The counters live in the cache
(Redis, see CACHES), so every web process counts against the same limit.
"""

from typing import Any

from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import ScopedRateThrottle

# Run creation: each may carry up to 100,000 blocks.
UPLOADS = "uploads"
# Every other write: cancel, resume, reseed, replay, resolve.
WRITES = "writes"
# Getting an API token (password checks are also limited by django-axes).
LOGIN = "login"


class WriteRateThrottle(ScopedRateThrottle):
    # DRF binds the rates at import time; a property reads them when the request comes.
    @property
    def THROTTLE_RATES(self) -> dict[str, Any]:  # type: ignore[override]  # the name DRF looks up
        return api_settings.DEFAULT_THROTTLE_RATES

    def allow_request(self, request: Request, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return super().allow_request(request, view)
