from datetime import datetime

from django.db.models import QuerySet

from apps.audit.models import AuditRecord


def audit_records(
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    actor_id: int | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditRecord]:
    rows = AuditRecord.objects.all()
    if object_type:
        rows = rows.filter(object_type=object_type)
    if object_id:
        rows = rows.filter(object_id=object_id)
    if actor_id is not None:
        rows = rows.filter(actor_id=actor_id)
    if action:
        rows = rows.filter(action=action)
    if since:
        rows = rows.filter(at__gte=since)
    if until:
        rows = rows.filter(at__lt=until)
    return rows.order_by("-at", "-id")
