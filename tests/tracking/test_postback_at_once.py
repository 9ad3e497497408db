"""The one-statement path (tracking/postback.py): a postback that names its offer, judged on
cached definitions and written with the click's checks as the insert's conditions.

Every answer must be the one the spec's checks give in order, exactly as on the ordinary
path: these tests warm the cache first, so the one-statement path is what answers, and
each makes one of its conditions fail.
"""

from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offers.models import MoneyType, Offer
from offers.services import event_update
from tests.factories import (
    ClickFactory,
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
)
from tests.markers import requires_postgresql
from tracking import postback
from tracking.models import Conversion, EventRecord, PostbackLog
from tracking.services import generate_transaction_id

pytestmark = [pytest.mark.django_db, requires_postgresql]


@pytest.fixture
def network(client):
    """Advertiser A with offers one and two (an event each), advertiser B with offer three;
    every offer and its events in this process's cache."""
    one = OfferFactory()
    two = OfferFactory(advertiser=one.advertiser)
    three = OfferFactory()
    events = {offer.pk: EventFactory(offer=offer, name="purchase") for offer in (one, two, three)}
    for offer in (one, two, three):
        warm = ClickFactory(offer=offer)
        client.get(
            "/postback",
            {
                "secure": offer.advertiser.postback_token,
                "transaction_id": warm.transaction_id,
                "event_id": events[offer.pk].pk,
            },
        )
    PostbackLog.objects.all().delete()
    return one, two, three, events


def answer(client, token_of, transaction_id: str, **params) -> tuple[int, str]:  # noqa: ANN001
    """(status, reason) of a postback with the token of ``token_of``'s advertiser."""
    params |= {"secure": token_of.advertiser.postback_token, "transaction_id": transaction_id}
    response = client.get("/postback", params)
    return response.status_code, response.json()["reason"]


def converted(offer):  # noqa: ANN001, ANN201
    """A conversion of a new click on ``offer``."""
    return ConversionFactory(click=ClickFactory(offer=offer), offer=offer)


def test_a_conversion_naming_its_offer_is_accepted_and_logged_whole(client, network):
    one, *_ = network
    click = ClickFactory(offer=one)
    token = one.advertiser.postback_token

    response = client.get(
        "/postback",
        {
            "secure": token,
            "transaction_id": click.transaction_id,
            "offer_id": one.pk,
            "adv_sub": "order-1",
            "currency": "eur",
        },
    )

    body = response.json()
    conversion = Conversion.objects.get()
    assert response.status_code == 200
    assert body == {
        "status": "accepted",
        "reason": "accepted",
        "type": "conversion",
        "id": conversion.pk,
        "transaction_id": click.transaction_id,
        "offer_id": one.pk,
        "revenue": "5.00",
        "payout": "3.00",
        "currency": "EUR",
        "record_status": "approved",
        "record_status_reason": "",
    }
    assert (conversion.click_id, conversion.publisher_id, conversion.adv_sub) == (
        click.pk,
        click.publisher_id,
        "order-1",
    )
    log = PostbackLog.objects.get()
    assert (log.reason, log.status_code, log.conversion_id, log.event_record_id) == (
        "accepted",
        200,
        conversion.pk,
        None,
    )
    assert (log.advertiser_id, log.offer_id, log.click_id, log.event_id, log.type) == (
        one.advertiser_id,
        one.pk,
        click.pk,
        None,
        "conversion",
    )
    assert token not in str(log.params) and log.params["secure"].startswith(token[:4])


def test_an_event_by_id_is_accepted_with_its_conversion_linked(client, network):
    one, _, _, events = network
    conversion = converted(one)
    event = events[one.pk]

    status_reason = answer(client, one, conversion.click.transaction_id, event_id=event.pk)

    record = EventRecord.objects.get(click=conversion.click)
    assert status_reason == (200, "accepted")
    assert (record.event_id, record.conversion_id, record.payout) == (
        event.pk,
        conversion.pk,
        Decimal("1.00"),
    )
    assert PostbackLog.objects.get().event_record_id == record.pk


