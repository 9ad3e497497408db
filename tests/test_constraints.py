"""Every rule the schema holds fails at the database, whatever the application does."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from offers.models import Advertiser, Event
from tests.factories import (
    AdvertiserFactory,
    ClickFactory,
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
    PostbackLogFactory,
)
from tests.markers import requires_postgresql
from tracking.models import Click, Conversion, EventRecord, PostbackLog

pytestmark = pytest.mark.django_db


def violates(constraint: str, model, pk: int, **values) -> None:  # noqa: ANN001
    """Write ``values`` straight to the table (no model validation) and expect a refusal."""
    with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
        model.objects.filter(pk=pk).update(**values)
    # PostgreSQL names the constraint; SQLite names the CHECK expression or columns.
    assert constraint in str(excinfo.value) or "constraint" in str(excinfo.value).lower()


def test_one_conversion_per_click():
    conversion = ConversionFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        ConversionFactory(click=conversion.click)
    assert Conversion.objects.count() == 1


def test_event_names_are_unique_per_offer_and_case_sensitive():
    event = EventFactory(name="purchase")

    with pytest.raises(IntegrityError), transaction.atomic():
        EventFactory(offer=event.offer, name="purchase")
    EventFactory(offer=event.offer, name="Purchase")  # another case is another name
    EventFactory(name="purchase")  # the same name on another offer
    assert Event.objects.filter(name__iexact="purchase").count() == 3


def test_single_fire_event_has_one_record_per_click():
    record = EventRecordFactory(event__allow_multiple=False)

    with pytest.raises(IntegrityError), transaction.atomic():
        EventRecordFactory(conversion=record.conversion, event=record.event)
    assert EventRecord.objects.count() == 1


def test_multiple_event_dedupes_by_adv_sub_only_when_sent():
    record = EventRecordFactory(event__allow_multiple=True, adv_sub="ORDER-1")
    same = {"conversion": record.conversion, "event": record.event}

    EventRecordFactory(**same, adv_sub="ORDER-2")
    EventRecordFactory(**same, adv_sub="")
    EventRecordFactory(**same, adv_sub="")
    with pytest.raises(IntegrityError), transaction.atomic():
        EventRecordFactory(**same, adv_sub="ORDER-1")
    assert EventRecord.objects.count() == 4


@pytest.mark.parametrize("field", ["revenue", "payout", "amount"])
@pytest.mark.parametrize("factory", [ConversionFactory, EventRecordFactory])
def test_recorded_money_cannot_be_negative(factory, field):
    record = factory()
    violates(field, type(record), record.pk, **{field: Decimal("-0.01")})


@pytest.mark.parametrize("currency", ["usd", "US", "U$D", "1SD"])
def test_recorded_currency_is_three_upper_case_letters(currency):
    conversion = ConversionFactory()
    violates("currency", Conversion, conversion.pk, currency=currency)


@pytest.mark.parametrize("field", ["revenue_value", "payout_value"])
def test_definition_money_cannot_be_negative(field):
    offer = OfferFactory()
    event = EventFactory()
    violates(field, type(offer), offer.pk, **{field: Decimal("-1")})
    violates(field, type(event), event.pk, **{field: Decimal("-1")})


@pytest.mark.parametrize("side", ["revenue", "payout"])
def test_cps_percentages_are_at_most_100(side):
    offer = OfferFactory()
    violates(
        "cps", type(offer), offer.pk, **{f"{side}_type": "CPS", f"{side}_value": Decimal("100.01")}
    )
    type(offer).objects.filter(pk=offer.pk).update(**{f"{side}_type": "CPS", f"{side}_value": 100})


@pytest.mark.parametrize(
    ("model_factory", "field", "value"),
    [
        (OfferFactory, "status", "archived"),
        (OfferFactory, "revenue_type", "CPM"),
        (OfferFactory, "payout_type", "cpa"),
        (OfferFactory, "currency", "usd"),
        (EventFactory, "revenue_type", "CPC"),
        (EventFactory, "name", ""),
        (PostbackLogFactory, "reason", "teapot"),
        (PostbackLogFactory, "type", "click"),
    ],
)
def test_choices_are_enforced_by_the_database(model_factory, field, value):
    instance = model_factory()
    violates(field, type(instance), instance.pk, **{field: value})


def test_transaction_ids_are_unique_and_well_formed():
    click = ClickFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        ClickFactory(transaction_id=click.transaction_id)
    violates("transaction_id", Click, click.pk, transaction_id="short")
    violates("transaction_id", Click, click.pk, transaction_id="has spaces in it, 20+ long")


@requires_postgresql
def test_a_click_insert_updates_one_index_for_its_transaction_id():
    """The unique index, and not the LIKE-pattern index Django adds for ``unique=True``."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT idx.relname, ind.indisunique FROM pg_index ind
               JOIN pg_class idx ON idx.oid = ind.indexrelid
               JOIN pg_attribute att ON att.attrelid = ind.indrelid
                                    AND att.attnum = ANY (ind.indkey)
               WHERE ind.indrelid = 'tracking_click'::regclass
                 AND att.attname = 'transaction_id'"""
        )
        assert cursor.fetchall() == [("click_transaction_id_unique", True)]


def test_advertiser_tokens_are_unique_and_their_digest_is_sha256():
    advertiser = AdvertiserFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        AdvertiserFactory(postback_token=advertiser.postback_token)
    violates("digest", Advertiser, advertiser.pk, postback_token_digest="not-a-digest")


def test_accepted_log_rows_link_their_record_and_rejected_ones_do_not():
    conversion = ConversionFactory()
    rejected = PostbackLogFactory()

    violates("accepted", PostbackLog, rejected.pk, reason="accepted")
    violates("accepted", PostbackLog, rejected.pk, conversion=conversion)
    PostbackLog.objects.filter(pk=rejected.pk).update(
        reason="accepted", status_code=200, conversion=conversion
    )
