"""Thin Celery adapters for the accounts app."""

from celery import shared_task

from apps.accounts.deletion import DELETE_USER_TASK, user_rows_delete
from apps.accounts.team_deletion import DELETE_TEAM_TASK, team_rows_delete


@shared_task(name=DELETE_USER_TASK, acks_late=True, time_limit=3600 * 4, soft_time_limit=3600 * 4 - 60)
def delete_user(user_id: int) -> dict:
    """Delete a user marked for deletion and all they own, in batches. Twice is harmless."""
    return user_rows_delete(user_id=user_id)


@shared_task(name=DELETE_TEAM_TASK, acks_late=True, time_limit=3600 * 4, soft_time_limit=3600 * 4 - 60)
def delete_team(team_id: int) -> dict:
    """Delete a team marked for deletion and all it owns, in batches, the team row last."""
    return team_rows_delete(team_id=team_id)
