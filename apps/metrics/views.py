"""GET /metrics for Prometheus, behind a bearer token (METRICS_TOKEN). Without a token configured the
endpoint answers 404 (metrics are never public by omission), in one plain line that says how to turn
it on, rather than a generic "not found" that leaves a person guessing."""

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from apps.metrics.collector import registry

REGISTRY = registry()
METRICS_OFF = (
    "metrics are off: set METRICS_TOKEN to a long random value (e.g. the output of\n"
    "  python -c \"import secrets; print(secrets.token_urlsafe(32))\")\n"
    "and scrape with the header: Authorization: Bearer <METRICS_TOKEN>\n"
)


def token_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # compare_digest: the time taken says nothing of how much of the token was right.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        return HttpResponse(METRICS_OFF, status=404, content_type="text/plain; charset=utf-8")
    if not token_matches(request, token):
        response = HttpResponse("a valid bearer token is required\n", status=401,
                                content_type="text/plain; charset=utf-8")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
