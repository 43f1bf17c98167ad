from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "apps.teams"
    label = "teams"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.audit.selectors import register_team_scope
        from apps.teams.access import ADMINS, team_ids_of

        # A team's admins read its audit rows (GET /api/v1/audit/).
        register_team_scope(lambda user: team_ids_of(user, roles=ADMINS))
