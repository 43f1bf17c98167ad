from django.urls import path

from apps.runs import api, replay_api, spend_api

# run_id is matched as text and parsed by the view, so a malformed id is a 404 in the API's error
# shape rather than Django's HTML page. A uid may contain slashes.
urlpatterns = [
    path("runs/", api.RunListCreateApi.as_view(), name="run-list"),
    path("spend/", spend_api.SpendReportApi.as_view(), name="spend-report"),
    path("spend/limits/", spend_api.SpendLimitsApi.as_view(), name="spend-limits"),
    path("runs/estimate/", api.RunEstimateApi.as_view(), name="run-estimate"),
    path("runs/<str:run_id>/", api.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<str:run_id>/cancel/", api.RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<str:run_id>/resume/", api.RunResumeApi.as_view(), name="run-resume"),
    path("runs/<str:run_id>/reseed/", api.RunReseedApi.as_view(), name="run-reseed"),
    path("runs/<str:run_id>/budget/", api.RunBudgetApi.as_view(), name="run-budget"),
    path("runs/<str:run_id>/compare/<str:other_run_id>/", api.RunCompareApi.as_view(), name="run-compare"),
    path("runs/<str:run_id>/events/", api.RunEventsApi.as_view(), name="run-events"),
    path("runs/<str:run_id>/results/", api.RunResultsApi.as_view(), name="run-results"),
    path("runs/<str:run_id>/failures/", api.RunFailuresExportApi.as_view(), name="run-failures"),
    path("runs/<str:run_id>/blocks/", api.RunBlockListApi.as_view(), name="run-block-list"),
    path("runs/<str:run_id>/blocks/<path:uid>/", api.RunBlockDetailApi.as_view(), name="run-block-detail"),
    # Replaying a dead-letter row reopens its block: the engine's. Before apps/failures/urls.py (included
    # after this file), so that `replay` is never read as a failure's id.
    path("failures/replay/", replay_api.FailureBulkReplayApi.as_view(), name="failure-replay-bulk"),
    path("failures/<str:failure_id>/replay/", replay_api.FailureReplayApi.as_view(), name="failure-replay"),
]
