from django.urls import path

from apps.failures import api

# The bulk replay comes first: `replay` is not an id.
urlpatterns = [
    path("failures/", api.FailureListApi.as_view(), name="failure-list"),
    path("failures/replay/", api.FailureBulkReplayApi.as_view(), name="failure-replay-bulk"),
    path("failures/<str:failure_id>/", api.FailureDetailApi.as_view(), name="failure-detail"),
    path("failures/<str:failure_id>/replay/", api.FailureReplayApi.as_view(), name="failure-replay"),
    path("failures/<str:failure_id>/resolve/", api.FailureResolveApi.as_view(),
         name="failure-resolve"),
]
