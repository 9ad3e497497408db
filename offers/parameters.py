"""Parameter mappings: which optional postback parameters a generated URL carries.

A mapping is a JSON object from parameter name to the placeholder shown in the URL, for
example ``{"amount": "{revenue}", "adv_sub": "{order_id}"}``. ``transaction_id`` may be
mapped too, to change its placeholder (default ``REPLACE``). A mapping only shapes the URL
given to the advertiser; it never changes what the postback endpoint accepts.
"""

import re
from typing import Any

from django.core.exceptions import ValidationError

DEFAULT_PLACEHOLDER = "REPLACE"

#: Parameter name → what it means, in the order generated URLs list them.
SUPPORTED_PARAMETERS: dict[str, str] = {
    "transaction_id": "the click ID (placeholder only; always in the URL)",
    "amount": "sale amount, needed for CPS",
    "currency": "3-letter currency code of the amount",
    "adv_sub": "the advertiser's reference (order ID); dedupes multiple events",
    "adv_sub2": "advertiser reference 2",
    "adv_sub3": "advertiser reference 3",
    "adv_sub4": "advertiser reference 4",
    "adv_sub5": "advertiser reference 5",
}

#: Measurement partners' macros for the common parameters (SPEC "Generated postback URLs").
PRESETS: dict[str, dict[str, str]] = {
    "generic": {"transaction_id": "REPLACE", "amount": "REPLACE", "currency": "REPLACE"},
    # adv_sub: AppsFlyer's order-ID event parameter (af_order_id), so a repeatable event
    # (every purchase) is deduplicated per order and a resend is not counted again.
    "appsflyer": {
        "transaction_id": "{clickid}",
        "amount": "{event_revenue}",
        "currency": "{event_revenue_currency}",
        "adv_sub": "{af_order_id}",
    },
    # Adjust has no order-ID placeholder: the app adds the callback parameter adv_sub to the
    # event and Adjust appends it to the callback itself (PRESET_NOTES says so in the form).
    "adjust": {
        "transaction_id": "{click_id}",
        "amount": "{revenue_float}",
        "currency": "{currency}",
    },
}
PRESET_LABELS: dict[str, str] = {"generic": "Generic", "appsflyer": "AppsFlyer", "adjust": "Adjust"}
#: What the person applying a preset must know about its order ID (adv_sub).
PRESET_NOTES: dict[str, str] = {
    "generic": "The advertiser replaces each REPLACE with its own value. For an event that "
    "allows multiple, add adv_sub (the order ID) so a resend is not counted again.",
    "appsflyer": "adv_sub is {af_order_id}, the order ID of the purchase event: a resent "
    "purchase is a duplicate, a new order a new record.",
    "adjust": "Adjust has no order-ID placeholder. For an event that allows multiple, the app "
    "must add the callback parameter adv_sub (the order ID) to the event; Adjust appends it "
    "to the callback.",
}

DOUBLE_COUNT_WARNING = (
    "Allow multiple is on but the event URL carries no adv_sub: every resend of the same "
    "order is recorded again. Map adv_sub to the partner's order ID (AppsFlyer: "
    "{af_order_id}), or make sure the advertiser appends adv_sub itself (Adjust: a callback "
    "parameter)."
)


def counts_resends_again(
    *, allow_multiple: bool, offer_mapping: dict[str, str], event_mapping: dict[str, str]
) -> bool:
    """Whether an event's URL would record every resend of one order anew.

    An event that allows multiple is deduplicated per ``adv_sub`` (docs/postbacks.md,
    "Events that repeat"); a URL that does not carry ``adv_sub`` (from the event's mapping
    or, inherited, the offer's) leaves nothing to deduplicate by.
    """
    return allow_multiple and "adv_sub" not in {**offer_mapping, **event_mapping}


# Placeholders are pasted into a URL and substituted by the partner's system as text, so
# they are shown as typed; characters that would break the URL's structure are refused.
_PLACEHOLDER_RE = re.compile(r"^[^\s&#?=\x00-\x1f\x7f]{1,100}$")


def validate_parameter_mapping(value: Any) -> None:
    """Refuse anything that is not ``{supported name: placeholder}``."""
    if not isinstance(value, dict):
        raise ValidationError("Must be an object mapping parameter names to placeholders.")
    errors = []
    for name, placeholder in value.items():
        if name not in SUPPORTED_PARAMETERS:
            supported = ", ".join(SUPPORTED_PARAMETERS)
            errors.append(f"Unknown parameter “{name}”. Supported: {supported}.")
        elif not isinstance(placeholder, str) or not _PLACEHOLDER_RE.match(placeholder):
            errors.append(
                f"The placeholder for “{name}” must be 1–100 characters without spaces, "
                "“&”, “#”, “?” or “=”."
            )
    if errors:
        raise ValidationError(errors)


def ordered_mapping(mapping: dict[str, str]) -> dict[str, str]:
    """The mapping in the canonical order of SUPPORTED_PARAMETERS."""
    return {name: mapping[name] for name in SUPPORTED_PARAMETERS if name in mapping}
