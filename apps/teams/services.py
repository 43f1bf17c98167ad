"""Writes of the teams app: teams, memberships and roles, spend limits. Every change is checked
whole before anything is written, so bad input leaves nothing half-done; the caller's right to make
it (a team admin, or staff with the permission) is the API's and the admin's to check first."""

from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q

from apps.core.addresses import WebhookUrlError, validate_webhook_url
from apps.core.errors import InvalidInput, StateConflict
from apps.teams.models import Membership, Role, SpendLimit, SpendPeriod, Team
from apps.teams.signals import spend_limit_changed

MAX_LIMIT_USD = Decimal("99999999.9999")
MAX_WINDOW_DAYS = 366


def check_role(role: Any) -> str:
    if role not in Role.values:
        raise InvalidInput(f"{role!r} is not a role: choose one of {', '.join(Role.values)}", field="role")
    return str(role)


def _lock_team(team_id: Any) -> Team:
    return Team.objects.select_for_update(no_key=True).get(pk=team_id)


@transaction.atomic
def team_create(*, creator: Any, name: str) -> Team:
    """A new team, with `creator` as its first admin."""
    name = (name or "").strip()
    if not name:
        raise InvalidInput("a team needs a name", field="name")
    if len(name) > 100:
        raise InvalidInput("at most 100 characters", field="name")
    if Team.objects.filter(name=name).exists():
        raise InvalidInput(f"a team named {name!r} already exists", field="name")
    try:
        with transaction.atomic():
            team = Team.objects.create(name=name)
    except IntegrityError:  # created meanwhile by someone else
        raise InvalidInput(f"a team named {name!r} already exists", field="name") from None
    Membership.objects.create(team=team, user=creator, role=Role.ADMIN)
    return team


def user_named(ref: str) -> Any:
    """The user whose username or email is `ref` (exactly; the email case-insensitively)."""
    ref = (ref or "").strip()
    users = (
        get_user_model().objects.filter(Q(username=ref) | Q(email__iexact=ref), is_active=True)
        if ref
        else get_user_model().objects.none()
    )
    found = list(users[:2])
    if len(found) != 1:
        raise InvalidInput(
            f"no user with the username or email {ref!r}"
            if not found
            else f"{ref!r} names more than one user: give the username",
            field="user",
        )
    return found[0]


@transaction.atomic
def member_add(*, team: Team, user_ref: str, role: str) -> Membership:
    """Add a user (by username or email) to the team with a role. A member already there is refused,
    naming their role: change it instead."""
    role = check_role(role)
    user = user_named(user_ref)
    _lock_team(team.pk)
    existing = Membership.objects.filter(team=team, user=user).first()
    if existing is not None:
        raise InvalidInput(
            f"{user.get_username()} is already a member of team {team.name} (as "
            f"{existing.role}): change their role instead",
            field="user",
        )
    return Membership.objects.create(team=team, user=user, role=role)


def _keep_an_admin(membership: Membership) -> None:
    others = Membership.objects.filter(team_id=membership.team_id, role=Role.ADMIN).exclude(pk=membership.pk)
    if membership.role == Role.ADMIN and not others.exists():
        raise StateConflict(
            f"{membership.user.get_username()} is the last admin of team "
            f"{membership.team.name}: make another member admin first"
        )


@transaction.atomic
def member_set_role(*, membership: Membership, role: str) -> Membership:
    role = check_role(role)
    _lock_team(membership.team_id)
    membership.refresh_from_db()
    if role != Role.ADMIN:
        _keep_an_admin(membership)
    Membership.objects.filter(pk=membership.pk).update(role=role)
    membership.refresh_from_db()
    return membership


@transaction.atomic
def member_remove(*, membership: Membership) -> None:
    """Take a member out of the team: the team's keys and runs stay the team's; runs they submitted
    stay in it (the team's admins and members manage them)."""
    _lock_team(membership.team_id)
    _keep_an_admin(membership)
    membership.delete()


def checked_limit(value: Any) -> Decimal | None:
    """A limit in dollars: a number from 0 up (None or "": no limit)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool | float):
        value = str(value)
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise InvalidInput(f"{value!r} is not a number of dollars", field="limit_usd") from None
    if not amount.is_finite():
        raise InvalidInput(f"{value!r} is not a number of dollars", field="limit_usd")
    if amount < 0:
        raise InvalidInput("a limit cannot be negative", field="limit_usd")
    if amount > MAX_LIMIT_USD:
        raise InvalidInput(f"at most {MAX_LIMIT_USD}", field="limit_usd")
    if amount != amount.quantize(Decimal("0.0001")):
        raise InvalidInput("at most four decimal places", field="limit_usd")
    return amount


def checked_period(period: Any, window_days: Any) -> tuple[str, int | None]:
    if period not in SpendPeriod.values:
        raise InvalidInput(
            f"{period!r} is not a period: choose one of {', '.join(SpendPeriod.values)}", field="period"
        )
    if period == SpendPeriod.MONTH:
        if window_days not in (None, ""):
            raise InvalidInput("only a rolling_days period has a window", field="window_days")
        return str(period), None
    try:
        days = int(str(window_days))
    except ValueError:
        raise InvalidInput(
            "a rolling_days period needs a whole number of days", field="window_days"
        ) from None
    if not 1 <= days <= MAX_WINDOW_DAYS:
        raise InvalidInput(f"from 1 to {MAX_WINDOW_DAYS} days", field="window_days")
    return str(period), days


@transaction.atomic
def spend_limit_set(
    *, holder: SpendLimit, limit_usd: Any, period: Any = SpendPeriod.MONTH, window_days: Any = None
) -> SpendLimit:
    """Set (or with None remove) the limit of a team or of a member within it. Every value is checked
    before anything is written. The team's runs it paused are looked at again after commit: those
    the new limit can pay for resume."""
    amount = checked_limit(limit_usd)
    period, days = checked_period(period, window_days)
    model = type(holder)
    model._default_manager.filter(pk=holder.pk).update(limit_usd=amount, period=period, window_days=days)
    holder.refresh_from_db()
    team_id = holder.pk if isinstance(holder, Team) else holder.team_id  # type: ignore[attr-defined]
    transaction.on_commit(lambda: spend_limit_changed.send(sender=model, team_id=team_id))
    return holder


@transaction.atomic
def team_set_webhook(*, team: Team, url: str, signer: Any) -> Team:
    """Where the team's `team.spend` events go, signed with `signer`'s signing secret (the admin
    setting it must have one). An empty url removes it."""
    url = (url or "").strip()
    if url:
        try:
            url = validate_webhook_url(url)
        except WebhookUrlError as exc:
            raise InvalidInput(str(exc.message), field="webhook_url") from None
        if not get_user_model().objects.filter(pk=signer.pk, webhook_secret__isnull=False).exists():
            raise InvalidInput(
                "you have no webhook signing secret yet: create one first with "
                "POST /api/v1/webhooks/secret/, so that every event can be verified",
                field="webhook_url",
            )
    Team.objects.filter(pk=team.pk).update(webhook_url=url, webhook_signer=signer if url else None)
    team.refresh_from_db()
    return team


def team_rename(*, team: Team, name: str) -> Team:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("a team needs a name of at most 100 characters", field="name")
    if Team.objects.filter(name=name).exclude(pk=team.pk).exists():
        raise InvalidInput(f"a team named {name!r} already exists", field="name")
    Team.objects.filter(pk=team.pk).update(name=name)
    team.refresh_from_db()
    return team
