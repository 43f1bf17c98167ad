"""The API's shapes for provider keys. The secret is write-only: it has no output field at all, and
responses show `suffix` (its last four characters) instead."""

from typing import Any, cast

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.keys.models import Provider, ProviderKey
from apps.lanes.limits import tier_choices
from apps.lanes.selectors import lanes_of_key
from apps.lanes.serializers import LaneStateSerializer


def _limit_field(help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(min_value=1, max_value=1_000_000_000, required=False,
                                    allow_null=True, help_text=help_text)


class KeyLimitsInputSerializer(serializers.Serializer):
    """What the scheduler may assume about the key's rate limits before the provider's headers say."""

    tier = serializers.ChoiceField(
        choices=[("", "not known"), *tier_choices()], required=False,
        help_text="Its usage tier: the documented limits are the starting guess (headers replace it).")
    rpm_limit = _limit_field("Requests per minute at most, per model group; a cap that always applies.")
    itpm_limit = _limit_field("Input tokens per minute at most (cache reads do not count).")
    otpm_limit = _limit_field("Output tokens per minute at most (max_tokens is reserved per call).")


def _secret_field(*, required: bool) -> serializers.CharField:
    return serializers.CharField(
        write_only=True, required=required, max_length=500, style={"input_type": "password"},
        help_text="The provider API key. Stored encrypted; never shown again (see `suffix`).",
    )


class KeyCreateInputSerializer(KeyLimitsInputSerializer):
    # (A declared field is taken off the class by DRF: it does not hide Field.label.)
    label = serializers.CharField(max_length=100)  # type: ignore[assignment]
    secret = _secret_field(required=True)
    base_url = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="",
        help_text="Empty for the provider's official URL.",
    )
    provider = serializers.ChoiceField(choices=Provider.choices, default=Provider.ANTHROPIC)
    team = serializers.IntegerField(min_value=1, max_value=2**63 - 1, required=False, allow_null=True,
                                    default=None, help_text="A team's key (you must be its admin); "
                                                            "omitted: a personal key.")


class KeyUpdateInputSerializer(KeyLimitsInputSerializer):
    """Every field is optional: only what is sent changes."""

    label = serializers.CharField(max_length=100, required=False)  # type: ignore[assignment]
    secret = _secret_field(required=False)
    base_url = serializers.CharField(max_length=500, required=False, allow_blank=True)


class KeyOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    lanes = serializers.SerializerMethodField(
        help_text="What the workers know and do per model group: limits and where they came from, "
                  "current rate, calls in flight, window, throttled / overloaded until.")

    @extend_schema_field(LaneStateSerializer(many=True))
    def get_lanes(self, key: ProviderKey) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], LaneStateSerializer(lanes_of_key(key=key), many=True).data)

    class Meta:
        model = ProviderKey
        # An explicit list, so that a new model field is never published by accident.
        fields = [
            "id", "owner", "team", "provider", "label", "suffix", "base_url", "is_valid", "validated_at",
            "validation_error", "tier", "rpm_limit", "itpm_limit", "otpm_limit", "lanes",
            "created_at", "updated_at",
        ]
        read_only_fields = fields
