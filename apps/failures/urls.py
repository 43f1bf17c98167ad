from django.urls import path

from apps.failures import api

# The replay endpoints are the run engine's (apps/runs/urls.py, included first: `replay` is not an id).
urlpatterns = [
    path("failures/", api.FailureListApi.as_view(), name="failure-list"),
    path("failures/<str:failure_id>/", api.FailureDetailApi.as_view(), name="failure-detail"),
    path("failures/<str:failure_id>/resolve/", api.FailureResolveApi.as_view(),
         name="failure-resolve"),
]
