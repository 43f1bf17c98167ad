"""The API's shapes for provider keys. The secret is write-only: it has no output field at all, and
responses show `suffix` (its last four characters) instead."""

from rest_framework import serializers

from apps.keys.models import Provider, ProviderKey


def _secret_field(*, required: bool) -> serializers.CharField:
    return serializers.CharField(
        write_only=True, required=required, max_length=500, style={"input_type": "password"},
        help_text="The provider API key. Stored encrypted; never shown again (see `suffix`).",
    )


class KeyCreateInputSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100)
    secret = _secret_field(required=True)
    base_url = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="",
        help_text="Empty for the provider's official URL.",
    )
    provider = serializers.ChoiceField(choices=Provider.choices, default=Provider.ANTHROPIC)


class KeyUpdateInputSerializer(serializers.Serializer):
    """Every field is optional: only what is sent changes."""

    label = serializers.CharField(max_length=100, required=False)
    secret = _secret_field(required=False)
    base_url = serializers.CharField(max_length=500, required=False, allow_blank=True)


class KeyOutputSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.get_username", read_only=True)

    class Meta:
        model = ProviderKey
        # An explicit list, so that a new model field is never published by accident.
        fields = [
            "id", "owner", "provider", "label", "suffix", "base_url", "is_valid", "validated_at",
            "validation_error", "tier", "rpm_limit", "itpm_limit", "otpm_limit", "created_at",
            "updated_at",
        ]
        read_only_fields = fields
