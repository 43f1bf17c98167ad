from django.urls import path

from apps.keys import api

urlpatterns = [
    path("keys/", api.KeyListCreateApi.as_view(), name="key-list"),
    path("keys/<str:key_id>/", api.KeyDetailApi.as_view(), name="key-detail"),
    path("keys/<str:key_id>/validate/", api.KeyValidateApi.as_view(), name="key-validate"),
]
