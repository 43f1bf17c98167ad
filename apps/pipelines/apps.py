from django.apps import AppConfig


class PipelinesConfig(AppConfig):
    name = "apps.pipelines"
    label = "pipelines"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.pipelines import receivers
        from apps.runs.signals import blocks_settled, run_finished

        blocks_settled.connect(receivers.hand_on_settled_blocks,
                               dispatch_uid="conveyor.pipelines.hand_on_settled_blocks")
        run_finished.connect(receivers.settle_after_step_ended,
                             dispatch_uid="conveyor.pipelines.settle_after_step_ended")
