"""REST API for the definitions: advertisers, publishers, offers and their events."""

import copy
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Model
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.exceptions import ValidationError
from rest_framework.generics import get_object_or_404
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from offers.allow_list import normalise_allow_list
from offers.caps import cap_usage
from offers.models import Advertiser, Event, Offer, OfferCap, Publisher
from offers.postback_urls import (
    event_postback_url,
    global_postback_url,
    offer_postback_url,
    tracking_url,
)
from offers.services import (
    EventHasRecords,
    advertiser_create,
    event_create,
    event_delete,
    event_update,
    offer_caps_replace,
)
from offers.tokens import mask_token, may_see_tokens, url_as_seen_by


def validate_model(instance: Model, attrs: dict[str, Any]) -> None:
    """Run the model's own validation (fields, constraints) on ``attrs`` applied to ``instance``.

    The model and its database constraints are the single source of the rules; this turns
    their verdict into the API's ``400`` with field messages instead of an IntegrityError.
    """
    for name, value in attrs.items():
        setattr(instance, name, value)
    try:
        instance.full_clean()
    except DjangoValidationError as exc:
        raise api_validation_error(exc) from exc


def api_validation_error(exc: DjangoValidationError) -> ValidationError:
    """A model's ValidationError as DRF's, model-wide errors under ``non_field_errors``."""
    detail = serializers.as_serializer_error(exc)
    if NON_FIELD_ERRORS in detail:
        detail[api_settings.NON_FIELD_ERRORS_KEY] = detail.pop(NON_FIELD_ERRORS)
    return ValidationError(detail)


def _as_seen(serializer: serializers.Serializer, url: str, token: str) -> str:
    """A generated URL as the requesting user may see it: analysts get the token masked."""
    request = serializer.context.get("request")
    return url_as_seen_by(request.user if request else None, url, token)


class StrictCharField(serializers.CharField):
    """Text, and only text: DRF's CharField turns a JSON number or ``true`` into a string,
    which lets a client's type mistake through as data."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ModelSerializer(serializers.ModelSerializer):
    """DRF's ModelSerializer with text fields that take only JSON strings."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.CharField: StrictCharField,
        models.TextField: StrictCharField,
    }


