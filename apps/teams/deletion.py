"""Deleting a team: asked for here (`DELETE /api/v1/teams/<id>/`, the admin's action, `manage.py teams
delete`), done by the app that holds what a team owns. Keys, runs and pipelines are in apps above
this one, which it does not import; apps/accounts/team_deletion.py registers the deleter when Django
starts (AccountsConfig.ready), as the engine's receivers register for this app's signals.

The deleter refuses (StateConflict, a 409) while any of the team's runs or pipelines may still work,
naming how many; otherwise it marks the team deleting, takes its members out, marks its runs
deleting, records `team.delete` and queues the background deletion, all in one transaction."""

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from apps.audit.services import Actor

_deleters: list[Callable[..., Any]] = []


def register_team_deleter(deleter: Callable[..., Any]) -> None:
    _deleters[:] = [deleter]


def team_delete(*, team_id: int, actor: Actor) -> Any:
    if not _deleters:
        raise ImproperlyConfigured("no team deleter registered (apps.accounts registers it at start)")
    return _deleters[0](team_id=team_id, actor=actor)