def test_offer_id_of_another_offer_of_the_same_advertiser_is_offer_mismatch(client, network):
    one, two, *_ = network
    click = ClickFactory(offer=two)

    assert answer(client, one, click.transaction_id, offer_id=one.pk) == (422, "offer_mismatch")
    assert not Conversion.objects.exists()


def test_an_event_id_of_another_offer_is_unknown_for_this_click(client, network):
    one, two, _, events = network
    conversion = converted(two)

    assert answer(client, one, conversion.click.transaction_id, event_id=events[one.pk].pk) == (
        404,
        "unknown_event",
    )
    assert not EventRecord.objects.filter(click=conversion.click).exists()


def test_a_click_of_another_advertisers_offer_is_invalid_secure(client, network):
    one, _, three, _ = network
    click = ClickFactory(offer=three)

    assert answer(client, one, click.transaction_id, offer_id=one.pk) == (403, "invalid_secure")
    assert not Conversion.objects.exists()


def test_an_unknown_transaction_naming_an_offer_is_unknown_transaction(client, network):
    one, *_ = network

    assert answer(client, one, generate_transaction_id(), offer_id=one.pk) == (
        404,
        "unknown_transaction",
    )
    assert PostbackLog.objects.get().reason == "unknown_transaction"


def test_an_event_before_its_conversion_is_no_conversion(client, network):
    one, _, _, events = network
    click = ClickFactory(offer=one)

    assert answer(
        client, one, click.transaction_id, event_id=events[one.pk].pk, offer_id=one.pk
    ) == (422, "no_conversion")


def test_a_second_conversion_naming_its_offer_is_a_duplicate(client, network):
    one, *_ = network
    conversion = converted(one)

    assert answer(client, one, conversion.click.transaction_id, offer_id=one.pk) == (
        409,
        "duplicate_conversion",
    )
    assert Conversion.objects.count() == 1


def test_a_second_event_is_a_duplicate_logged_once(client, network):
    one, _, _, events = network
    record = EventRecordFactory(
        event=events[one.pk],
        conversion=converted(one),
    )

    assert answer(client, one, record.click.transaction_id, event_id=record.event_id) == (
        409,
        "duplicate_event",
    )
    assert EventRecord.objects.filter(click=record.click).count() == 1
    assert list(PostbackLog.objects.values_list("reason", flat=True)) == ["duplicate_event"]


def test_an_event_edited_after_it_was_cached_pays_by_its_new_rules(client, network):
    one, _, _, events = network
    event = events[one.pk]
    conversion = converted(one)

    event_update(event=event, payout_value=Decimal("1.75"))
    status_reason = answer(client, one, conversion.click.transaction_id, event_id=event.pk)

    assert status_reason == (200, "accepted")
    assert EventRecord.objects.get(click=conversion.click).payout == Decimal("1.75")


def test_a_cps_event_without_amount_is_amount_required(client, network):
    one, _, _, events = network
    event_update(event=events[one.pk], revenue_type=MoneyType.CPS, revenue_value=Decimal("10"))
    event_id = events[one.pk].pk
    answer(client, one, converted(one).click.transaction_id, event_id=event_id, amount="1")
    again = converted(one)

    assert answer(client, one, again.click.transaction_id, event_id=event_id) == (
        422,
        "amount_required",
    )


# --- The global URL: the postback does not name its offer -----------------------------------


def learned(client, offer) -> None:  # noqa: ANN001
    """A postback of the offer's advertiser on the global URL, as traffic would send: its
    offers and their events are then cached, candidates for the next ones."""
    client.get(
        "/postback",
        {
            "secure": offer.advertiser.postback_token,
            "transaction_id": generate_transaction_id(),
        },
    )
    PostbackLog.objects.all().delete()


