from django.urls import path

from apps.teams import api

urlpatterns = [
    path("teams/", api.TeamListCreateApi.as_view(), name="team-list"),
    path("teams/<str:team_id>/", api.TeamDetailApi.as_view(), name="team-detail"),
    path("teams/<str:team_id>/limit/", api.TeamLimitApi.as_view(), name="team-limit"),
    path("teams/<str:team_id>/members/", api.MemberListCreateApi.as_view(), name="team-members"),
    path("teams/<str:team_id>/members/<str:user_id>/", api.MemberDetailApi.as_view(), name="team-member"),
    path(
        "teams/<str:team_id>/members/<str:user_id>/limit/",
        api.MemberLimitApi.as_view(),
        name="team-member-limit",
    ),
]
