"""API tokens: got with a password or a session, stored only as a hash, expiring, revocable; and a
client that keeps sending bad tokens is slowed down, counted in Redis."""

import base64
from datetime import timedelta
from io import StringIO

import redis
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from apps.accounts.services import token_create

LOGIN = "/api/v1/auth/login/"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def with_token(token: str, **extra: str) -> APIClient:
    client = APIClient(**extra)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_logging_in_with_a_password_gives_a_token_that_authenticates(owner):
    response = APIClient().post(LOGIN, HTTP_AUTHORIZATION=basic("owner", "owner-pass"))
    assert response.status_code == 200
    assert with_token(response.json()["token"]).get("/api/v1/keys/").status_code == 200


def test_a_wrong_password_gets_no_token(owner):
    response = APIClient().post(LOGIN, HTTP_AUTHORIZATION=basic("owner", "wrong"))
    assert response.status_code == 401
    assert AuthToken.objects.count() == 0


def test_a_session_can_get_a_token(owner):
    client = APIClient()
    client.force_login(owner)
    assert client.post(LOGIN).status_code == 200


def test_a_token_is_stored_only_as_a_hash(owner):
    issued = token_create(user=owner)
    row = AuthToken.objects.values().get()
    assert issued.token not in str(row)


def test_a_token_says_when_it_expires(owner):
    response = APIClient().post(LOGIN, HTTP_AUTHORIZATION=basic("owner", "owner-pass"))
    assert response.json()["expiry"] is not None


def test_a_token_stops_working_when_it_expires(owner):
    issued = token_create(user=owner)
    with time_machine.travel(timezone.now() + settings.REST_KNOX["TOKEN_TTL"] + timedelta(seconds=1)):
        assert with_token(issued.token).get("/api/v1/keys/").status_code == 401


def test_a_token_works_until_it_expires(owner):
    issued = token_create(user=owner)
    with time_machine.travel(timezone.now() + settings.REST_KNOX["TOKEN_TTL"] - timedelta(minutes=1)):
        assert with_token(issued.token).get("/api/v1/keys/").status_code == 200


def test_logging_out_revokes_the_token_used(owner):
    issued, other = token_create(user=owner), token_create(user=owner)
    assert with_token(issued.token).post("/api/v1/auth/logout/").status_code == 204
    assert with_token(issued.token).get("/api/v1/keys/").status_code == 401
    assert with_token(other.token).get("/api/v1/keys/").status_code == 200


def test_logging_out_everywhere_revokes_every_token_of_the_user(owner, outsider):
    issued, other = token_create(user=owner), token_create(user=owner)
    theirs = token_create(user=outsider)
    with_token(issued.token).post("/api/v1/auth/logoutall/")
    assert [with_token(t.token).get("/api/v1/keys/").status_code for t in (issued, other, theirs)] == [
        401, 401, 200]


def test_a_user_holds_a_bounded_number_of_live_tokens(owner, settings):
    settings.REST_KNOX = {**settings.REST_KNOX, "TOKEN_LIMIT_PER_USER": 2}
    token_create(user=owner)
    token_create(user=owner)
    response = APIClient().post(LOGIN, HTTP_AUTHORIZATION=basic("owner", "owner-pass"))
    assert response.status_code == 400


def test_the_command_prints_a_token_that_authenticates(owner):
    out = StringIO()
    call_command("create_token", "--user", "owner", stdout=out, stderr=StringIO())
    assert with_token(out.getvalue().strip()).get("/api/v1/keys/").status_code == 200


def test_the_command_sets_the_lifetime_asked_for(owner):
    call_command("create_token", "--user", "owner", "--days", "1", stdout=StringIO(), stderr=StringIO())
    expiry = AuthToken.objects.get().expiry
    assert timedelta(hours=23) < expiry - timezone.now() <= timedelta(days=1)


# --- guessing tokens --------------------------------------------------------------------------------

def test_repeated_bad_tokens_from_one_address_are_throttled(db, settings):
    settings.API_TOKEN_FAILURE_LIMIT = 3
    statuses = [with_token(f"guess-{i}").get("/api/v1/keys/").status_code for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


def test_a_throttled_address_is_refused_even_with_a_good_token(owner, settings):
    settings.API_TOKEN_FAILURE_LIMIT = 3
    for i in range(3):
        with_token(f"guess-{i}").get("/api/v1/keys/")
    assert with_token(token_create(user=owner).token).get("/api/v1/keys/").status_code == 429


def test_other_addresses_are_not_throttled_for_one_guesser(owner, settings):
    settings.API_TOKEN_FAILURE_LIMIT = 3
    for i in range(3):
        with_token(f"guess-{i}", REMOTE_ADDR="203.0.113.9").get("/api/v1/keys/")
    good = with_token(token_create(user=owner).token, REMOTE_ADDR="198.51.100.7")
    assert good.get("/api/v1/keys/").status_code == 200


def test_failed_tokens_are_counted_in_redis_for_every_web_process(db):
    with_token("guess").get("/api/v1/keys/")
    shared = redis.Redis.from_url(settings.CACHES["default"]["LOCATION"])
    keys = shared.keys("conveyor-test:*api-token-failures:127.0.0.1")
    assert len(keys) == 1
    assert int(shared.get(keys[0])) == 1
    # The throttle's window is that key's expiry.
    assert 0 < shared.ttl(keys[0]) <= settings.API_TOKEN_FAILURE_WINDOW_SECONDS


def test_requests_without_a_token_are_not_counted_as_failures(db, settings):
    settings.API_TOKEN_FAILURE_LIMIT = 1
    for _ in range(3):
        APIClient().get("/api/v1/keys/")
    assert with_token("guess").get("/api/v1/keys/").status_code == 401


def test_behind_a_proxy_the_client_address_comes_from_x_forwarded_for(owner, settings):
    settings.API_TOKEN_FAILURE_LIMIT, settings.TRUSTED_PROXY_COUNT = 2, 1
    for i in range(2):
        with_token(f"guess-{i}", HTTP_X_FORWARDED_FOR="203.0.113.9").get("/api/v1/keys/")
    good = with_token(token_create(user=owner).token, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert good.get("/api/v1/keys/").status_code == 200
