"""The mapping rules the admin warns with: resends counted again, inconsistent placeholders."""

import pytest

from offers.parameters import PRESETS, counts_resends_again, validate_parameter_mapping
from offers.postback_urls import placeholder_mismatches
from tests.factories import EventFactory, OfferFactory


@pytest.mark.parametrize(
    ("allow_multiple", "offer_mapping", "event_mapping", "counts_again"),
    [
        (True, {}, {}, True),
        (True, {"amount": "{revenue}"}, {"currency": "{currency}"}, True),
        (True, {"adv_sub": "{order_id}"}, {}, False),  # inherited from the offer
        (True, {}, {"adv_sub": "{af_order_id}"}, False),
        (True, {}, {"adv_sub2": "{order_id}"}, True),  # only adv_sub deduplicates
        (False, {}, {}, False),  # once per click anyway
        (True, {}, PRESETS["appsflyer"], False),
        (True, {}, PRESETS["adjust"], True),  # Adjust has no order-ID placeholder
        (True, {}, PRESETS["generic"], True),
    ],
)
def test_an_event_counts_resends_again_only_when_it_allows_multiple_without_adv_sub(
    allow_multiple, offer_mapping, event_mapping, counts_again
):
    assert (
        counts_resends_again(
            allow_multiple=allow_multiple, offer_mapping=offer_mapping, event_mapping=event_mapping
        )
        is counts_again
    )


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_is_a_valid_mapping(preset):
    validate_parameter_mapping(PRESETS[preset])


def test_the_appsflyer_preset_fills_adv_sub_with_the_order_id_macro():
    assert PRESETS["appsflyer"]["adv_sub"] == "{af_order_id}"


@pytest.mark.django_db
def test_an_event_with_another_click_id_macro_than_its_conversion_is_a_mismatch():
    offer = OfferFactory(parameters={})
    appsflyer = EventFactory(offer=offer, parameters=PRESETS["appsflyer"])
    plain = EventFactory(offer=offer, parameters={"amount": "REPLACE"})

    assert placeholder_mismatches(offer, [appsflyer, plain]) == [
        (appsflyer, "transaction_id", "REPLACE", "{clickid}")
    ]


@pytest.mark.django_db
def test_events_that_inherit_or_repeat_the_offers_click_id_macro_are_consistent():
    offer = OfferFactory(parameters=PRESETS["adjust"])
    inherits = EventFactory(offer=offer, parameters={})
    repeats = EventFactory(offer=offer, parameters=PRESETS["adjust"])

    assert placeholder_mismatches(offer, [inherits, repeats]) == []
