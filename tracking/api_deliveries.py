"""``/api/v1/deliveries/``: the publisher postback delivery log, and ``POST …/resend/``
(SPEC "Publisher postbacks (outbound)"). URLs are shown with secrets masked."""

import django_filters
from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response

from offers.outbound_urls import mask_url
from tracking.deliveries import DeliveryPending, delivery_resend
from tracking.filters import IdFilter, TextFilter
from tracking.models import Delivery, DeliveryAttempt


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["at", "status_code", "duration_ms", "error", "response", "url"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    type = serializers.CharField(source="record_type", read_only=True)
    record_id = serializers.IntegerField(read_only=True)
    url = serializers.SerializerMethodField()
    attempts = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "postback",
            "publisher",
            "offer",
            "trigger",
            "type",
            "record_id",
            "transaction_id",
            "url",
            "outcome",
            "attempt_count",
            "attempts",
            "next_attempt_at",
            "last_status_code",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_url(self, delivery: Delivery) -> str:
        return mask_url(delivery.url)


class DeliveryFilter(django_filters.FilterSet):
    # Positive IDs, as the other lists' filters: the schema says so, and a negative or
    # oversized ID is a clear 400, not a query that names nothing.
    publisher = IdFilter(field_name="publisher_id", help_text="Publisher ID.")
    offer = IdFilter(field_name="offer_id", help_text="Offer ID.")
    transaction_id = TextFilter(help_text="The click's transaction_id (exact).")

    class Meta:
        model = Delivery
        fields = ["publisher", "offer", "outcome", "transaction_id", "trigger"]


class CanResend(BasePermission):
    """Account managers (the ``resend_delivery`` permission) resend; analysts only read."""

    message = "Only account managers resend deliveries."

    def has_permission(self, request: Request, view: object) -> bool:
        return bool(request.user and request.user.has_perm("tracking.resend_delivery"))


class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = DeliverySerializer
    filterset_class = DeliveryFilter
    queryset = Delivery.objects.prefetch_related(
        Prefetch("attempts", queryset=DeliveryAttempt.objects.order_by("at", "id"))
    ).order_by("-created_at", "-id")

    @extend_schema(request=None, responses={200: DeliverySerializer, 409: None})
    @action(detail=True, methods=["post"], permission_classes=[CanResend])
    def resend(self, request: Request, pk: str | None = None) -> Response:
        """Queue the delivery again: same ID, same URL (account managers)."""
        delivery = self.get_object()
        try:
            delivery = delivery_resend(delivery_id=delivery.pk)
        except DeliveryPending as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(self.get_serializer(self.get_queryset().get(pk=delivery.pk)).data)
