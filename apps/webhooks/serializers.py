"""The API's shapes for webhooks. The signing secret has an output field only in the answer to its
creation (WebhookSecretCreatedSerializer); every other shape lists its fields explicitly."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.webhooks.models import DeliveryStatus, WebhookDelivery
from apps.webhooks.selectors import delivery_payload

MAX_ID = 2**63 - 1


class WebhookSecretSerializer(serializers.Serializer):
    suffix = serializers.CharField(help_text="The secret's last four characters: all that is shown again.")
    created_at = serializers.DateTimeField(help_text="When it was created or last rotated.")


class WebhookSecretCreatedSerializer(WebhookSecretSerializer):
    secret = serializers.CharField(
        help_text="`whsec_...`: shown this once, never again. Verify deliveries with it "
                  "(`standardwebhooks.webhooks.Webhook(secret).verify(body, headers)`).")


class DeliveryFilterSerializer(serializers.Serializer):
    run = serializers.UUIDField(required=False, help_text="Only this run's deliveries.")
    status = serializers.ChoiceField(choices=DeliveryStatus.choices, required=False)


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    run = serializers.UUIDField(source="run_id")
    pass_number = serializers.IntegerField()
    event_id = serializers.CharField(help_text="The `webhook-id` header: the same on every attempt.")
    event_type = serializers.CharField()
    url = serializers.CharField(help_text="Where it is POSTed (the run's webhook_url).")
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    last_status_code = serializers.IntegerField(
        allow_null=True, help_text="The receiver's HTTP status at the last attempt (3xx too: redirects "
                                   "are never followed); null when no answer came.")
    last_error = serializers.CharField(
        help_text="Why the last attempt failed: http_<status>, redirect, timeout, connect_error, "
                  "address_not_allowed, url_not_allowed, no_secret; empty once delivered.")
    last_error_detail = serializers.CharField(
        help_text="In words; of the receiver's answer only its status, content type and size.")
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    give_up_at = serializers.DateTimeField(help_text="A failure after this is final (status failed).")
    delivered_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()


class DeliveryDetailSerializer(DeliverySerializer):
    payload = serializers.SerializerMethodField(help_text="The event as sent (the body, parsed).")

    @extend_schema_field(serializers.JSONField())
    def get_payload(self, delivery: WebhookDelivery) -> Any:
        return delivery_payload(delivery)
