from django.urls import path

from apps.accounts import api

urlpatterns = [
    path("auth/login/", api.LoginApi.as_view(), name="auth-login"),
    path("auth/logout/", api.LogoutApi.as_view(), name="auth-logout"),
    path("auth/logoutall/", api.LogoutAllApi.as_view(), name="auth-logout-all"),
]
