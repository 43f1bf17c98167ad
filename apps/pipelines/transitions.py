"""The state machines of a pipeline and of its items, in one place: each move is a queryset method with
one conditional write that returns how many rows it moved (0: not in the state the move starts from).

::

    pipeline:  running / paused ── end (every step's run ended, no item can move) ──► complete
               complete ── reopen (a replay or reseed sent an item on again) ──► running
               running ── pause (its active steps' runs paused) ──► paused ── resume ──► running
               running / paused ── cancel (every step's run canceled) ──► canceling
               canceling ── end (every step's run ended) ──► canceled


    item:      moving ── advance (handed to the next step; position + 1) ──► moving
                 │ ├──── finish (succeeded in the last step) ─────────────► done
                 │ ├──── stop (its block failed or was canceled for good) ──► failed
                 │ └──── filter_out (the next step's filter refused it; position + 1) ► filtered
    moving ── fan_out (its step's array field became child items, `moving` in the next step) ──► fanned_out
    fanned_out ── gather (every child settled; one or more done: the gather step takes it) ──► moving
    fanned_out ── stop (every child settled, none done) ──► failed
    failed ── revive (its block in the step it stopped at succeeded after a dead-letter replay) ──► moving

An item is `moving` while a block of it is open in the step at its `position`, or will be: a pipeline
and its items are created `moving`/`running` (the models' defaults). apps.pipelines.services decide
when; this module says how.
"""

from datetime import datetime

from django.db import models


class PipelineStatus(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused (its steps' runs paused by a person; resume to go on)"
    CANCELING = "canceling", "Canceling (its steps' runs are canceling; calls in flight finish)"
    CANCELED = "canceled", "Canceled (every step's run ended after a cancel)"
    COMPLETE = "complete", "Complete (every step's run ended; no item can move)"


# A pipeline that may still move (settle ends it when no item can).
PIPELINE_OPEN = (PipelineStatus.RUNNING, PipelineStatus.PAUSED, PipelineStatus.CANCELING)
PIPELINE_ENDED = (PipelineStatus.COMPLETE, PipelineStatus.CANCELED)


class ItemStatus(models.TextChoices):
    MOVING = "moving", "Moving (open in its step, or about to be)"
    DONE = "done", "Done (succeeded in the last step)"
    FAILED = "failed", "Failed (its block in a step failed or was canceled for good)"
    FILTERED = "filtered", "Filtered out (a step's filter did not take it)"
    FANNED_OUT = "fanned_out", "Fanned out (into child items; a later gather step takes it on from them)"


class PipelineQuerySet(models.QuerySet):
    def end(self, *, now: datetime) -> int:
        """running -> complete (paused too: its steps may have been resumed one by one and ended)
        or canceling -> canceled. At most one of the two UPDATEs matches, once."""
        running = (PipelineStatus.RUNNING, PipelineStatus.PAUSED)
        return (self.filter(status__in=running).update(status=PipelineStatus.COMPLETE, ended_at=now)
                or self.filter(status=PipelineStatus.CANCELING).update(status=PipelineStatus.CANCELED,
                                                                       ended_at=now))

    def pause(self) -> int:
        return self.filter(status=PipelineStatus.RUNNING).update(status=PipelineStatus.PAUSED)

    def resume(self) -> int:
        return self.filter(status=PipelineStatus.PAUSED).update(status=PipelineStatus.RUNNING)

    def begin_canceling(self) -> int:
        return self.filter(status__in=(PipelineStatus.RUNNING, PipelineStatus.PAUSED)).update(
            status=PipelineStatus.CANCELING)

    def reopen(self) -> int:
        return self.filter(status=PipelineStatus.COMPLETE).update(status=PipelineStatus.RUNNING,
                                                                  ended_at=None)


class PipelineItemQuerySet(models.QuerySet):
    def moving_at(self, position: int) -> "PipelineItemQuerySet":
        return self.filter(status=ItemStatus.MOVING, position=position)

    def advance(self, *, position: int, now: datetime) -> int:
        return self.moving_at(position).update(position=position + 1, updated_at=now)

    def finish(self, *, position: int, now: datetime) -> int:
        return self.moving_at(position).update(status=ItemStatus.DONE, updated_at=now)

    def stop(self, *, position: int, reason: str, now: datetime) -> int:
        return self.moving_at(position).update(status=ItemStatus.FAILED, stop_reason=reason[:1000],
                                               updated_at=now)

    def fan_out(self, *, position: int, now: datetime) -> int:
        return self.moving_at(position).update(status=ItemStatus.FANNED_OUT, updated_at=now)

    def gather(self, *, position: int, now: datetime) -> int:
        """Back from its children, into the step before the gather step (which the handoff takes it
        from, as from any step)."""
        return self.filter(status=ItemStatus.FANNED_OUT).update(status=ItemStatus.MOVING, position=position,
                                                                updated_at=now)

    def revive(self, *, position: int, now: datetime) -> int:
        """An item stopped at `position` whose block there succeeded after all (a dead-letter replay)."""
        return self.filter(status=ItemStatus.FAILED, position=position).update(
            status=ItemStatus.MOVING, stop_reason="", updated_at=now)

    def childless(self, *, reason: str, now: datetime) -> int:
        """fanned out -> failed: no child reached the step before its gather, nothing to gather."""
        return self.filter(status=ItemStatus.FANNED_OUT).update(status=ItemStatus.FAILED,
                                                                stop_reason=reason[:1000], updated_at=now)

    def send_back(self, *, position: int, stale_steps: list[int], now: datetime) -> int:
        """Any state -> moving at `position` (a reseed of that step took its block back); the later
        steps' results it had are stale until rewritten."""
        return self.update(status=ItemStatus.MOVING, position=position, stop_reason="",
                           stale_steps=stale_steps, updated_at=now)

    def filter_out(self, *, position: int, reason: str, now: datetime) -> int:
        """At the step after `position`, whose filter did not take it: it stays there, filtered."""
        return self.moving_at(position).update(status=ItemStatus.FILTERED, position=position + 1,
                                               stop_reason=reason[:1000], updated_at=now)
