"""The API's shape of a lane's state (apps.lanes.selectors.LaneState), shown on a key and on a run."""

from typing import Any

from rest_framework import serializers


class LaneStateSerializer(serializers.Serializer[Any]):
    group = serializers.CharField(help_text="The model's rate-limit group (versions of a class share it).")
    rpm_limit = serializers.IntegerField(help_text="Requests per minute in force; 0: none known.")
    itpm_limit = serializers.IntegerField(help_text="Input tokens per minute in force; 0: none known.")
    otpm_limit = serializers.IntegerField(help_text="Output tokens per minute in force; 0: none known.")
    limits_source = serializers.CharField(
        help_text="headers (learned from the provider), remembered (learned before a restart or a Redis "
                  "flush; the next headers confirm it), explicit (the key's settings), tier, or empty.")
    in_flight = serializers.IntegerField(help_text="Calls in flight on the lane, on every worker.")
    rate_rpm = serializers.FloatField(help_text="Calls started per minute, over about the last minute.")
    window = serializers.FloatField(help_text="Calls the lane may have in flight (cut on overload).")
    useful_concurrency = serializers.IntegerField(
        help_text="Calls the lane can use in flight: its limits' calls per second x its latency x "
                  "headroom (Little's law); the window is kept at least this. 0: not known yet.")
    throttled_until = serializers.DateTimeField(allow_null=True, help_text="A 429's Retry-After.")
    overloaded_until = serializers.DateTimeField(allow_null=True,
                                                 help_text="Stopped for persistent overload until.")
    ceiling_bound = serializers.IntegerField(
        help_text="A worker's in-flight ceiling while it holds this lane's runs back (0: none does): "
                  "raise SERVE_MAX_IN_FLIGHT or the open-files limit, or add workers or hosts.")
    ceiling_bound_by = serializers.CharField(
        help_text="What sets that ceiling: SERVE_MAX_IN_FLIGHT or open files; empty when none binds.")
