from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.console.views import favicon, home
from apps.metrics.views import metrics
from config.api.root import ApiRootView

# The operator's lists are wide (runs, blocks, failures): the app list stays on the index page instead of
# taking a third of a 1,400 px screen beside every list.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    # What this server is, and where everything is (apps/console/).
    path("", home, name="home"),
    path("favicon.ico", favicon, name="favicon"),
    # Probes at the top level, outside the API (no authentication, no throttle; apps/health/).
    path("", include("apps.health.urls")),
    path("admin/", admin.site.urls),
    # Prometheus scrapes here, with METRICS_TOKEN as a bearer token (apps/metrics/views.py).
    path("metrics", metrics, name="metrics"),
    path("api/v1/", ApiRootView.as_view(), name="api-root"),
    path("api/v1/", include("apps.accounts.urls")),
    path("api/v1/", include("apps.teams.urls")),
    path("api/v1/", include("apps.keys.urls")),
    path("api/v1/", include("apps.runs.urls")),
    path("api/v1/", include("apps.pipelines.urls")),
    path("api/v1/", include("apps.failures.urls")),
    path("api/v1/", include("apps.webhooks.urls")),
    path("api/v1/", include("apps.audit.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]

handler404 = "config.api.errors.not_found"
handler500 = "config.api.errors.server_error"
