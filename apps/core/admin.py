"""What every app's operator console shares: pages that are read-only while staff may still operate
(through the services), and the cells of a list that fits a 1,400 px screen: ids shortened, long
messages cut and moments short, each whole in its tooltip."""

import json
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

MESSAGE_CHARS = 80


class OperatorActionsMixin:
    """Pages are view-only (no change form saves anything), yet staff with the model's change
    permission may run the operations, which go through the services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        opts = self.model._meta  # type: ignore[attr-defined]
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


def short_id(value: Any) -> str:
    """The first 8 characters of an id, unwrapped, the whole id in the tooltip."""
    text = str(value)
    return format_html('<code style="white-space:nowrap" title="{}">{}</code>', text, text[:8])


def cut(text: str, length: int = MESSAGE_CHARS) -> str:
    """A long message on one line of a list, the whole of it in the tooltip."""
    flat = " ".join((text or "").split())
    if not flat:
        return "-"
    shown = flat if len(flat) <= length else f"{flat[:length - 1]}…"
    return format_html('<span title="{}" style="display:inline-block;min-width:15em">{}</span>', flat, shown)


def nowrap(text: str) -> str:
    return format_html('<span style="white-space:nowrap">{}</span>', text)


def moment(value: Any) -> str:
    """A moment in a list: short (Dec 01 22:18), the whole of it in the tooltip."""
    if value is None:
        return "-"
    local = timezone.localtime(value)
    return format_html('<span style="white-space:nowrap" title="{}">{}</span>',
                       local.strftime("%Y-%m-%d %H:%M:%S %Z"), local.strftime("%b %d %H:%M"))


def pretty_json(value: Any) -> str:
    """A JSON value (a payload snapshot, a context) readable on a row's page."""
    return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>',
                       json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False))
