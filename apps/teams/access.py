"""Who may see and change what: the one helper every selector and view filters through.

A key, run, pipeline, failure or webhook delivery is either personal (its `team` is empty: its owner's
alone) or a team's. A caller reads:
- their own personal objects;
- every object of a team they belong to, whatever their role;
- everything, as staff holding the model's `view_*` permission (what the admin already requires), or
  as a superuser.
A caller changes (cancel, resume, budget, reseed, replay, resolve, redeliver, key changes):
- their own personal objects;
- a team's objects when their role allows it: admins and members change the team's runs and what
  hangs on them; only admins change the team's keys (`AccessRule.write_roles`);
- everything, as staff holding the model's `change_*` permission, or as a superuser.
Being staff alone grants nothing: the API is not a back door around the admin's permissions. Reads
and writes are checked separately, so a caller may be able to read what they may not change (a
viewer, staff with `view_*` only): they get a 403 that says why; what a caller cannot read at all is
a 404, as a missing object is, so nobody learns what other teams hold.

`user=None` is the operator at the command line (`manage.py runs ...`): everything.

Models say how they are reached through `access` (an `AccessRule`): the path from the object to its
`owner` and `team` ("" on the object itself, "run__" through its run). This module imports no model
above it, so every app below the engine can use it."""

from dataclasses import dataclass
from typing import Any, TypeVar

from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet

from apps.teams.models import Membership, Role, Team

ALL_ROLES = frozenset(Role.values)
M = TypeVar("M", bound=Model)

RUN_WRITERS = frozenset({Role.ADMIN, Role.MEMBER})
ADMINS = frozenset({Role.ADMIN})


@dataclass(frozen=True)
class AccessRule:
    # The lookup from the object to the one holding `owner` and `team`: "" or e.g. "run__".
    path: str = ""
    # The team roles that may change a team's object.
    write_roles: frozenset[str] = RUN_WRITERS
    # What is changed: "run", "key"... for the messages.
    noun: str = "object"


DEFAULT_RULE = AccessRule()


def rule_of(model: type[Model]) -> AccessRule:
    rule = getattr(model, "access", DEFAULT_RULE)
    return rule if isinstance(rule, AccessRule) else DEFAULT_RULE


def _permission(model: type[Model], action: str) -> str:
    meta = model._meta
    return f"{meta.app_label}.{action}_{meta.model_name}"


def staff_may(user: Any, model: type[Model], *, write: bool = False) -> bool:
    """Whether `user` may read (or change) every row of `model`: a superuser, or staff holding the
    model's view_* or change_* (to change: change_*) permission. `is_staff` alone is not enough."""
    if user is None:
        return True
    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    if not user.is_staff:
        return False
    # As in the admin, the change permission lets one read too.
    return bool(user.has_perm(_permission(model, "change"))
                or (not write and user.has_perm(_permission(model, "view"))))


def team_ids_of(user: Any, *, roles: frozenset[str] = ALL_ROLES) -> QuerySet[Membership, Any]:
    """The ids of the teams in which `user` holds one of `roles` (a subquery)."""
    return Membership.objects.filter(user_id=user.pk, role__in=list(roles)).values("team_id")


def visible_to(user: Any, queryset: QuerySet[M], *, write: bool = False) -> QuerySet[M]:
    """The rows of `queryset` that `user` may read, or with `write=True` change."""
    if staff_may(user, queryset.model, write=write):
        return queryset
    if not (user.is_authenticated and user.is_active):
        return queryset.none()
    rule = rule_of(queryset.model)
    p = rule.path
    roles = rule.write_roles if write else ALL_ROLES
    personal = Q(**{f"{p}team__isnull": True, f"{p}owner_id": user.pk})
    teams = Q(**{f"{p}team_id__in": team_ids_of(user, roles=roles)})
    return queryset.filter(personal | teams)


def may_write(user: Any, obj: Model) -> bool:
    model = type(obj)
    return visible_to(user, model._default_manager.filter(pk=obj.pk), write=True).exists()


def write_refusal(user: Any, obj: Model) -> str:
    """Why `user`, who can read `obj`, may not change it: the 403's message."""
    model = type(obj)
    rule = rule_of(model)
    holder = obj
    for step in filter(None, rule.path.split("__")):
        holder = getattr(holder, step)
    team_id = getattr(holder, "team_id", None)
    if team_id is not None:
        role = team_role(user, team_id)
        if role is not None:
            who = ", ".join(sorted(r for r in rule.write_roles))
            return (
                f"you are a {role} of team {Team.objects.get(pk=team_id).name}: only its {who}s "
                f"may change its {rule.noun}s"
            )
    return (
        f"you may read this {rule.noun} but not change it: it belongs to another "
        f"{'team' if team_id is not None else 'user'}, and changing it needs the "
        f"{_permission(model, 'change')} permission"
    )


def check_write(user: Any, obj: Model) -> None:
    """Raise PermissionDenied (a 403 naming the reason) unless `user` may change `obj`, which the
    caller found among what `user` may read."""
    if not may_write(user, obj):
        raise PermissionDenied(write_refusal(user, obj))


def team_role(user: Any, team_id: Any) -> str | None:
    if user is None or not user.is_authenticated:
        return None
    return Membership.objects.filter(user_id=user.pk, team_id=team_id).values_list("role", flat=True).first()


def teams_visible_to(user: Any, *, roles: frozenset[str] = ALL_ROLES) -> QuerySet[Team]:
    """The teams `user` belongs to with one of `roles` (every team for staff with teams.view_team);
    never one being deleted."""
    teams = Team.objects.filter(deleting_at__isnull=True)  # one being deleted: gone for everyone
    if roles == ALL_ROLES and staff_may(user, Team):
        return teams
    if user is None or not user.is_authenticated:
        return Team.objects.none()
    return teams.filter(pk__in=team_ids_of(user, roles=roles))


def check_may_submit(user: Any, team: Team) -> None:
    """A run for `team` needs an admin or a member of it: a viewer is refused (403, saying so)."""
    role = team_role(user, team.pk)
    if role not in RUN_WRITERS:
        raise PermissionDenied(
            f"you are a viewer of team {team.name}: viewers read the team's runs, "
            "only its admins and members submit them"
            if role == Role.VIEWER
            else f"you are not a member of team {team.name}"
        )