class CurrencyField(StrictCharField):
    """Three ASCII letters, stored upper-case."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_length=3, max_length=3, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not (value.isascii() and value.isalpha()):
            raise ValidationError("Must be a 3-letter ISO currency code, e.g. USD.")
        return value.upper()


class AdvertiserSerializer(ModelSerializer):
    postback_token = serializers.SerializerMethodField(
        help_text="Whole for account managers, masked for analysts."
    )
    global_postback_url = serializers.SerializerMethodField()
    allowed_ips = serializers.ListField(
        child=serializers.CharField(max_length=64, allow_blank=True),
        required=False,
        help_text="IP addresses and CIDR ranges (IPv4, IPv6) the advertiser's postbacks and "
        "status postbacks may come from; empty: any address (docs/postbacks.md check 3a).",
    )

    class Meta:
        model = Advertiser
        fields = [
            "id",
            "name",
            "postback_token",
            "global_postback_url",
            "allowed_ips",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def validate_allowed_ips(self, value: list[str]) -> list[str]:
        try:
            return normalise_allow_list(value)
        except DjangoValidationError as exc:
            raise ValidationError(exc.messages) from exc

    def _reveals_token(self) -> bool:
        request = self.context.get("request")
        return bool(request and may_see_tokens(request.user))

    def get_postback_token(self, advertiser: Advertiser) -> str:
        if self._reveals_token():
            return advertiser.postback_token
        return mask_token(advertiser.postback_token)

    def get_global_postback_url(self, advertiser: Advertiser) -> str:
        url = global_postback_url(advertiser)
        if self._reveals_token():
            return url
        return url.replace(advertiser.postback_token, mask_token(advertiser.postback_token))

    def create(self, validated_data: dict[str, Any]) -> Advertiser:
        allowed_ips = validated_data.pop("allowed_ips", [])
        advertiser = advertiser_create(**validated_data)
        if allowed_ips:
            advertiser.allowed_ips = allowed_ips
            advertiser.save(update_fields=["allowed_ips", "updated_at"])
        return advertiser


class PublisherSerializer(ModelSerializer):
    class Meta:
        model = Publisher
        fields = ["id", "name", "created_at"]
        read_only_fields = ["id", "created_at"]


class CapSerializer(ModelSerializer):
    """One cap of an offer; ``used`` is its counter for the current period (read only)."""

    publisher = serializers.PrimaryKeyRelatedField(
        queryset=Publisher.objects.all(), allow_null=True, required=False, default=None
    )
    used = serializers.SerializerMethodField()

    class Meta:
        model = OfferCap
        fields = ["id", "metric", "period", "limit", "publisher", "mode", "used"]
        read_only_fields = ["id"]

    @extend_schema_field(serializers.DecimalField(max_digits=16, decimal_places=2))
    def get_used(self, cap: OfferCap) -> str:
        usage = self.context.get("cap_usage")
        used = usage[cap.pk] if usage and cap.pk in usage else cap_usage([cap])[cap.pk]
        return f"{used:.2f}"


class OfferSerializer(ModelSerializer):
    currency = CurrencyField(required=False, default="USD")
    # Plain text in the schema, not "format: uri": it carries macros ({transaction_id}) that
    # no URI grammar allows. The model's URL validation still runs (validate_model).
    destination_url = StrictCharField(
        max_length=2000, help_text=Offer._meta.get_field("destination_url").help_text
    )
    postback_url = serializers.SerializerMethodField()
    tracking_url = serializers.SerializerMethodField()
    caps = CapSerializer(
        many=True,
        required=False,
        help_text="The offer's caps, replaced whole on write; each read back with its use in "
        'the current period (docs/postbacks.md "Caps").',
    )

    class Meta:
        model = Offer
        fields = [
            "id",
            "name",
            "advertiser",
            "destination_url",
            "status",
            "currency",
            "revenue_type",
            "revenue_value",
            "payout_type",
            "payout_value",
            "parameters",
            "caps",
            "fallback_url",
            "conversion_window_days",
            "min_conversion_seconds",
            "postback_url",
            "tracking_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = copy.copy(self.instance) if self.instance else Offer()
        validate_model(instance, {k: v for k, v in attrs.items() if k != "caps"})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Offer:
        caps = validated_data.pop("caps", None)
        offer = super().create(validated_data)
        if caps is not None:
            self._replace_caps(offer, caps)
        return offer

    def update(self, instance: Offer, validated_data: dict[str, Any]) -> Offer:
        caps = validated_data.pop("caps", None)
        offer = super().update(instance, validated_data)
        if caps is not None:
            self._replace_caps(offer, caps)
        return offer

    def _replace_caps(self, offer: Offer, caps: list[dict[str, Any]]) -> None:
        try:
            offer_caps_replace(offer=offer, caps=caps)
        except DjangoValidationError as exc:
            raise ValidationError({"caps": exc.messages}) from exc
        if hasattr(offer, "_prefetched_objects_cache"):
            offer._prefetched_objects_cache.pop("caps", None)

    def get_postback_url(self, offer: Offer) -> str:
        return _as_seen(self, offer_postback_url(offer), offer.advertiser.postback_token)

    def get_tracking_url(self, offer: Offer) -> str:
        return tracking_url(offer)


class EventSerializer(ModelSerializer):
    id = serializers.IntegerField(read_only=True, help_text="The event ID, unique platform-wide.")
    postback_url = serializers.SerializerMethodField()

    class Meta:
        model = Event
        fields = [
            "id",
            "name",
            "revenue_type",
            "revenue_value",
            "payout_type",
            "payout_value",
            "allow_multiple",
            "parameters",
            "wait_for_conversion_minutes",
            "postback_url",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        instance = copy.copy(self.instance) if self.instance else Event(offer=self.context["offer"])
        validate_model(instance, attrs)
        return attrs

    @extend_schema_field(serializers.CharField())
    def get_postback_url(self, event: Event) -> str:
        offer = self.context.get("offer") or event.offer
        return _as_seen(
            self, event_postback_url(event, offer=offer), offer.advertiser.postback_token
        )

    def create(self, validated_data: dict[str, Any]) -> Event:
        try:
            return event_create(offer=self.context["offer"], **validated_data)
        except DjangoValidationError as exc:
            raise api_validation_error(exc) from exc

    def update(self, instance: Event, validated_data: dict[str, Any]) -> Event:
        try:
            return event_update(event=instance, **validated_data)
        except DjangoValidationError as exc:
            raise api_validation_error(exc) from exc


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": 2**63 - 1})
class IdFilter(django_filters.NumberFilter):
    """A positive whole number (``NumberFilter`` alone would take ``1.5``)."""

    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, min_value=1, max_value=2**63 - 1, **kwargs)


class OfferFilter(django_filters.FilterSet):
    """``advertiser`` by ID: an ID that names no advertiser finds no offer (rather than the
    400 of a model choice), as every other ID filter of the API."""

    advertiser = IdFilter(field_name="advertiser_id", help_text="Advertiser ID.")

    class Meta:
        model = Offer
        fields = ["advertiser", "status", "currency"]


class DefinitionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """List, create, read and PATCH; no PUT and no DELETE for these definitions."""

    http_method_names = ["get", "post", "patch", "head", "options"]

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        # A unique name can still collide with a concurrent request after validation.
        try:
            with transaction.atomic():
                serializer.save()
        except IntegrityError as exc:
            raise ValidationError(
                {"non_field_errors": ["Conflicts with a change made at the same time; retry."]}
            ) from exc

    perform_update = perform_create


class AdvertiserViewSet(DefinitionViewSet):
    queryset = Advertiser.objects.order_by("id")
    serializer_class = AdvertiserSerializer
    filterset_fields = ["name"]


class PublisherViewSet(DefinitionViewSet):
    queryset = Publisher.objects.order_by("id")
    serializer_class = PublisherSerializer
    filterset_fields = ["name"]


class OfferViewSet(DefinitionViewSet):
    queryset = Offer.objects.select_related("advertiser").prefetch_related("caps").order_by("id")
    serializer_class = OfferSerializer
    filterset_class = OfferFilter


class EventViewSet(
    mixins.DestroyModelMixin,
    DefinitionViewSet,
):
    """``/api/v1/offers/{offer_pk}/events/``: the events of one offer."""

    serializer_class = EventSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = Event.objects.none()  # the real one is per offer; this names the model

    def get_offer(self) -> Offer:
        if not hasattr(self, "_offer"):
            self._offer = get_object_or_404(
                Offer.objects.select_related("advertiser"), pk=self.kwargs["offer_pk"]
            )
        return self._offer

    def get_queryset(self):  # noqa: ANN201
        if getattr(self, "swagger_fake_view", False):
            return Event.objects.none()
        return Event.objects.filter(offer=self.get_offer()).order_by("id")

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False) and "offer_pk" in self.kwargs:
            context["offer"] = self.get_offer()
        return context

    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            event_delete(event=self.get_object())
        except EventHasRecords as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)
