from django.urls import path

from apps.pipelines import api

urlpatterns = [
    path("pipelines/", api.PipelineListCreateApi.as_view(), name="pipeline-list"),
    path("pipelines/<str:pipeline_id>/", api.PipelineDetailApi.as_view(), name="pipeline-detail"),
    path("pipelines/<str:pipeline_id>/items/", api.PipelineItemListApi.as_view(), name="pipeline-items"),
]
