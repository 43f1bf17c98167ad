"""The probes answer before the rest of the middleware looks at the request.

Kubernetes and Docker probe a container by its own address (`Host: 10.1.2.3:8000`, or `localhost`),
over plain http. Further down, CommonMiddleware would refuse that Host (ALLOWED_HOSTS: 400) and
SecurityMiddleware would redirect to https (301), so a healthy web process would look dead. The two
probe views read no header, cookie or session, so they are safe to serve to any Host.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.health.views import healthz, readyz

PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class ProbeMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None:
            return probe(request)
        return self.get_response(request)
