"""Deleting a team (asked for through apps/teams/deletion.py, which this module registers with): its
keys, runs (everything of them), pipelines and webhook events go in the background; its memberships
and limits go; the team row last; its audit records stay (they hold only ids).

`team_delete_start` refuses (409) while any of the team's runs or pipelines may still work, naming how
many: cancel them first. Otherwise, in one short transaction: the team is marked `deleting_at` (gone
from every list), its memberships (and their limits) are deleted, so nobody reaches it any more,
every run of it is marked deleting (gone from every list at once), `team.delete` is recorded, and
after commit each run that is not a pipeline's step is queued on `conveyor.runs.delete_run` (the
runs app's batched deletion) and `conveyor.accounts.delete_team` is queued. That task deletes the
team's pipelines (items by id range, then steps), runs every run still there through the same
`run_rows_delete` (a no-op for one a delete_run task finished; a step's run can go only after its
step), then the keys, the team's webhook events and the team row: the keys, runs and pipelines point
at it with PROTECT, so it goes when they are gone. Safe to run twice: `manage.py teams delete` again
queues it again for a team still being deleted.
"""

import logging

from celery import current_app
from django.db import transaction
from django.utils import timezone

from apps.accounts.deletion import _delete_pipeline
from apps.audit.services import Actor, record
from apps.core.errors import StateConflict
from apps.keys.models import ProviderKey
from apps.pipelines.models import Pipeline
from apps.pipelines.transitions import PipelineStatus
from apps.runs.models import Run
from apps.runs.services.deletion import run_delete_queue_on_commit, run_rows_delete, runs_delete_for_team
from apps.runs.transitions import RUN_ENDED
from apps.teams.auditing import team_fields
from apps.teams.models import Membership, Team

logger = logging.getLogger(__name__)

DELETE_TEAM_TASK = "conveyor.accounts.delete_team"
PIPELINES_ENDED = (PipelineStatus.CANCELED, PipelineStatus.COMPLETE)


class TeamDeletionRefused(StateConflict):
    """The team still has work that may run."""


def team_delete_start(*, team_id: int, actor: Actor) -> Team:
    with transaction.atomic():
        team = Team.objects.select_for_update().get(pk=team_id)
        runs = Run.objects.filter(team_id=team.pk, deleting_at__isnull=True)
        working = runs.exclude(status__in=RUN_ENDED).count()
        moving = Pipeline.objects.filter(team_id=team.pk).exclude(status__in=PIPELINES_ENDED).count()
        if working or moving:
            what = [f"{working} run(s)"] if working else []
            what += [f"{moving} pipeline(s)"] if moving else []
            raise TeamDeletionRefused(
                f"team {team.name} has {' and '.join(what)} that may still work: cancel them first"
            )
        members = list(Membership.objects.filter(team=team).select_related("user").order_by("pk"))
        before = {
            **team_fields(team),
            "members": [f"{row.user.get_username()} ({row.role})" for row in members],
        }
        if team.deleting_at is None:
            team.deleting_at = timezone.now()
            Team.objects.filter(pk=team.pk).update(deleting_at=team.deleting_at)
        Membership.objects.filter(team=team).delete()
        alone, steps = runs_delete_for_team(team_id=team.pk)
        record(
            actor=actor,
            action="team.delete",
            object_type="team",
            object_id=team.pk,
            before=before,
            after={
                "deleting_at": team.deleting_at.isoformat(),
                "runs_deleted": len(alone) + len(steps),
                "pipelines_deleted": Pipeline.objects.filter(team_id=team.pk).count(),
                "keys_deleted": ProviderKey.objects.filter(team_id=team.pk).count(),
            },
            team_id=team.pk,
        )
        for run_id in alone:
            run_delete_queue_on_commit(run_id)
        transaction.on_commit(lambda: current_app.signature(DELETE_TEAM_TASK, args=(team.pk,)).apply_async())
    return team


def team_rows_delete(*, team_id: int) -> dict[str, int]:
    """The background part of team_delete_start. Does nothing for a team not being deleted."""
    if not Team.objects.filter(pk=team_id, deleting_at__isnull=False).exists():
        return {"runs": 0, "pipelines": 0}
    pipelines = list(Pipeline.objects.filter(team_id=team_id).values_list("pk", flat=True))
    for pipeline_id in pipelines:
        _delete_pipeline(pipeline_id)
    alone, steps = runs_delete_for_team(team_id=team_id)  # again: every run, whoever got there first
    for run_id in [*steps, *alone]:
        run_rows_delete(run_id=run_id)
    with transaction.atomic():
        ProviderKey.objects.filter(team_id=team_id).delete()
        Membership.objects.filter(team_id=team_id).delete()
        # The team's own webhook events (`team.spend`, a few rows) go with it: CASCADE.
        Team.objects.filter(pk=team_id).delete()
    logger.info("team %s deleted with %s run(s), %s pipeline(s)", team_id, len(alone) + len(steps),
                len(pipelines))
    return {"runs": len(alone) + len(steps), "pipelines": len(pipelines)}
