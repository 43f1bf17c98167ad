from django.apps import AppConfig


class FailuresConfig(AppConfig):
    name = "apps.failures"
    label = "failures"
    default_auto_field = "django.db.models.BigAutoField"
