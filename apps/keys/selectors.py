"""Reads of provider keys. Who may see, change and use a key is apps/teams/access.py's to say, so
every caller gets the same answer."""

from typing import Any

from django.db.models import QuerySet

from apps.keys.models import ProviderKey
from apps.teams.access import staff_may, team_role, visible_to
from apps.teams.models import Role


def keys_for_user(*, user: Any) -> QuerySet[ProviderKey]:
    """The keys `user` may see: their own personal keys, their teams' keys, every key for staff with
    keys.view_providerkey."""
    return visible_to(user, ProviderKey.objects.select_related("owner", "team"))


def key_user_may_change(*, user: Any, key: ProviderKey, action: str = "change") -> bool:
    """Whether `user` may change (`action="change"`: update, validate) or delete (`"delete"`) a key
    they can see: their own personal keys and their teams' keys as an admin of the team always;
    anyone else's only as staff with the model permission (superusers have every permission)."""
    if key.team_id is None and key.owner_id == user.pk:
        return True
    if key.team_id is not None and team_role(user, key.team_id) == Role.ADMIN:
        return True
    return bool(user.is_active and (user.is_superuser or (
        user.is_staff and user.has_perm(f"keys.{action}_providerkey"))))


def key_usable_for(*, user: Any, key_id: int, team: Any = None) -> ProviderKey | None:
    """The key a run of `user` (for `team`, or personal) may be submitted with: one of the team's
    keys, or one of the user's personal keys. None for anything else, which the caller reports as
    an unknown key."""
    keys = ProviderKey.objects.filter(pk=key_id)
    if team is not None:
        return keys.filter(team_id=team.pk).first()
    keys = keys.filter(team__isnull=True, owner_id=user.pk)
    return keys.first()


def staff_reads_keys(user: Any) -> bool:
    return staff_may(user, ProviderKey)


def key_get_for_user(*, user: Any, key_id: int) -> ProviderKey | None:
    """One key if `user` may see it; None for a missing key and for another user's key alike, so that
    callers cannot tell the two apart (the API answers 404 for both)."""
    return keys_for_user(user=user).filter(pk=key_id).first()
