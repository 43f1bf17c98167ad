"""`/api/v1/webhooks/`: the signing secret (created or rotated, shown once) and the delivery log.

A delivery is its run's: whoever may read (change) the run may read (redeliver) it, anything else is a
404 (apps/teams/access.py). JSON only: the browsable API would put the secret into an HTML page.
Writes are throttled."""

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import actor_from_request, record
from apps.teams.access import check_write
from apps.webhooks.models import WebhookDelivery
from apps.webhooks.selectors import deliveries_list, deliveries_visible_to, webhook_secret_get
from apps.webhooks.serializers import (
    MAX_ID,
    DeliveryDetailSerializer,
    DeliveryFilterSerializer,
    DeliverySerializer,
    WebhookSecretCreatedSerializer,
    WebhookSecretSerializer,
)
from apps.webhooks.services import delivery_redeliver, delivery_team_id, webhook_secret_rotate
from config.api.errors import error_responses, validated_input
from config.api.pagination import PagePagination
from config.api.throttles import WRITES


def visible_delivery(request: Request, delivery_id: str, *, write: bool = False) -> WebhookDelivery:
    row = None
    if delivery_id.isdigit() and 0 < int(delivery_id) <= MAX_ID:
        row = deliveries_visible_to(user=request.user).filter(pk=int(delivery_id)).first()
    if row is None:
        raise NotFound("No such delivery.")
    if write:
        check_write(request.user, row)
    return row


@extend_schema(tags=["webhooks"])
class WebhookSecretApi(APIView):
    renderer_classes = [JSONRenderer]
    throttle_scope = WRITES

    @extend_schema(operation_id="webhooks_secret_retrieve",
                   responses={200: WebhookSecretSerializer, **error_responses(401, 404)})
    def get(self, request: Request) -> Response:
        """Your signing secret's suffix and when it was made; never the secret."""
        row = webhook_secret_get(owner=request.user)
        if row is None:
            raise NotFound("No webhook secret yet: create one with POST.")
        return Response(WebhookSecretSerializer(row).data)

    @extend_schema(operation_id="webhooks_secret_rotate", request=None,
                   responses={201: WebhookSecretCreatedSerializer, **error_responses(401, 429)})
    def post(self, request: Request) -> Response:
        """Create your signing secret, or replace it: the answer carries the secret this once. Every
        delivery from now on, retries of older events included, is signed with the new secret."""
        with transaction.atomic():
            existed = webhook_secret_get(owner=request.user)
            before = {"suffix": existed.suffix} if existed else {}
            row, secret = webhook_secret_rotate(owner=request.user)
            record(actor=actor_from_request(request), action="webhook_secret.rotate",
                   object_type="webhook_secret", object_id=request.user.pk,
                   before=before, after={"suffix": row.suffix})
        body = WebhookSecretCreatedSerializer({"secret": secret, "suffix": row.suffix,
                                               "created_at": row.created_at}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"})


@extend_schema(tags=["webhooks"])
class DeliveryListApi(GenericAPIView):
    serializer_class = DeliverySerializer
    pagination_class = PagePagination

    @extend_schema(operation_id="webhooks_deliveries_list", parameters=[DeliveryFilterSerializer],
                   responses={200: DeliverySerializer(many=True), **error_responses(400, 401)})
    def get(self, request: Request) -> Response:
        filters = validated_input(DeliveryFilterSerializer, request.query_params.dict())
        page = self.paginate_queryset(deliveries_list(user=request.user, **filters))
        return self.get_paginated_response(DeliverySerializer(page, many=True).data)


@extend_schema(tags=["webhooks"])
class DeliveryDetailApi(APIView):
    @extend_schema(operation_id="webhooks_deliveries_retrieve",
                   responses={200: DeliveryDetailSerializer, **error_responses(401, 404)})
    def get(self, request: Request, delivery_id: str) -> Response:
        return Response(DeliveryDetailSerializer(visible_delivery(request, delivery_id)).data)


@extend_schema(tags=["webhooks"])
class DeliveryRedeliverApi(APIView):
    throttle_scope = WRITES

    @extend_schema(operation_id="webhooks_deliveries_redeliver", request=None,
                   responses={202: DeliveryDetailSerializer, **error_responses(401, 403, 404, 429)})
    def post(self, request: Request, delivery_id: str) -> Response:
        """Send the event again now, whatever its state: the same `webhook-id`, a new timestamp and
        signature; its retry window starts again."""
        with transaction.atomic():
            row = delivery_redeliver(delivery_id=visible_delivery(request, delivery_id, write=True).pk)
            record(actor=actor_from_request(request), action="webhook_delivery.redeliver",
                   object_type="webhook_delivery", object_id=row.pk,
                   after={"run_id": str(row.run_id), "pass_number": row.pass_number, "status": row.status},
                   team_id=delivery_team_id(row))
        return Response(DeliveryDetailSerializer(row).data, status=status.HTTP_202_ACCEPTED)
