"""The admin index's dead-letter notice: how many failures are unresolved, linking to them."""

from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import format_html

from apps.failures.selectors import failures_unresolved_counts

register = template.Library()


@register.simple_tag(takes_context=True)
def unresolved_failures_notice(context: dict[str, Any]) -> str:
    request = context.get("request")
    if request is None or not request.user.has_perm("failures.view_pipelinefailure"):
        return ""
    counts = failures_unresolved_counts()
    url = reverse("admin:failures_pipelinefailure_changelist")
    return format_html(
        '<div class="module" id="unresolved-failures"><h2>Dead letters</h2><p style="padding:8px">'
        '<a href="{}?state=unresolved"><strong>{}</strong> unresolved failure{}</a>, of which '
        '<a href="{}?state=parked">{} parked</a> (replayed only by hand).</p></div>',
        url, counts["unresolved"], "" if counts["unresolved"] == 1 else "s", url, counts["parked"],
    )
