from django.apps import AppConfig


class MetricsConfig(AppConfig):
    """Metrics: `GET /metrics` for Prometheus. Gauges are read from PostgreSQL and Redis at scrape
    time; counters are added up by the workers in Redis (apps/counters/), so every host's work shows
    on whichever web process is scraped. It reads every app below it and nothing imports it."""

    name = "apps.metrics"
    label = "metrics"
    default_auto_field = "django.db.models.BigAutoField"
