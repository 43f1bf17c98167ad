"""`/api/v1/teams/`: teams, their members and roles, and their spend limits.

A team is visible to its members (any role) and to staff with `teams.view_team`; any other id is a
404. Its members, limits and webhook are changed, and the team deleted, by its admins (and staff
with `teams.change_team`): another member gets a 403 that says so. Every change is audited
(apps/teams/auditing.py). What a team's runs spent is read
from the engine's usage: /api/v1/spend/ (apps/runs/spend_api.py)."""

from typing import Any

from django.db.models import Prefetch
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import actor_from_request
from apps.teams.access import ADMINS, staff_may, team_role, teams_visible_to
from apps.teams.auditing import (
    member_add_audited,
    member_remove_audited,
    member_set_role_audited,
    spend_limit_set_audited,
    team_create_audited,
    team_update_audited,
)
from apps.teams.deletion import team_delete
from apps.teams.models import Membership, Role, Team
from apps.teams.serializers import (
    MemberAddInputSerializer,
    MembershipSerializer,
    MemberUpdateInputSerializer,
    SpendLimitInputSerializer,
    TeamCreateInputSerializer,
    TeamSerializer,
    TeamUpdateInputSerializer,
)
from config.api.errors import error_responses, validated_input
from config.api.throttles import WRITES

TEAM_ID = OpenApiParameter("team_id", OpenApiTypes.INT, OpenApiParameter.PATH)
USER_ID = OpenApiParameter("user_id", OpenApiTypes.INT, OpenApiParameter.PATH,
                           description="The member's user id.")


def _teams() -> Any:
    members = Prefetch("memberships", queryset=Membership.objects.select_related("user").order_by("pk"))
    return Team.objects.prefetch_related(members)


def visible_team(request: Request, team_id: str) -> Team:
    team = None
    if team_id.isdigit() and 0 < int(team_id) < 2**63:
        team = teams_visible_to(request.user).filter(pk=int(team_id)).first()
    if team is None:
        raise NotFound("No such team.")
    return _teams().get(pk=team.pk)


def administered_team(request: Request, team_id: str) -> Team:
    """The team if the caller administers it (or is staff with teams.change_team); a member who is
    not its admin gets a 403 naming their role."""
    team = visible_team(request, team_id)
    if staff_may(request.user, Team, write=True):
        return team
    role = team_role(request.user, team.pk)
    if role not in ADMINS:
        raise PermissionDenied(
            f"you are a {role or 'reader'} of team {team.name}: only its admins "
            "change its members, keys, limits and webhook"
        )
    return team


def team_member(team: Team, user_id: str) -> Membership:
    row = None
    if user_id.isdigit() and 0 < int(user_id) < 2**63:
        members = Membership.objects.select_related("user", "team")
        row = members.filter(team=team, user_id=int(user_id)).first()
    if row is None:
        raise NotFound("No such member of this team.")
    return row


def team_response(team: Team, *, status_code: int = status.HTTP_200_OK) -> Response:
    return Response(TeamSerializer(_teams().get(pk=team.pk)).data, status=status_code)


@extend_schema(tags=["teams"])
class TeamListCreateApi(APIView):
    throttle_scope = WRITES

    @extend_schema(
        operation_id="teams_list", responses={200: TeamSerializer(many=True), **error_responses(401)}
    )
    def get(self, request: Request) -> Response:
        teams = _teams().filter(pk__in=teams_visible_to(request.user).values("pk"))
        return Response(TeamSerializer(teams, many=True).data)

    @extend_schema(
        operation_id="teams_create",
        request=TeamCreateInputSerializer,
        responses={201: TeamSerializer, **error_responses(400, 401, 429)},
    )
    def post(self, request: Request) -> Response:
        """Create a team; you are its first admin."""
        data = validated_input(TeamCreateInputSerializer, request.data)
        return team_response(
            team_create_audited(actor=actor_from_request(request), creator=request.user, name=data["name"]),
            status_code=status.HTTP_201_CREATED,
        )


