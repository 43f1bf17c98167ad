from django.urls import path

from apps.pipelines import api

urlpatterns = [
    path("pipelines/", api.PipelineListCreateApi.as_view(), name="pipeline-list"),
    path("pipelines/<str:pipeline_id>/", api.PipelineDetailApi.as_view(), name="pipeline-detail"),
    path("pipelines/<str:pipeline_id>/items/", api.PipelineItemListApi.as_view(), name="pipeline-items"),
    path("pipelines/<str:pipeline_id>/results/", api.PipelineResultsApi.as_view(), name="pipeline-results"),
    path("pipelines/<str:pipeline_id>/cancel/", api.PipelineCancelApi.as_view(), name="pipeline-cancel"),
    path("pipelines/<str:pipeline_id>/pause/", api.PipelinePauseApi.as_view(), name="pipeline-pause"),
    path("pipelines/<str:pipeline_id>/resume/", api.PipelineResumeApi.as_view(), name="pipeline-resume"),
    path("pipelines/<str:pipeline_id>/steps/<str:step>/cancel/", api.PipelineStepCancelApi.as_view(),
         name="pipeline-step-cancel"),
    path("pipelines/<str:pipeline_id>/steps/<str:step>/pause/", api.PipelineStepPauseApi.as_view(),
         name="pipeline-step-pause"),
    path("pipelines/<str:pipeline_id>/steps/<str:step>/resume/", api.PipelineStepResumeApi.as_view(),
         name="pipeline-step-resume"),
    path("pipelines/<str:pipeline_id>/steps/<str:step>/reseed/", api.PipelineStepReseedApi.as_view(),
         name="pipeline-step-reseed"),
]
