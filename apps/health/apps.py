from django.apps import AppConfig


class HealthConfig(AppConfig):
    """Health: whether this deployment can do its work (liveness, readiness, the heartbeats of the
    scheduled tasks)."""

    name = "apps.health"
    label = "health"
    default_auto_field = "django.db.models.BigAutoField"
