from django.apps import AppConfig


class LanesConfig(AppConfig):
    """Lanes: the provider capacity of one key for one model's rate-limit group, shared by every
    worker through Redis (see docs/architecture.md, "The scheduler")."""

    name = "apps.lanes"
    label = "lanes"
    default_auto_field = "django.db.models.BigAutoField"
