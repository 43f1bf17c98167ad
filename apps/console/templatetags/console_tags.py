"""Template filters of the console: amounts and moments as the rest of Conveyor writes them."""

from datetime import datetime
from typing import Any

from django import template
from django.utils import timezone

from apps.core.formatting import format_moment, format_usd
from apps.runs.selectors import run_status_text

register = template.Library()


@register.filter
def usd(value: Any) -> str:
    return format_usd(value)


@register.filter
def short_id(value: Any) -> str:
    return str(value)[:8]


@register.filter
def when(value: datetime | None) -> str:
    """A moment in a list: Dec 01 22:18 (server time)."""
    return "-" if value is None else timezone.localtime(value).strftime("%b %d %H:%M")


@register.filter
def clock(value: datetime | None) -> str:
    """A moment today, to the second: 21:40:12 UTC."""
    return "-" if value is None else format_moment(value)


@register.filter
def still_ahead(value: datetime | None) -> bool:
    return value is not None and value > timezone.now()


@register.filter
def run_status(run: Any) -> str:
    """The status as people should read it ("complete, all failed")."""
    return run_status_text(run)
