from django.urls import path

from apps.audit import api

urlpatterns = [
    path("audit/", api.AuditListApi.as_view(), name="audit-list"),
    path("audit/export/", api.AuditExportApi.as_view(), name="audit-export"),
]
