"""`record`: the one way an audit row is written. Called where a person's change is made: API views
(`actor_from_request`), admin actions (`actor_from_admin`) and management commands
(`actor_for_command`), in the same transaction as the change where the caller has one open.

The row says who (id and name, plain columns), what (action, object type and id, the fields that
changed before and after), when, through which channel and from which address. Secrets never: every
value passes through apps.core.redaction, and fields named like a secret are dropped outright.
"""

import getpass
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model

from apps.audit.models import AuditRecord, Channel
from apps.core.redaction import redact
from config.security import client_ip

# Fields that are never written to the trail, whatever their value (a secret's ciphertext is still
# not something people should read in an audit export).
NEVER_RECORDED = frozenset(
    {"secret", "secret_ciphertext", "api_key", "key", "password", "token", "ciphertext", "whsec"}
)


@dataclass(frozen=True)
class Actor:
    user_id: int | None
    name: str
    channel: str
    address: str = ""


def _user_actor(user: Any, channel: str, address: str) -> Actor:
    authenticated = user is not None and getattr(user, "is_authenticated", False)
    return Actor(
        user_id=user.pk if authenticated else None,
        name=user.get_username() if authenticated else "",
        channel=channel,
        address=address,
    )


def actor_from_request(request: Any) -> Actor:
    """The API's caller: request.user, from the client's address (behind TRUSTED_PROXY_COUNT proxies)."""
    return _user_actor(request.user, Channel.API, client_ip(request))


def actor_from_admin(request: Any) -> Actor:
    return _user_actor(request.user, Channel.ADMIN, client_ip(request))


def actor_for_command(username: str | None = None) -> Actor:
    """A management command's actor: the Conveyor user named by `--as`, else the OS user (by name
    only, with an id when a Conveyor user of that name exists)."""
    name = username or getpass.getuser()
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: name}).first()
    if username and user is None:
        raise LookupError(f"no user named {username!r} (--as)")
    return Actor(user_id=user.pk if user else None, name=name, channel=Channel.COMMAND)


def _clean(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items() if str(k).lower() not in NEVER_RECORDED}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


Fields = dict[str, Any]


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[Fields, Fields]:
    """Only the fields whose value differs, on both sides."""
    names = sorted(name for name in {*before, *after} if before.get(name) != after.get(name))
    return ({n: before.get(n) for n in names if n in before}, {n: after.get(n) for n in names if n in after})


def record(
    *,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: Any,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    team_id: int | None = None,
) -> AuditRecord:
    """Append one row. `before` / `after` are the object's fields as people read them; pass both and
    only the fields that changed are kept."""
    before, after = dict(before or {}), dict(after or {})
    if before and after:
        before, after = changed_fields(before, after)
    changes = {"before": redact(_clean(before)), "after": redact(_clean(after))}
    return AuditRecord.objects.create(
        actor_id=actor.user_id,
        actor_name=actor.name[:150],
        action=action[:64],
        object_type=object_type[:32],
        object_id=str(object_id)[:64],
        changes=changes,
        channel=actor.channel,
        remote_address=(actor.address or "")[:64],
        team_id=team_id,
    )
