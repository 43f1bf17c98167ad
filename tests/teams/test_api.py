"""/api/v1/teams/: teams, members and roles, limits. Bad input is a 400 naming the field, and nothing
is written."""

import pytest
from rest_framework.test import APIClient

from apps.teams.models import Membership, Role, Team

pytestmark = pytest.mark.django_db

TEAMS = "/api/v1/teams/"


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def error_of(response) -> dict:
    return response.json()["error"]


def test_whoever_creates_a_team_is_its_first_admin(alice):
    response = api(alice).post(TEAMS, {"name": "initech"}, format="json")
    assert response.status_code == 201
    team = Team.objects.get(name="initech")
    assert list(team.memberships.values_list("user__username", "role")) == [("alice", Role.ADMIN)]


def test_a_team_name_taken_is_a_400_on_name(alice, acme):
    response = api(alice).post(TEAMS, {"name": "acme"}, format="json")
    assert (response.status_code, error_of(response)["fields"]) == (
        400,
        {"name": ["a team named 'acme' already exists"]},
    )


def test_an_admin_adds_a_member_by_email_with_a_role(alice, acme, dave):
    response = api(alice).post(
        f"{TEAMS}{acme.pk}/members/", {"user": "dave@example.com", "role": "viewer"}, format="json"
    )
    assert response.status_code == 201
    assert Membership.objects.get(team=acme, user=dave).role == Role.VIEWER


def test_a_role_that_does_not_exist_is_a_400_on_role_and_adds_nobody(alice, acme, dave):
    response = api(alice).post(f"{TEAMS}{acme.pk}/members/", {"user": "dave", "role": "owner"}, format="json")
    assert response.status_code == 400
    assert list(error_of(response)["fields"]) == ["role"]
    assert not Membership.objects.filter(user=dave).exists()


def test_a_member_added_twice_is_a_400_naming_their_role(alice, acme, bob):
    response = api(alice).post(f"{TEAMS}{acme.pk}/members/", {"user": "bob", "role": "admin"}, format="json")
    assert response.status_code == 400
    assert error_of(response)["fields"] == {
        "user": ["bob is already a member of team acme (as member): change their role instead"]
    }
    assert Membership.objects.get(team=acme, user=bob).role == Role.MEMBER


def test_an_unknown_user_is_a_400_on_user(alice, acme):
    response = api(alice).post(
        f"{TEAMS}{acme.pk}/members/", {"user": "nobody", "role": "member"}, format="json"
    )
    assert (response.status_code, list(error_of(response)["fields"])) == (400, ["user"])


@pytest.mark.parametrize("limit", ["-1", "ten", "1e400", "1.2.3"])
def test_a_negative_or_non_numeric_limit_is_a_400_on_limit_usd_and_changes_nothing(alice, acme, limit):
    response = api(alice).post(f"{TEAMS}{acme.pk}/limit/", {"limit_usd": limit}, format="json")
    assert response.status_code == 400
    assert "limit_usd" in error_of(response)["fields"]
    acme.refresh_from_db()
    assert acme.limit_usd is None


def test_a_window_without_a_rolling_period_is_a_400_on_window_days(alice, acme):
    response = api(alice).post(
        f"{TEAMS}{acme.pk}/limit/", {"limit_usd": "5", "window_days": 7}, format="json"
    )
    assert (response.status_code, list(error_of(response)["fields"])) == (400, ["window_days"])
    acme.refresh_from_db()
    assert acme.limit_usd is None


def test_a_rolling_limit_is_set_with_its_window(alice, acme):
    response = api(alice).post(
        f"{TEAMS}{acme.pk}/limit/",
        {"limit_usd": "12.5", "period": "rolling_days", "window_days": 7},
        format="json",
    )
    assert response.status_code == 200
    assert (response.json()["limit_usd"], response.json()["period"], response.json()["window_days"]) == (
        "12.5000",
        "rolling_days",
        7,
    )


def test_a_members_own_limit_is_set_by_an_admin(alice, acme, bob):
    response = api(alice).post(f"{TEAMS}{acme.pk}/members/{bob.pk}/limit/", {"limit_usd": "3"}, format="json")
    assert response.status_code == 200
    assert str(Membership.objects.get(team=acme, user=bob).limit_usd) == "3.0000"


def test_the_last_admin_cannot_step_down(alice, acme):
    response = api(alice).patch(f"{TEAMS}{acme.pk}/members/{alice.pk}/", {"role": "member"}, format="json")
    assert response.status_code == 409
    assert "last admin" in error_of(response)["message"]
    assert Membership.objects.get(team=acme, user=alice).role == Role.ADMIN


def test_a_member_may_leave_by_themselves(bob, acme):
    assert api(bob).delete(f"{TEAMS}{acme.pk}/members/{bob.pk}/").status_code == 204
    assert not Membership.objects.filter(team=acme, user=bob).exists()


def test_a_member_cannot_remove_another(bob, carol, acme):
    response = api(bob).delete(f"{TEAMS}{acme.pk}/members/{carol.pk}/")
    assert response.status_code == 403
    assert Membership.objects.filter(team=acme, user=carol).exists()


def test_a_user_in_several_teams_sees_each(alice, acme, dave, globex):
    Membership.objects.create(team=globex, user=alice, role=Role.VIEWER)
    names = sorted(t["name"] for t in api(alice).get(TEAMS).json())
    assert names == ["acme", "globex"]


def test_another_teams_member_gets_a_404(dave, acme):
    assert api(dave).get(f"{TEAMS}{acme.pk}/").status_code == 404


def test_a_team_webhook_needs_the_admins_signing_secret(alice, acme):
    response = api(alice).patch(
        f"{TEAMS}{acme.pk}/", {"webhook_url": "https://hooks.example.com/t"}, format="json"
    )
    assert (response.status_code, list(error_of(response)["fields"])) == (400, ["webhook_url"])


def test_a_team_key_is_added_by_its_admin_only(alice, bob, acme):
    body = {"label": "shared", "secret": "sk-ant-team-0000", "team": acme.pk}
    assert api(bob).post("/api/v1/keys/", body, format="json").status_code == 403
    response = api(alice).post("/api/v1/keys/", body, format="json")
    assert (response.status_code, response.json()["team"]) == (201, acme.pk)
