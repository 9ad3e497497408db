"""REST API for what was recorded: conversions, event records, the postback log.

Records come only from postbacks: nobody creates, edits or deletes one through the API. The
one write is a record's status (docs/postbacks.md "Approving and rejecting"): ``PATCH
/api/v1/conversions/{id}/`` and ``/api/v1/event-records/{id}/`` with ``{"status",
"reason"}``, for account managers (``RolePermissions``: the model's ``change`` permission,
which only they hold; analysts get 403), through ``tracking.status``.
"""

from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from tracking.filters import ConversionFilter, EventRecordFilter, PostbackLogFilter
from tracking.models import Conversion, EventRecord, PostbackLog, RecordStatus, StatusChange
from tracking.status import REASON_LIMIT, record_status_change

MONEY = {"max_digits": 14, "decimal_places": 2, "read_only": True}


class StatusChangeSerializer(serializers.Serializer):
    """One entry of a record's status history: ``from``, ``to``, ``reason``, ``source``,
    ``user``, ``at``."""

    # "from" is a Python keyword, so it is declared through the class namespace.
    vars()["from"] = serializers.ChoiceField(
        source="from_status", choices=RecordStatus.choices, read_only=True
    )
    to = serializers.ChoiceField(source="to_status", choices=RecordStatus.choices, read_only=True)
    reason = serializers.CharField(read_only=True)
    source = serializers.ChoiceField(choices=StatusChange.Source.choices, read_only=True)
    user = serializers.CharField(
        source="user.username",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="The account manager who made it; null for postbacks and rules.",
    )
    at = serializers.DateTimeField(source="created_at", read_only=True)


class StatusUpdateSerializer(serializers.Serializer):
    """``PATCH`` input: the new status and an optional reason."""

    status = serializers.ChoiceField(choices=RecordStatus.choices)
    reason = serializers.CharField(
        max_length=REASON_LIMIT, required=False, allow_blank=True, default=""
    )


class ConversionSerializer(serializers.ModelSerializer):
    transaction_id = serializers.CharField(source="click.transaction_id", read_only=True)
    advertiser = serializers.IntegerField(source="offer.advertiser_id", read_only=True)
    profit = serializers.DecimalField(
        max_digits=15, decimal_places=2, read_only=True, help_text="revenue − payout"
    )
    status_history = StatusChangeSerializer(
        source="status_changes",
        many=True,
        read_only=True,
        help_text="Every change of the status, oldest first (a record's first status is none).",
    )

    class Meta:
        model = Conversion
        fields = [
            "id",
            "created_at",
            "transaction_id",
            "click",
            "offer",
            "advertiser",
            "publisher",
            "revenue",
            "payout",
            "profit",
            "currency",
            "amount",
            "adv_sub",
            "adv_sub2",
            "adv_sub3",
            "adv_sub4",
            "adv_sub5",
            "status",
            "status_reason",
            "status_changed_at",
            "status_history",
        ]
        read_only_fields = fields


class EventRecordSerializer(ConversionSerializer):
    event_name = serializers.CharField(source="event.name", read_only=True)

    class Meta:
        model = EventRecord
        fields = [
            *ConversionSerializer.Meta.fields[:7],
            "event",
            "event_name",
            "conversion",
            "allow_multiple",
            *ConversionSerializer.Meta.fields[7:],
            "status_by_rule",
        ]
        read_only_fields = fields


class PostbackLogSerializer(serializers.ModelSerializer):
    params = serializers.DictField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Every parameter received; secure masked.",
    )

    class Meta:
        model = PostbackLog
        fields = [
            "id",
            "created_at",
            "method",
            "params",
            "secure_masked",
            "ip",
            "user_agent",
            "status_code",
            "reason",
            "message",
            "type",
            "transaction_id",
            "advertiser",
            "offer",
            "event",
            "click",
            "conversion",
            "event_record",
        ]
        read_only_fields = fields


class RecordViewSet(viewsets.ReadOnlyModelViewSet):
    http_method_names = ["get", "head", "options"]


_HISTORY = Prefetch(
    "status_changes", queryset=StatusChange.objects.select_related("user").order_by("id")
)


class StatusChangeViewSet(RecordViewSet):
    """Records whose status account managers change with ``PATCH``."""

    http_method_names = ["get", "patch", "head", "options"]

    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        """Set the record's status (and reason); events follow a conversion (docs/postbacks.md
        "Approving and rejecting"). Setting the status it has changes nothing."""
        record = self.get_object()
        update = StatusUpdateSerializer(data=request.data)
        update.is_valid(raise_exception=True)
        result = record_status_change(
            record=record,
            status=update.validated_data["status"],
            reason=update.validated_data["reason"],
            source=StatusChange.Source.API,
            user=request.user,
        )
        if result.outcome == "invalid_transition":
            return Response(
                {"reason": "invalid_transition", "detail": result.message},
                status=status.HTTP_409_CONFLICT,
            )
        fresh = self.get_queryset().get(pk=record.pk)
        return Response(self.get_serializer(fresh).data)


def _patch_schema(item: type[serializers.Serializer]):  # noqa: ANN202 - a decorator
    return extend_schema_view(
        partial_update=extend_schema(
            request=StatusUpdateSerializer,
            responses={
                200: item,
                400: OpenApiResponse(description="status not one of the three, or reason too long"),
                403: OpenApiResponse(description="not an account manager (analysts)"),
                409: OpenApiResponse(
                    description="invalid_transition: e.g. approving or setting pending an event "
                    "record whose conversion is rejected"
                ),
            },
        )
    )


@_patch_schema(ConversionSerializer)
class ConversionViewSet(StatusChangeViewSet):
    """Recorded conversions, newest first. ``PATCH`` changes the status (account managers)."""

    serializer_class = ConversionSerializer
    filterset_class = ConversionFilter
    queryset = (
        Conversion.objects.select_related("click", "offer")
        .prefetch_related(_HISTORY)
        .order_by("-created_at", "-id")
    )


@_patch_schema(EventRecordSerializer)
class EventRecordViewSet(StatusChangeViewSet):
    """Recorded events, newest first. ``PATCH`` changes the status (account managers)."""

    serializer_class = EventRecordSerializer
    filterset_class = EventRecordFilter
    queryset = (
        EventRecord.objects.select_related("click", "offer", "event")
        .prefetch_related(_HISTORY)
        .order_by("-created_at", "-id")
    )


class PostbackLogViewSet(RecordViewSet):
    """The postback log: every postback request received and its outcome, newest first."""

    serializer_class = PostbackLogSerializer
    filterset_class = PostbackLogFilter
    queryset: QuerySet = PostbackLog.objects.order_by("-created_at", "-id")
