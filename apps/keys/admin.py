"""Staff manage every key here. The secret is entered in a password field that never echoes it, and
saving goes through the same services as the API (encryption, base_url rules, revalidation)."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from apps.audit.services import actor_from_admin, record
from apps.core.addresses import BaseUrlError
from apps.keys.auditing import key_fields
from apps.keys.base_url import validate_base_url
from apps.keys.models import ProviderKey
from apps.keys.services import (
    LIMIT_FIELDS,
    SECRET_FOR_NEW_BASE_URL,
    KeyInUse,
    key_create,
    key_delete,
    key_schedule_validation,
    key_set_limits,
    key_update,
)
from apps.lanes.selectors import lanes_of_key


class ProviderKeyAdminForm(forms.ModelForm):
    # render_value=False: a form shown again after an error, or the change page, never carries it.
    secret = forms.CharField(
        widget=forms.PasswordInput(render_value=False),
        required=False,
        strip=True,
        help_text="Stored encrypted and never shown again. On an existing key, leave empty to keep the "
                  "current secret (not when changing the base_url: the secret must be entered again).",
    )

    class Meta:
        model = ProviderKey
        fields = ["owner", "provider", "label", "base_url", "tier", "rpm_limit", "itpm_limit", "otpm_limit"]

    def clean_base_url(self) -> str:
        # On a new key the provider field comes first; on an existing one it is read-only.
        provider = self.cleaned_data.get("provider") or self.instance.provider
        try:
            return validate_base_url(self.cleaned_data.get("base_url", ""), provider=provider)
        except BaseUrlError as exc:
            raise forms.ValidationError(exc.message, code=exc.rule) from None

    def clean_secret(self) -> str:
        secret = self.cleaned_data.get("secret", "")
        if not self.instance.pk and not secret:
            raise forms.ValidationError("A secret is required for a new key.")
        return secret

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        # The same rule as key_update, as a form error: the stored secret never follows a new URL.
        if (self.instance.pk and "base_url" in cleaned and not cleaned.get("secret")
                and cleaned["base_url"] != self.instance.base_url):
            self.add_error("secret", SECRET_FOR_NEW_BASE_URL)
        # The (owner, label) constraint is skipped by the model form when owner is read-only.
        owner = cleaned.get("owner") or (self.instance.owner if self.instance.pk else None)
        label = (cleaned.get("label") or "").strip()
        if owner is not None and label:
            taken = ProviderKey.objects.filter(owner=owner, label=label).exclude(pk=self.instance.pk)
            if taken.exists():
                self.add_error("label", f"{owner} already has a key labelled {label!r}.")
        return cleaned


@admin.register(ProviderKey)
class ProviderKeyAdmin(admin.ModelAdmin):
    form = ProviderKeyAdminForm
    list_display = ["label", "owner", "provider", "suffix", "is_valid", "validated_at"]
    list_filter = ["provider", "is_valid"]
    search_fields = ["label", "owner__username", "suffix"]
    list_select_related = ["owner"]
    actions = ["validate_now"]
    readonly_fields = [
        "suffix", "is_valid", "validated_at", "validation_error", "lanes", "revision",
        "created_at", "updated_at",
    ]

    def get_fields(self, request: HttpRequest, obj: ProviderKey | None = None  # type: ignore[override]
                   ) -> list[str]:
        editable = ["owner", "provider", "label", "base_url", "secret", "tier", "rpm_limit", "itpm_limit",
                    "otpm_limit"]
        return editable if obj is None else [*editable, *self.readonly_fields]

    @admin.display(description="lanes (live, per model group)")
    def lanes(self, key: ProviderKey) -> str:
        rows = lanes_of_key(key=key)
        if not rows:
            return "no calls made with this key yet"
        return format_html_join(
            "", "<div><b>{}</b>: limits {} rpm / {} itpm / {} otpm ({}), {} in flight, {} calls/min, "
                "window {}{}</div>",
            ((lane.group, lane.rpm_limit or "?", lane.itpm_limit or "?", lane.otpm_limit or "?",
              lane.limits_source or "not known yet", lane.in_flight, lane.rate_rpm, lane.window,
              f"; {lane.waiting}" if lane.waiting else "") for lane in rows),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: ProviderKey | None = None) -> list[str]:
        # A key keeps its owner and provider: runs already made with it belong to that pair.
        return list(self.readonly_fields) + (["owner", "provider"] if obj is not None else [])

    def save_model(self, request: HttpRequest, obj: ProviderKey, form: ProviderKeyAdminForm,
                   change: bool) -> None:
        data = form.cleaned_data
        limits: dict[str, Any] = {name: data.get(name) for name in ("tier", *LIMIT_FIELDS)}
        with transaction.atomic():
            if change:
                before = key_fields(ProviderKey.objects.get(pk=obj.pk))
                saved = key_update(key=obj, label=data["label"], base_url=data["base_url"],
                                   secret=data["secret"] or None)
                saved = key_set_limits(key=saved, **limits)
                action = "key.rotate" if data["secret"] else "key.update"
            else:
                before = {}
                saved = key_create(owner=data["owner"], label=data["label"], secret=data["secret"],
                                   base_url=data["base_url"], provider=data["provider"], **limits)
                action = "key.create"
            record(actor=actor_from_admin(request), action=action, object_type="key", object_id=saved.pk,
                   before=before, after=key_fields(saved), team_id=saved.team_id)
        # The admin goes on with `obj` (log entry, redirect): give it the saved row's state.
        for field in ProviderKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding = False

    def delete_model(self, request: HttpRequest, obj: ProviderKey) -> None:
        self._delete(request, obj)

    @staticmethod
    def _delete(request: HttpRequest, key: ProviderKey) -> None:
        key_id, before, team_id = key.pk, key_fields(key), key.team_id
        with transaction.atomic():
            key_delete(key=key)
            record(actor=actor_from_admin(request), action="key.delete", object_type="key",
                   object_id=key_id, before=before, team_id=team_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ProviderKey]) -> None:
        for key in queryset:
            try:
                self._delete(request, key)
            except KeyInUse as exc:
                self.message_user(request, f"{key}: {exc}", messages.ERROR)

    @admin.action(description="Validate now (one cheap call to the provider)")
    def validate_now(self, request: HttpRequest, queryset: QuerySet[ProviderKey]) -> None:
        count = 0
        for key in queryset:
            key_schedule_validation(key=key)
            count += 1
        self.message_user(request, f"Validation queued for {count} key(s); refresh to see the results.",
                          messages.SUCCESS)
