"""Deleting a user: their keys, runs (with everything of them), pipelines and webhook secret go, in
the background; their audit records stay (the trail names actors by id and name, no foreign key).

`user_delete` refuses (409) while any of the user's runs may still work: cancel them first, as for a
run. Otherwise, in one short transaction: the user can no longer log in (`is_active` off, API tokens
revoked), every run of theirs is marked deleting (gone from every list at once), the change is
audited, and `conveyor.accounts.delete_user` is queued after commit. The task deletes each run with
the runs app's batched deletion (`run_rows_delete`, the machinery a team's deletion reuses), then
the pipelines (items by id range), keys and the user row (what is left hangs off it in a few rows).
Safe to run twice: a rerun (`manage.py delete_user` again) picks up where a lost worker stopped.
"""

import logging
from typing import Any

from celery import current_app
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from knox.models import AuthToken

from apps.audit.services import Actor, record
from apps.core.errors import StateConflict
from apps.keys.models import ProviderKey
from apps.pipelines.models import Pipeline
from apps.runs.models import Run
from apps.runs.services.deletion import run_rows_delete, runs_delete_for_owner
from apps.runs.transitions import RUN_ENDED

logger = logging.getLogger(__name__)

DELETE_USER_TASK = "conveyor.accounts.delete_user"
ITEM_BATCH = 5000


class UserDeletionRefused(StateConflict):
    """The user still has work that may run."""


def user_delete(*, user_id: int, actor: Actor) -> Any:
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        working = Run.objects.filter(owner_id=user.pk, deleting_at__isnull=True).exclude(status__in=RUN_ENDED)
        count = working.count()
        if count:
            raise UserDeletionRefused(
                f"{user.get_username()} has {count} run(s) that may still work: cancel them first"
            )
        was_active = user.is_active
        User.objects.filter(pk=user.pk).update(is_active=False)
        AuthToken.objects.filter(user_id=user.pk).delete()
        runs = runs_delete_for_owner(owner_id=user.pk)
        record(
            actor=actor,
            action="user.delete",
            object_type="user",
            object_id=user.pk,
            before={"username": user.get_username(), "is_active": was_active},
            after={
                "is_active": False,
                "runs_deleted": len(runs),
                "keys_deleted": ProviderKey.objects.filter(owner_id=user.pk).count(),
            },
        )
        transaction.on_commit(lambda: current_app.signature(DELETE_USER_TASK, args=(user.pk,)).apply_async())
    return user


def _execute(sql: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _delete_pipeline(pipeline_id: int) -> None:
    """A pipeline's items by id range in short transactions, then its steps (which hold its runs:
    deleted after) and the pipeline."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(id), max(id) FROM pipelines_pipelineitem WHERE pipeline_id = %s", [pipeline_id]
        )
        low, high = cursor.fetchone()
    if low is not None:
        for start in range(low, high + 1, ITEM_BATCH):
            with transaction.atomic():
                _execute(
                    "DELETE FROM pipelines_pipelineitem WHERE pipeline_id = %s AND id >= %s AND id < %s",
                    [pipeline_id, start, start + ITEM_BATCH],
                )
    with transaction.atomic():
        _execute("DELETE FROM pipelines_pipelinestep WHERE pipeline_id = %s", [pipeline_id])
        _execute("DELETE FROM pipelines_pipeline WHERE id = %s", [pipeline_id])


def user_rows_delete(*, user_id: int) -> dict[str, int]:
    """The background part of user_delete. Does nothing for a user still active (never asked)."""
    User = get_user_model()
    user = User.objects.filter(pk=user_id, is_active=False).first()
    if user is None:
        return {"runs": 0}
    for pipeline_id in Pipeline.objects.filter(owner_id=user_id).values_list("pk", flat=True):
        _delete_pipeline(pipeline_id)
    runs = runs_delete_for_owner(owner_id=user_id)  # again: any made in between are deleted too
    for run_id in runs:
        run_rows_delete(run_id=run_id)
    with transaction.atomic():
        ProviderKey.objects.filter(owner_id=user_id).delete()
        # The rest (webhook secret, admin log entries, tokens) is a few rows: Django's collector.
        User.objects.filter(pk=user_id).delete()
    logger.info("user %s deleted with %s run(s)", user_id, len(runs))
    return {"runs": len(runs)}
