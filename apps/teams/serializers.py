"""The API's shapes for teams, members and spend limits."""

from typing import Any

from rest_framework import serializers

from apps.teams.models import Membership, Role, SpendPeriod, Team


class TeamCreateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)


class TeamUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    webhook_url = serializers.CharField(
        max_length=2000,
        required=False,
        allow_blank=True,
        help_text="Where signed `team.spend` events go (80% and 100% of a limit), signed with your "
        "webhook signing secret; empty: none.",
    )


class SpendLimitInputSerializer(serializers.Serializer):
    limit_usd = serializers.DecimalField(
        max_digits=12,
        decimal_places=4,
        min_value=0,
        allow_null=True,
        help_text="Dollars per period, from 0 up; null removes the limit.",
    )
    period = serializers.ChoiceField(choices=SpendPeriod.choices, default=SpendPeriod.MONTH)
    window_days = serializers.IntegerField(
        min_value=1,
        max_value=366,
        required=False,
        allow_null=True,
        help_text="For `rolling_days`: the window's length.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        rolling = attrs.get("period") == SpendPeriod.ROLLING
        if rolling and not attrs.get("window_days"):
            raise serializers.ValidationError({"window_days": ["a rolling_days period needs a window"]})
        if not rolling and attrs.get("window_days") is not None:
            raise serializers.ValidationError({"window_days": ["only a rolling_days period has a window"]})
        return attrs


class MemberAddInputSerializer(serializers.Serializer):
    user = serializers.CharField(max_length=254, help_text="Their username or email.")
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class MemberUpdateInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class LimitOutputFields(serializers.Serializer):
    limit_usd = serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True)
    period = serializers.CharField()
    window_days = serializers.IntegerField(allow_null=True)
    alert_level = serializers.IntegerField(help_text="The last threshold reached: 0, 80 or 100 (%).")


class MembershipSerializer(LimitOutputFields, serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.get_username", read_only=True)

    class Meta:
        model = Membership
        fields = [
            "user_id",
            "username",
            "role",
            "limit_usd",
            "period",
            "window_days",
            "alert_level",
            "created_at",
        ]


class TeamSerializer(LimitOutputFields, serializers.ModelSerializer):
    members = MembershipSerializer(source="memberships", many=True, read_only=True)

    class Meta:
        model = Team
        fields = [
            "id",
            "name",
            "limit_usd",
            "period",
            "window_days",
            "alert_level",
            "webhook_url",
            "members",
            "created_at",
        ]
