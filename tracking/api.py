"""Read-only REST API for what was recorded: conversions, event records, the postback log.

Nobody writes these through the API (records come only from postbacks), so the viewsets
answer GET only; ``RolePermissions`` requires the model's ``view`` permission.
"""

from django.db.models import QuerySet
from rest_framework import serializers, viewsets

from tracking.filters import ConversionFilter, EventRecordFilter, PostbackLogFilter
from tracking.models import Conversion, EventRecord, PostbackLog

MONEY = {"max_digits": 14, "decimal_places": 2, "read_only": True}


class ConversionSerializer(serializers.ModelSerializer):
    transaction_id = serializers.CharField(source="click.transaction_id", read_only=True)
    advertiser = serializers.IntegerField(source="offer.advertiser_id", read_only=True)
    profit = serializers.DecimalField(
        max_digits=15, decimal_places=2, read_only=True, help_text="revenue − payout"
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
        ]
        read_only_fields = fields


class PostbackLogSerializer(serializers.ModelSerializer):
    type = serializers.ChoiceField(
        choices=[*PostbackLog.Type.choices, ("", "Unreadable")],
        read_only=True,
        help_text='What the postback was, or "" when its parameters could not be read.',
    )
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


class ConversionViewSet(RecordViewSet):
    """Recorded conversions, newest first."""

    serializer_class = ConversionSerializer
    filterset_class = ConversionFilter
    queryset = Conversion.objects.select_related("click", "offer").order_by("-created_at", "-id")


class EventRecordViewSet(RecordViewSet):
    """Recorded events, newest first."""

    serializer_class = EventRecordSerializer
    filterset_class = EventRecordFilter
    queryset = EventRecord.objects.select_related("click", "offer", "event").order_by(
        "-created_at", "-id"
    )


class PostbackLogViewSet(RecordViewSet):
    """The postback log: every postback request received and its outcome, newest first."""

    serializer_class = PostbackLogSerializer
    filterset_class = PostbackLogFilter
    queryset: QuerySet = PostbackLog.objects.order_by("-created_at", "-id")
