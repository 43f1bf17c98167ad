from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "apps.runs"
    label = "runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.keys.signals import key_validated
        from apps.runs.receivers import resume_runs_of_raised_limit, resume_runs_of_validated_key
        from apps.teams.signals import spend_limit_changed

        key_validated.connect(resume_runs_of_validated_key,
                              dispatch_uid="conveyor.runs.resume_runs_of_validated_key")
        spend_limit_changed.connect(resume_runs_of_raised_limit,
                                    dispatch_uid="conveyor.runs.resume_runs_of_raised_limit")
