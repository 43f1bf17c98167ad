from django.apps import AppConfig
from django.db.models.signals import post_migrate


class FailuresConfig(AppConfig):
    name = "apps.failures"
    label = "failures"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.failures.schedules import install_after_migrate

        # Sent after every migrate (and after the test runner's flushes): the project's beat
        # schedules are in the admin from the start.
        post_migrate.connect(install_after_migrate, sender=self,
                             dispatch_uid="conveyor.failures.install_beat_schedules")
