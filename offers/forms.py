"""Admin forms for the definitions: the parameter mapping editor and the event form."""

import copy
import json
from typing import Any

from django import forms
from django.contrib.admin.widgets import AdminURLFieldWidget
from django.core.exceptions import ValidationError
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from offers.allow_list import normalise_allow_list
from offers.models import Advertiser, Event, Offer
from offers.parameters import (
    DEFAULT_PLACEHOLDER,
    DOUBLE_COUNT_WARNING,
    PRESET_LABELS,
    PRESET_NOTES,
    PRESETS,
    SUPPORTED_PARAMETERS,
    ordered_mapping,
    validate_parameter_mapping,
)

#: The event form's fields, in the order and with the labels of SPEC "Web admin".
EVENT_FIELDS = [
    "name",
    "revenue_type",
    "revenue_value",
    "payout_type",
    "payout_value",
    "parameters",
    "allow_multiple",
]
EVENT_LABELS = {
    "name": "Event name",
    "revenue_type": "Revenue type",
    "revenue_value": "Revenue value",
    "payout_type": "Payout type",
    "payout_value": "Payout value",
    "parameters": "Parameter mapping",
    "allow_multiple": "Allow multiple events with the same click ID",
}
EVENT_HELP = {
    "name": "Must match what the advertiser sends as event_name (case sensitive).",
    "revenue_value": "What the advertiser pays the network: an amount, or a percentage "
    "of the sale for CPS.",
    "payout_value": "What the network pays the publisher: an amount, or a percentage "
    "of the sale for CPS.",
    "allow_multiple": "On: the event may be recorded again for the same click (e.g. every "
    "purchase), deduplicated by adv_sub when the advertiser sends one. Off: once per click.",
}


class ParameterMappingWidget(forms.Widget):
    """One input per supported parameter (its placeholder); empty means "not in the URL".

    Lists the supported parameters with what they mean under the field, and offers the
    partner presets, which fill the placeholders of the common parameters.
    """

    template_name = "admin/offers/widgets/parameter_mapping.html"
    #: For an event's mapping: its offer's, which the event URL carries where the event
    #: maps nothing (shown as the inputs' placeholders, and checked for adv_sub).
    inherited: dict[str, str] | None = None

    def format_value(self, value: Any) -> dict[str, str]:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = {}
        return value if isinstance(value, dict) else {}

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        mapping = context["widget"]["value"]
        inherited = self.inherited or {}
        context["rows"] = [
            {
                "name": parameter,
                "input_name": f"{name}__{parameter}",
                "input_id": f"id_{name}__{parameter}",
                "meaning": meaning,
                "placeholder": mapping.get(parameter, "") if isinstance(mapping, dict) else "",
                "inherited": inherited.get(parameter, ""),
            }
            for parameter, meaning in SUPPORTED_PARAMETERS.items()
        ]
        context["presets"] = [
            {
                "key": key,
                "label": PRESET_LABELS.get(key, key),
                "json": json.dumps(mapping),
                "note": PRESET_NOTES.get(key, ""),
            }
            for key, mapping in PRESETS.items()
        ]
        context["is_event"] = self.inherited is not None
        context["inherited_json"] = json.dumps(inherited)
        context["offer_transaction_placeholder"] = inherited.get(
            "transaction_id", DEFAULT_PLACEHOLDER
        )
        context["double_count_warning"] = DOUBLE_COUNT_WARNING
        return context

    def render(
        self, name: str, value: Any, attrs: dict[str, Any] | None = None, renderer: Any = None
    ) -> SafeString:
        # The project's template directory is not on the default form renderer's path.
        return SafeString(
            render_to_string(self.template_name, self.get_context(name, value, attrs))
        )

    def value_from_datadict(self, data: Any, files: Any, name: str) -> dict[str, str]:
        mapping = {}
        for parameter in SUPPORTED_PARAMETERS:
            placeholder = (data.get(f"{name}__{parameter}") or "").strip()
            if placeholder:
                mapping[parameter] = placeholder
        return mapping

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return not any(f"{name}__{parameter}" in data for parameter in SUPPORTED_PARAMETERS)

    def id_for_label(self, id_: str) -> str:
        return f"{id_}__transaction_id" if id_ else id_


