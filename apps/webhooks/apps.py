from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Completion webhooks: a signed `run.finished` event POSTed to a run's webhook_url when each of its
    passes ends, retried until delivered or a day has passed, with a delivery log."""

    name = "apps.webhooks"
    label = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.runs.signals import run_finished
        from apps.teams.signals import spend_threshold_reached
        from apps.webhooks import tasks  # noqa: F401  (registered in every process: sent by name, eager too)
        from apps.webhooks.receivers import record_run_finished, record_team_spend

        run_finished.connect(record_run_finished, dispatch_uid="conveyor.webhooks.record_run_finished")
        spend_threshold_reached.connect(record_team_spend, dispatch_uid="conveyor.webhooks.record_team_spend")
