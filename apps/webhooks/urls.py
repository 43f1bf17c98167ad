from django.urls import path

from apps.webhooks import api

urlpatterns = [
    path("webhooks/secret/", api.WebhookSecretApi.as_view(), name="webhook-secret"),
    path("webhooks/deliveries/", api.DeliveryListApi.as_view(), name="webhook-delivery-list"),
    path("webhooks/deliveries/<str:delivery_id>/", api.DeliveryDetailApi.as_view(),
         name="webhook-delivery-detail"),
    path("webhooks/deliveries/<str:delivery_id>/redeliver/", api.DeliveryRedeliverApi.as_view(),
         name="webhook-delivery-redeliver"),
]