class ParameterMappingField(forms.Field):
    widget = ParameterMappingWidget

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> dict[str, str]:
        if value in (None, ""):
            return {}
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValidationError("Must be a JSON object.") from exc
        return value

    def validate(self, value: Any) -> None:
        super().validate(value)
        validate_parameter_mapping(value)

    def clean(self, value: Any) -> dict[str, str]:
        return ordered_mapping(super().clean(value))

    def has_changed(self, initial: Any, data: Any) -> bool:
        return (initial or {}) != (data or {})


class CurrencyFormField(forms.CharField):
    """Three ASCII letters, stored upper-case."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(min_length=3, max_length=3)
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        value = super().clean(value).upper()
        if not (value.isascii() and value.isalpha()):
            raise ValidationError("A 3-letter ISO currency code, e.g. USD.")
        return value


class OfferForm(forms.ModelForm):
    parameters = ParameterMappingField(
        label="Parameter mapping",
        help_text="Extra parameters for the offer postback URL and, unless an event maps "
        "its own, for its event URLs.",
    )
    currency = CurrencyFormField(initial="USD", help_text="3-letter ISO code, e.g. USD.")
    destination_url = forms.URLField(
        max_length=2000,
        assume_scheme="https",
        widget=AdminURLFieldWidget(attrs={"class": "vURLField ct-wide"}),
        help_text=Offer._meta.get_field("destination_url").help_text,
    )

    min_conversion_seconds = forms.IntegerField(
        min_value=0,
        required=False,
        initial=0,
        help_text=Offer._meta.get_field("min_conversion_seconds").help_text,
    )

    def clean_min_conversion_seconds(self) -> int:
        return self.cleaned_data.get("min_conversion_seconds") or 0

    class Meta:
        model = Offer
        fields = [
            "name",
            "advertiser",
            "status",
            "destination_url",
            "currency",
            "revenue_type",
            "revenue_value",
            "payout_type",
            "payout_value",
            "parameters",
            "conversion_window_days",
            "min_conversion_seconds",
            "fallback_url",
        ]


class EventForm(forms.ModelForm):
    """Exactly the fields of the spec's event reference; the offer comes from the page."""

    parameters = ParameterMappingField(
        label=EVENT_LABELS["parameters"],
        help_text="Extra parameters for the event postback URL. Where the offer maps the same "
        "parameter, the event's placeholder wins.",
    )

    class Meta:
        model = Event
        fields = EVENT_FIELDS
        labels = EVENT_LABELS
        help_texts = EVENT_HELP

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A copy: the widget instance belongs to this form only.
        self.fields["parameters"].widget = copy.copy(self.fields["parameters"].widget)
        if self.instance.offer_id:
            self.inherit_from(self.instance.offer)

    def inherit_from(self, offer: Offer) -> None:
        """Show the offer's mapping, which the event URL inherits, in the mapping editor."""
        self.fields["parameters"].widget.inherited = dict(offer.parameters)

    def validate_unique(self) -> None:
        # The offer is not a field of this form, so Django would skip the constraints that
        # involve it (an event name is unique within its offer); check them with the offer.
        if self.instance.offer_id is None:
            return super().validate_unique()
        exclude = {field.name for field in Event._meta.fields} - set(self.fields) - {"offer"}
        try:
            self.instance.validate_unique(exclude=exclude)
            self.instance.validate_constraints(exclude=exclude)
        except ValidationError as exc:
            self.add_error(None, exc)
        return None


class AdvertiserAddForm(forms.ModelForm):
    """Only the name: the postback token is generated by ``advertiser_create``."""

    class Meta:
        model = Advertiser
        fields = ["name"]


class AllowListField(forms.CharField):
    """An IP allow-list edited as text, one address or CIDR range per line (or comma
    separated); stored as the canonical list."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 40, "class": "ct-mono"})

    def prepare_value(self, value: object) -> object:
        if isinstance(value, list):
            return "\n".join(value)
        return value

    def to_python(self, value: object) -> list[str]:
        text = super().to_python(value) or ""
        return [entry for line in text.splitlines() for entry in line.split(",")]

    def clean(self, value: object) -> list[str]:
        return normalise_allow_list(self.to_python(value))


class AdvertiserForm(forms.ModelForm):
    allowed_ips = AllowListField(
        label="Allowed IPs",
        required=False,
        help_text="Where this advertiser's postbacks (and status postbacks) may come from: IPv4 "
        "or IPv6 addresses and CIDR ranges, one per line. Empty: any address. A postback from "
        "elsewhere is refused with 403 ip_not_allowed.",
    )

    class Meta:
        model = Advertiser
        fields = ["name", "allowed_ips"]
