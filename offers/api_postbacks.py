"""``/api/v1/publishers/{id}/postbacks/``: a publisher's postbacks (SPEC "Publisher
postbacks (outbound)"). The URL is checked as on the admin page (offers.outbound_urls): an
unknown macro, a macro in the scheme, host or port, or a scheme other than http/https
answers 400."""

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.shortcuts import get_object_or_404
from rest_framework import serializers, viewsets
from rest_framework.exceptions import ValidationError

from offers.models import Event, Offer, Publisher, PublisherPostback
from offers.outbound_urls import validate_postback_url


class PublisherPostbackSerializer(serializers.ModelSerializer):
    offer = serializers.PrimaryKeyRelatedField(
        queryset=Offer.objects.all(), allow_null=True, required=False, help_text="null: all offers"
    )
    event = serializers.PrimaryKeyRelatedField(
        queryset=Event.objects.all(),
        allow_null=True,
        required=False,
        help_text="event trigger only: one event, or null for any event",
    )

    class Meta:
        model = PublisherPostback
        fields = [
            "id",
            "publisher",
            "offer",
            "trigger",
            "event",
            "url",
            "enabled",
            "disabled_reason",
            "disabled_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "publisher",
            "disabled_reason",
            "disabled_at",
            "created_at",
            "updated_at",
        ]

    def validate_url(self, url: str) -> str:
        try:
            validate_postback_url(url)
        except DjangoValidationError as exc:
            raise ValidationError(exc.messages) from exc
        return url

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        instance = self.instance
        trigger = data.get("trigger", instance.trigger if instance else None)
        event = data.get("event", instance.event if instance else None)
        offer = data.get("offer", instance.offer if instance else None)
        if event is not None:
            if trigger != PublisherPostback.Trigger.EVENT:
                raise ValidationError({"event": ["Only an event postback can name one event."]})
            if offer is None:
                data["offer"] = event.offer
            elif offer.pk != event.offer_id:
                raise ValidationError({"event": ["This event belongs to another offer."]})
        # Enabled again by hand: the auto-disable flag goes.
        if data.get("enabled") and instance is not None and not instance.enabled:
            data["disabled_reason"], data["disabled_at"] = "", None
        return data


class PublisherPostbackViewSet(viewsets.ModelViewSet):
    serializer_class = PublisherPostbackSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    queryset = PublisherPostback.objects.none()  # the real one is per publisher

    def get_publisher(self) -> Publisher:
        if not hasattr(self, "_publisher"):
            self._publisher = get_object_or_404(Publisher, pk=self.kwargs["publisher_pk"])
        return self._publisher

    def get_queryset(self):  # noqa: ANN201
        if getattr(self, "swagger_fake_view", False):
            return PublisherPostback.objects.none()
        return PublisherPostback.objects.filter(publisher=self.get_publisher()).order_by("id")

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.save(publisher=self.get_publisher())
