from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """API tokens (django-rest-knox's AuthToken: hashed, expiring) and how people get and revoke them."""

    name = "apps.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        import config.api.schema  # noqa: F401  (registers the auth schemes with drf-spectacular)
        from apps.accounts import tasks  # noqa: F401
        from apps.accounts.team_deletion import team_delete_start
        from apps.teams.deletion import register_team_deleter

        register_team_deleter(team_delete_start)
