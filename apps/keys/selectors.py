"""Reads of provider keys. Ownership is enforced here, so every caller gets the same answer."""

from typing import Any

from django.db.models import QuerySet

from apps.keys.models import ProviderKey


def keys_for_user(*, user: Any) -> QuerySet[ProviderKey]:
    """The keys `user` may see and manage: their own, or every key for staff."""
    keys = ProviderKey.objects.select_related("owner")
    if user.is_staff:
        return keys
    return keys.filter(owner_id=user.pk)


def key_user_may_change(*, user: Any, key: ProviderKey, action: str = "change") -> bool:
    """Whether `user` may change (`action="change"`: update, validate) or delete (`"delete"`) a key
    they can see: their own always; another user's only with the model permission (superusers have
    every permission). Being staff is enough to read every key, not to change one."""
    return key.owner_id == user.pk or user.has_perm(f"keys.{action}_providerkey")


def key_get_for_user(*, user: Any, key_id: int) -> ProviderKey | None:
    """One key if `user` may see it; None for a missing key and for another user's key alike, so that
    callers cannot tell the two apart (the API answers 404 for both)."""
    return keys_for_user(user=user).filter(pk=key_id).first()
