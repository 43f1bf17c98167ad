"""API tokens in the admin: listed by owner, creation and expiry, and revoked by deleting them.

Replaces django-rest-knox's own admin, which shows the token's digest and, when a token is added,
the token itself in a message. Here nothing of the token is shown, and tokens are created only by
their user (the login endpoint) or by an operator on the command line (`manage.py create_token`)."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from knox.models import AuthToken

from apps.accounts.deletion import user_delete
from apps.audit.services import actor_from_admin
from apps.core.errors import StateConflict

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


# Users: Django's own admin, but its delete (the ORM collector over every run, block and attempt of
# the user, in one transaction) is replaced by an action that deletes in the background.
User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class ConveyorUserAdmin(UserAdmin):
    actions = ["delete_in_background"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_erase_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(f"{User._meta.app_label}.delete_{User._meta.model_name}")

    @admin.action(description="Delete selected users and all they own (in the background)",
                  permissions=["erase"])
    def delete_in_background(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        actor = actor_from_admin(request)
        for user in queryset:
            try:
                user_delete(user_id=user.pk, actor=actor)
            except StateConflict as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"{user.get_username()}: deleting in the background.",
                                  messages.SUCCESS)