def test_an_event_name_on_the_global_url_is_recorded_for_the_clicks_own_offer(client, network):
    one, two, _, events = network
    learned(client, one)
    conversion = converted(two)

    with CaptureQueriesContext(connection) as captured:
        response = client.get(
            "/postback",
            {
                "secure": one.advertiser.postback_token,
                "transaction_id": conversion.click.transaction_id,
                "event_name": "purchase",
            },
        )

    body = response.json()
    record = EventRecord.objects.get()
    log = PostbackLog.objects.get()
    assert (response.status_code, body["offer_id"], body["event_id"]) == (
        200,
        two.pk,
        events[two.pk].pk,
    )
    assert (record.offer_id, record.event_id, record.conversion_id) == (
        two.pk,
        events[two.pk].pk,
        conversion.pk,
    )
    assert (log.offer_id, log.event_id, log.click_id, log.advertiser_id, log.event_record_id) == (
        two.pk,
        events[two.pk].pk,
        conversion.click_id,
        one.advertiser_id,
        record.pk,
    )
    assert len([q for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]) == 1


def test_a_conversion_on_the_global_url_earns_by_its_clicks_offer(client, network):
    one, two, *_ = network
    Offer.objects.filter(pk=two.pk).update(payout_value=Decimal("4.25"))
    learned(client, one)
    click = ClickFactory(offer=two)

    status_reason = answer(client, one, click.transaction_id)

    conversion = Conversion.objects.get()
    assert status_reason == (200, "accepted")
    assert (conversion.offer_id, conversion.payout) == (two.pk, Decimal("4.25"))
    assert PostbackLog.objects.get().conversion_id == conversion.pk


def test_a_global_url_conversion_of_a_cps_offer_without_amount_is_amount_required(client, network):
    one, two, *_ = network
    Offer.objects.filter(pk=two.pk).update(revenue_type=MoneyType.CPS, revenue_value=10)
    learned(client, one)

    assert answer(client, one, ClickFactory(offer=two).transaction_id) == (422, "amount_required")
    assert answer(client, one, ClickFactory(offer=two).transaction_id, amount="20") == (
        200,
        "accepted",
    )
    assert Conversion.objects.get().revenue == Decimal("2.00")


def test_another_advertisers_token_on_the_global_url_is_invalid_secure(client, network):
    one, _, three, _ = network
    learned(client, one)
    learned(client, three)

    assert answer(client, three, ClickFactory(offer=one).transaction_id) == (403, "invalid_secure")
    assert answer(client, three, converted(one).click.transaction_id, event_name="purchase") == (
        403,
        "invalid_secure",
    )
    assert not EventRecord.objects.exists() and Conversion.objects.count() == 1


def test_a_global_url_event_already_recorded_is_a_duplicate(client, network):
    one, two, _, events = network
    learned(client, one)
    record = EventRecordFactory(event=events[two.pk], conversion=converted(two))

    status_reason = answer(client, one, record.click.transaction_id, event_name="purchase")

    assert status_reason == (409, "duplicate_event")
    assert EventRecord.objects.count() == 1


def test_an_advertiser_with_more_offers_than_the_bound_takes_the_ordinary_path(
    client, network, monkeypatch
):
    one, two, *_ = network
    learned(client, one)
    monkeypatch.setattr(postback, "MAX_CANDIDATES", 1)
    click = ClickFactory(offer=two)

    with CaptureQueriesContext(connection) as captured:
        status_reason = answer(client, one, click.transaction_id)

    assert status_reason == (200, "accepted")
    assert len([q for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]) == 2


def test_the_bound_counts_only_the_offers_with_an_event_of_that_name(client, network, monkeypatch):
    one, two, *_ = network
    EventFactory(offer=OfferFactory(advertiser=one.advertiser), name="renew")
    learned(client, one)
    monkeypatch.setattr(postback, "MAX_CANDIDATES", 2)
    conversion, click = converted(two), ClickFactory(offer=one)

    with CaptureQueriesContext(connection) as event_statements:
        event = answer(client, one, conversion.click.transaction_id, event_name="purchase")
    with CaptureQueriesContext(connection) as conversion_statements:
        conversion_answer = answer(client, one, click.transaction_id)

    assert (event, conversion_answer) == ((200, "accepted"), (200, "accepted"))
    # Two offers have a "purchase" event: within the bound. Three offers: past it.
    assert len([q for q in event_statements if "SAVEPOINT" not in q["sql"]]) == 1
    assert len([q for q in conversion_statements if "SAVEPOINT" not in q["sql"]]) == 2


