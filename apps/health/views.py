"""Probes for containers and load balancers: no authentication, no throttle, JSON answers.

- `GET /healthz` (liveness): the process serves requests. Touches nothing else, so a database or
  Redis outage never gets healthy web processes restarted.
- `GET /readyz` (readiness): PostgreSQL answers, every migration is applied, Redis answers and the
  pump ran recently. 200 when all hold, else 503 naming each check and what failed.
"""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from apps.health.checks import readiness


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    ready, checks = readiness()
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": checks},
                        status=200 if ready else 503)
