"""Brute-force protection (django-axes): after LOGIN_FAILURE_LIMIT failed logins from one address,
that address is locked out for a while, even with the right password; the API's password login
counts the same way."""

import base64
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

ADMIN_LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_user("admin", password="admin-pass", is_staff=True,
                                                 is_superuser=True)


def log_in(client, password: str, address: str = "127.0.0.1"):
    return client.post(ADMIN_LOGIN, {"username": "admin", "password": password}, REMOTE_ADDR=address)


def fail(client, times: int, address: str = "127.0.0.1") -> None:
    for _ in range(times):
        log_in(client, "wrong", address)


def test_a_right_password_logs_in(client, admin_user):
    assert log_in(client, "admin-pass").status_code == 302


def test_failures_below_the_limit_do_not_lock_out(client, admin_user):
    fail(client, settings.AXES_FAILURE_LIMIT - 1)
    assert log_in(client, "admin-pass").status_code == 302


def test_repeated_failures_lock_the_address_out_even_with_the_right_password(client, admin_user):
    fail(client, settings.AXES_FAILURE_LIMIT)
    response = log_in(client, "admin-pass")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_thirty_quick_wrong_passwords_are_stopped_at_the_limit(client, admin_user):
    # The reproduction: 30 wrong passwords in a row. The one that reaches the limit and every
    # one after it are answered 429.
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [log_in(client, "wrong").status_code for _ in range(30)]
    assert statuses == [200] * (limit - 1) + [429] * (30 - limit + 1)


def test_a_locked_out_address_does_not_lock_out_others(client, admin_user):
    fail(client, settings.AXES_FAILURE_LIMIT, address="203.0.113.9")
    assert log_in(client, "admin-pass", address="198.51.100.7").status_code == 302


def test_the_lockout_ends_after_the_cool_off(client, admin_user):
    fail(client, settings.AXES_FAILURE_LIMIT)
    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=1)):
        assert log_in(client, "admin-pass").status_code == 302


def test_the_api_password_login_is_locked_out_the_same_way(admin_user):
    api = APIClient()

    def login(password: str) -> int:
        credentials = base64.b64encode(f"admin:{password}".encode()).decode()
        return api.post("/api/v1/auth/login/", HTTP_AUTHORIZATION=f"Basic {credentials}").status_code

    for _ in range(settings.AXES_FAILURE_LIMIT):
        login("wrong")
    assert login("admin-pass") == 429


def test_behind_a_proxy_the_lockout_is_per_forwarded_address(client, admin_user, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(ADMIN_LOGIN, {"username": "admin", "password": "wrong"},
                    HTTP_X_FORWARDED_FOR="203.0.113.9")
    response = client.post(ADMIN_LOGIN, {"username": "admin", "password": "admin-pass"},
                           HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert response.status_code == 302