@extend_schema(tags=["teams"], parameters=[TEAM_ID])
class TeamDetailApi(APIView):
    throttle_scope = WRITES

    @extend_schema(
        operation_id="teams_retrieve", responses={200: TeamSerializer, **error_responses(401, 404)}
    )
    def get(self, request: Request, team_id: str) -> Response:
        return team_response(visible_team(request, team_id))

    @extend_schema(
        operation_id="teams_partial_update",
        request=TeamUpdateInputSerializer,
        responses={200: TeamSerializer, **error_responses(400, 401, 403, 404, 429)},
    )
    def patch(self, request: Request, team_id: str) -> Response:
        team = administered_team(request, team_id)
        data = validated_input(TeamUpdateInputSerializer, request.data)
        team = team_update_audited(actor=actor_from_request(request), team=team, signer=request.user, **data)
        return team_response(team)

    @extend_schema(
        operation_id="teams_destroy",
        description="Delete the team and all it owns: its keys, runs (with everything of them), "
        "pipelines and webhook events, its members and limits, in the background (202); its audit "
        "records stay. Refused (409, naming how many) while any of its runs or pipelines may still "
        "work: cancel them first.",
        responses={202: None, **error_responses(401, 403, 404, 409, 429)},
    )
    def delete(self, request: Request, team_id: str) -> Response:
        team = administered_team(request, team_id)
        team_delete(team_id=team.pk, actor=actor_from_request(request))
        return Response(status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["teams"], parameters=[TEAM_ID])
class TeamLimitApi(APIView):
    throttle_scope = WRITES

    @extend_schema(
        operation_id="teams_limit",
        description="Set the team's spend limit across all its runs, per calendar month (UTC) or per "
        "rolling window of days; null removes it. Runs it paused resume when it can pay "
        "for their next block.",
        request=SpendLimitInputSerializer,
        responses={200: TeamSerializer, **error_responses(400, 401, 403, 404, 429)},
    )
    def post(self, request: Request, team_id: str) -> Response:
        team = administered_team(request, team_id)
        spend_limit_set_audited(actor=actor_from_request(request), holder=team,
                                **validated_input(SpendLimitInputSerializer, request.data))
        return team_response(team)


@extend_schema(tags=["teams"], parameters=[TEAM_ID])
class MemberListCreateApi(APIView):
    throttle_scope = WRITES

    @extend_schema(
        operation_id="teams_members_list",
        responses={200: MembershipSerializer(many=True), **error_responses(401, 404)},
    )
    def get(self, request: Request, team_id: str) -> Response:
        team = visible_team(request, team_id)
        return Response(MembershipSerializer(team.memberships.all(), many=True).data)

    @extend_schema(
        operation_id="teams_members_add",
        request=MemberAddInputSerializer,
        responses={201: MembershipSerializer, **error_responses(400, 401, 403, 404, 429)},
    )
    def post(self, request: Request, team_id: str) -> Response:
        """Add a user by username or email, with a role (admin, member, viewer)."""
        team = administered_team(request, team_id)
        data = validated_input(MemberAddInputSerializer, request.data)
        row = member_add_audited(
            actor=actor_from_request(request), team=team, user_ref=data["user"], role=data["role"]
        )
        return Response(MembershipSerializer(row).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["teams"], parameters=[TEAM_ID, USER_ID])
class MemberDetailApi(APIView):
    throttle_scope = WRITES

    @extend_schema(
        operation_id="teams_members_update",
        request=MemberUpdateInputSerializer,
        responses={200: MembershipSerializer, **error_responses(400, 401, 403, 404, 409, 429)},
    )
    def patch(self, request: Request, team_id: str, user_id: str) -> Response:
        """Change a member's role; the team's last admin stays one (409)."""
        row = team_member(administered_team(request, team_id), user_id)
        data = validated_input(MemberUpdateInputSerializer, request.data)
        row = member_set_role_audited(actor=actor_from_request(request), membership=row, role=data["role"])
        return Response(MembershipSerializer(row).data)

    @extend_schema(
        operation_id="teams_members_remove", responses={204: None, **error_responses(401, 403, 404, 409, 429)}
    )
    def delete(self, request: Request, team_id: str, user_id: str) -> Response:
        """Take a member out of the team (a member may leave by themselves); the last admin stays."""
        team = visible_team(request, team_id)
        leaving = str(request.user.pk) == user_id and team_role(request.user, team.pk) != Role.ADMIN
        row = team_member(team if leaving else administered_team(request, team_id), user_id)
        member_remove_audited(actor=actor_from_request(request), membership=row,
                              leaving=row.user_id == request.user.pk)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=["teams"], parameters=[TEAM_ID, USER_ID])
class MemberLimitApi(APIView):
    throttle_scope = WRITES

    @extend_schema(
        operation_id="teams_members_limit",
        request=SpendLimitInputSerializer,
        description="A member's own spend limit within the team (their runs in the team).",
        responses={200: MembershipSerializer, **error_responses(400, 401, 403, 404, 429)},
    )
    def post(self, request: Request, team_id: str, user_id: str) -> Response:
        row = team_member(administered_team(request, team_id), user_id)
        spend_limit_set_audited(actor=actor_from_request(request), holder=row,
                                **validated_input(SpendLimitInputSerializer, request.data))
        row.refresh_from_db()
        return Response(MembershipSerializer(row).data)
