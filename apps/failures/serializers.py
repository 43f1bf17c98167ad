"""The API's shapes for the dead-letter table."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.failures.models import UNRESOLVED, FailureState, PipelineFailure, failure_state

MAX_BULK_IDS = 1000
MAX_ID = 2**63 - 1


class FailureOutputSerializer(serializers.ModelSerializer):
    block_uid = serializers.CharField(read_only=True, allow_null=True,
                                      help_text="The uid of the failed block within its run.")
    state = serializers.SerializerMethodField(
        help_text="scheduled: replayed when next_retry_at comes; parked: replayed only by hand; "
                  "resolved: closed. Unresolved means scheduled or parked."
    )

    class Meta:
        model = PipelineFailure
        # An explicit list, so that a new model field is never published by accident.
        fields = [
            "id", "run", "block", "block_uid", "state", "failing_function", "caller_function",
            "http_status", "error_code", "error_message", "attempt_count", "replay_count",
            "payload_snapshot", "context", "failed_at", "next_retry_at", "resolved_at",
            "resolution_note",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=FailureState.choices))
    def get_state(self, obj: PipelineFailure) -> str:
        return failure_state(obj)


class FailureFilterSerializer(serializers.Serializer):
    """Filters shared by the list and the bulk replay."""

    run = serializers.UUIDField(required=False, help_text="Only failures of this run.")
    error_code = serializers.CharField(required=False, max_length=64)
    failing_function = serializers.CharField(required=False, max_length=200)
    failed_after = serializers.DateTimeField(required=False, help_text="failed_at >= this.")
    failed_before = serializers.DateTimeField(required=False, help_text="failed_at < this.")


class FailureListFilterSerializer(FailureFilterSerializer):
    resolved = serializers.BooleanField(required=False, allow_null=True, default=None)
    state = serializers.ChoiceField(
        choices=[*FailureState.choices, (UNRESOLVED, "Scheduled or parked")], required=False,
        help_text="Only failures in this state; `unresolved` is scheduled or parked.",
    )


class FailureBulkReplayInputSerializer(FailureFilterSerializer):
    """Either `ids`, or at least one filter (which selects unresolved failures only)."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=MAX_ID), required=False, min_length=1,
        max_length=MAX_BULK_IDS, help_text=f"At most {MAX_BULK_IDS} failure ids.",
    )

    def validate(self, attrs: dict) -> dict:
        if not attrs:
            raise serializers.ValidationError("give `ids` or at least one filter")
        if "ids" in attrs and len(attrs) > 1:
            raise serializers.ValidationError("give either `ids` or filters, not both")
        return attrs


class FailureResolveInputSerializer(serializers.Serializer):
    note = serializers.CharField(max_length=2000, help_text="Why this failure needs no replay.")


class BulkRefusalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()


class BulkReplayOutputSerializer(serializers.Serializer):
    replayed = serializers.ListField(child=serializers.IntegerField(),
                                     help_text="Failures whose block went back to work.")
    resolved = serializers.ListField(child=serializers.IntegerField(),
                                     help_text="Failures closed instead: their block had succeeded.")
    refused = BulkRefusalSerializer(many=True, help_text="Failures with nothing to replay, and why.")
