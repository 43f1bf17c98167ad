"""What the audit trail records of a team and its members, and the audited form of each change a team
admin makes (the API views and `manage.py teams` call these; the admin records its own saves with
the same field readers). Each runs the service and writes the row in one transaction: a refused
change (400, 403, 409) raises before the row and records nothing.

Every row carries the team's id (`team_id`, so the team's admins read it). A change of the team itself
is `object_type` "team" (object_id: the team's id); a member's is "team_member" (object_id: the
member's user id), with only the fields that changed (an addition or removal: all of them)."""

from typing import Any

from django.db import transaction

from apps.audit.services import Actor, record
from apps.teams.models import Membership, Team
from apps.teams.services import (
    member_add,
    member_remove,
    member_set_role,
    spend_limit_set,
    team_create,
    team_rename,
    team_set_webhook,
)

LIMIT_FIELDS = ("limit_usd", "period", "window_days")


def _limit(holder: Any) -> dict[str, Any]:
    return {name: getattr(holder, name) for name in LIMIT_FIELDS}


def team_fields(team: Team) -> dict[str, Any]:
    return {"name": team.name, **_limit(team), "webhook_url": team.webhook_url}


def member_fields(row: Membership) -> dict[str, Any]:
    return {"user_id": row.user_id, "username": row.user.get_username(), "role": row.role, **_limit(row)}


def team_record(
    actor: Actor, action: str, team_id: int, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    record(actor=actor, action=f"team.{action}", object_type="team", object_id=team_id, before=before,
           after=after, team_id=team_id)


def member_record(
    actor: Actor, action: str, team_id: int, user_id: int, before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """A member's change: the member is the object (`team_member`, their user id), in the team."""
    record(actor=actor, action=f"team.{action}", object_type="team_member", object_id=user_id,
           before=before, after=after, team_id=team_id)


@transaction.atomic
def team_create_audited(*, actor: Actor, creator: Any, name: str) -> Team:
    team = team_create(creator=creator, name=name)
    team_record(actor, "create", team.pk, None, {**team_fields(team), "admin": creator.get_username()})
    return team


@transaction.atomic
def member_add_audited(*, actor: Actor, team: Team, user_ref: str, role: str) -> Membership:
    row = member_add(team=team, user_ref=user_ref, role=role)
    member_record(actor, "member_add", row.team_id, row.user_id, None, member_fields(row))
    return row


@transaction.atomic
def member_set_role_audited(*, actor: Actor, membership: Membership, role: str) -> Membership:
    before = Membership.objects.select_related("user").get(pk=membership.pk)
    row = member_set_role(membership=membership, role=role)
    if row.role != before.role:
        member_record(actor, "member_role", row.team_id, row.user_id, member_fields(before),
                      member_fields(row))
    return row


@transaction.atomic
def member_remove_audited(*, actor: Actor, membership: Membership, leaving: bool = False) -> None:
    before = Membership.objects.select_related("user").get(pk=membership.pk)
    member_remove(membership=membership)
    member_record(actor, "member_leave" if leaving else "member_remove", before.team_id, before.user_id,
                  member_fields(before), None)


@transaction.atomic
def spend_limit_set_audited(*, actor: Actor, holder: Team | Membership, **limit: Any) -> Any:
    before = _limit(holder)
    spend_limit_set(holder=holder, **limit)  # refreshes `holder`
    if _limit(holder) == before:
        return holder
    if isinstance(holder, Team):
        team_record(actor, "limit", holder.pk, before, _limit(holder))
    else:
        member_record(actor, "member_limit", holder.team_id, holder.user_id, before, _limit(holder))
    return holder


@transaction.atomic
def team_update_audited(*, actor: Actor, team: Team, signer: Any, **changes: Any) -> Team:
    """A new name and/or webhook URL (`signer`: the admin whose secret signs it)."""
    before = team_fields(team)
    if "name" in changes:
        team = team_rename(team=team, name=changes["name"])
    if "webhook_url" in changes:
        team = team_set_webhook(team=team, url=changes["webhook_url"], signer=signer)
    if team_fields(team) != before:
        team_record(actor, "update", team.pk, before, team_fields(team))
    return team
