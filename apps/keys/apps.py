from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "apps.keys"
    label = "keys"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The system checks; and the task, registered in every process, so that a send by its name
        # (apps.keys.services) runs it in-process where CELERY_TASK_ALWAYS_EAGER is on.
        from apps.keys import checks, tasks  # noqa: F401