# --- The two paths agree ---------------------------------------------------------------------

SAME_ANSWER = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def world(client, network):
    """The network, every advertiser's offers learned, and clicks in every state."""
    one, two, three, events = network
    Offer.objects.filter(pk=two.pk).update(revenue_type=MoneyType.CPS, revenue_value=10)
    EventFactory(offer=one, name="renew", allow_multiple=True)
    for offer in (one, three):
        learned(client, offer)
    with_record = converted(one)
    EventRecordFactory(conversion=with_record, event=events[one.pk], adv_sub="o-1")
    clicks = {
        "fresh on one": ClickFactory(offer=one).transaction_id,
        "fresh on two": ClickFactory(offer=two).transaction_id,
        "converted on one": converted(one).click.transaction_id,
        "converted on two": converted(two).click.transaction_id,
        "one with its purchase": with_record.click.transaction_id,
        "unknown": generate_transaction_id(),
    }
    tokens = {
        "A": one.advertiser.postback_token,
        "B": three.advertiser.postback_token,
        "nobody's": "x" * 43,
    }
    return {
        "clicks": clicks,
        "tokens": tokens,
        "offer_id": {"none": None, "one": one.pk, "two": two.pk},
        "event": {
            "none": {},
            "purchase by id": {"event_id": events[one.pk].pk},
            "purchase by name": {"event_name": "purchase"},
            "renew by name": {"event_name": "renew"},
            "id and name apart": {"event_id": events[one.pk].pk, "event_name": "renew"},
            "id of two's purchase": {"event_id": events[two.pk].pk},
        },
    }


def answered(client, params) -> tuple:  # noqa: ANN001
    """What a postback answers and writes, inside a transaction rolled back afterwards."""
    with transaction.atomic():
        response = client.get("/postback", params)
        log = PostbackLog.objects.values_list(
            "reason", "status_code", "advertiser_id", "offer_id", "event_id", "click_id"
        ).get()
        records = (Conversion.objects.count(), EventRecord.objects.count())
        transaction.set_rollback(True)
    body = response.json()
    body.pop("id", None)
    return response.status_code, body, log, records


@SAME_ANSWER
@given(
    click=st.sampled_from(
        [
            "fresh on one",
            "fresh on two",
            "converted on one",
            "converted on two",
            "one with its purchase",
            "unknown",
        ]
    ),
    token=st.sampled_from(["A", "B", "nobody's"]),
    offer_id=st.sampled_from(["none", "one", "two"]),
    event=st.sampled_from(
        [
            "none",
            "purchase by id",
            "purchase by name",
            "renew by name",
            "id and name apart",
            "id of two's purchase",
        ]
    ),
    amount=st.sampled_from(["", "19.99"]),
    adv_sub=st.sampled_from(["", "o-1", "o-2"]),
)
def test_the_one_statement_path_answers_exactly_as_the_ordinary_path(
    client, world, monkeypatch, click, token, offer_id, event, amount, adv_sub
):
    params = {
        "secure": world["tokens"][token],
        "transaction_id": world["clicks"][click],
        "offer_id": world["offer_id"][offer_id] or "",
        "amount": amount,
        "adv_sub": adv_sub,
        **world["event"][event],
    }
    PostbackLog.objects.all().delete()

    at_once = answered(client, params)
    with monkeypatch.context() as patched:
        patched.setattr(postback, "_accept_at_once", lambda *args: postback._Attempt())
        ordinary = answered(client, params)

    assert at_once == ordinary
