"""API tokens in the admin: listed by owner, creation and expiry, and revoked by deleting them.

Replaces django-rest-knox's own admin, which shows the token's digest and, when a token is added,
the token itself in a message. Here nothing of the token is shown, and tokens are created only by
their user (the login endpoint) or by an operator on the command line (`manage.py create_token`)."""

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from knox.models import AuthToken

if admin.site.is_registered(AuthToken):
    admin.site.unregister(AuthToken)


@admin.register(AuthToken)
class AuthTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "created", "expiry", "expired"]
    list_filter = ["created", "expiry"]
    search_fields = ["user__username"]
    list_select_related = ["user"]
    fields = ["user", "created", "expiry"]
    readonly_fields = fields  # type: ignore[assignment]  # (the stubs allow field groups in `fields`)
    actions = ["delete_selected"]

    @admin.display(boolean=True, description="expired")
    def expired(self, obj: AuthToken) -> bool:
        return obj.expiry is not None and obj.expiry < timezone.now()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuthToken | None = None) -> bool:
        return False
