"""Which audit rows a caller may read, and the filter over them.

Staff holding `audit.view_auditrecord` (and superusers) read every row. A team's admins read the rows
of their team (`team_id`). Teams are an app above this one, which it does not import: apps/teams
registers, when Django starts (TeamsConfig.ready), the function that names the teams a user
administers (`register_team_scope`), built on its access helper (apps/teams/access.py)."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from apps.audit.models import AuditRecord

_team_scopes: list[Callable[[Any], Any]] = []


def register_team_scope(scope: Callable[[Any], Any]) -> None:
    """`scope(user)`: the ids of the teams whose rows `user` may read (a list or a subquery)."""
    _team_scopes[:] = [scope]


def may_read_all(user: Any) -> bool:
    return bool(
        user.is_authenticated and user.is_active
        and (user.is_superuser or (user.is_staff and user.has_perm("audit.view_auditrecord")))
    )


def audit_records_visible_to(user: Any) -> QuerySet[AuditRecord] | None:
    """The rows `user` may read; None when they may read none at all (no permission, no team they
    administer): the API answers 403."""
    if may_read_all(user):
        return AuditRecord.objects.all()
    if not (user.is_authenticated and user.is_active) or not _team_scopes:
        return None
    team_ids = _team_scopes[0](user)
    if isinstance(team_ids, QuerySet):
        if not team_ids.exists():
            return None
    elif not team_ids:
        return None
    return AuditRecord.objects.filter(team_id__in=team_ids)


def audit_records(
    *,
    rows: QuerySet[AuditRecord] | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    actor_id: int | None = None,
    action: str | None = None,
    team_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditRecord]:
    rows = AuditRecord.objects.all() if rows is None else rows
    if object_type:
        rows = rows.filter(object_type=object_type)
    if object_id:
        rows = rows.filter(object_id=object_id)
    if actor_id is not None:
        rows = rows.filter(actor_id=actor_id)
    if action:
        rows = rows.filter(action=action)
    if team_id is not None:
        rows = rows.filter(team_id=team_id)
    if since:
        rows = rows.filter(at__gte=since)
    if until:
        rows = rows.filter(at__lt=until)
    return rows.order_by("-at", "-id")
