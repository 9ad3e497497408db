"""Caps (docs/postbacks.md "Caps") end to end over HTTP: a full cap records conversions
pending (soft) or rejected (hard) with reason cap_reached, the answer carries the record's
status, counters follow status changes, and with one slot left exactly one of 50
simultaneous conversions on two gunicorn servers is approved."""

import functools
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from offers import caps as offer_caps
from offers.models import CapCounter, OfferCap
from tests.factories import (
    ClickFactory,
    ConversionFactory,
    EventFactory,
    OfferFactory,
    PublisherFactory,
)
from tests.markers import requires_postgresql
from tests.servers import answers, fire_at_once
from tracking import caps, postback
from tracking.models import Conversion, EventRecord, PostbackLog
from tracking.status import record_status_change

pytestmark = pytest.mark.django_db


def cap(offer, **given) -> OfferCap:  # noqa: ANN001
    fields = {"metric": "conversions", "period": "day", "limit": 2, "mode": "hard"} | given
    made = OfferCap.objects.create(offer=offer, **fields)
    caps.counter_start(made)
    return made


def convert(client, click=None, *, offer=None, **extra: str):  # noqa: ANN001, ANN201
    click = click or ClickFactory(offer=offer)
    params = {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
    }
    return client.get("/postback", params | extra)


def outcome(response) -> tuple[int, str, str, str]:  # noqa: ANN001
    body = response.json()
    return response.status_code, body["reason"], body["record_status"], body["record_status_reason"]


def test_a_hard_cap_records_conversions_past_it_rejected(client):
    offer = OfferFactory()
    hard = cap(offer, limit=2, mode="hard")

    results = [outcome(convert(client, offer=offer)) for _ in range(3)]

    assert results == [
        (200, "accepted", "approved", ""),
        (200, "accepted", "approved", ""),
        (200, "accepted", "rejected", "cap_reached"),
    ]
    statuses = list(Conversion.objects.order_by("id").values_list("status", "status_reason"))
    assert statuses == [("approved", ""), ("approved", ""), ("rejected", "cap_reached")]
    assert offer_caps.cap_usage([hard]) == {hard.pk: Decimal(2)}
    # Its first status: no history entry.
    assert not Conversion.objects.last().status_changes.exists()
    assert PostbackLog.objects.filter(reason="accepted").count() == 3


def test_a_soft_cap_records_conversions_past_it_pending(client):
    offer = OfferFactory()
    cap(offer, limit=1, mode="soft")

    results = [outcome(convert(client, offer=offer))[2:] for _ in range(2)]

    assert results == [("approved", ""), ("pending", "cap_reached")]


def test_a_hard_cap_wins_over_a_soft_one_and_takes_no_slot_of_the_other(client):
    offer = OfferFactory()
    soft = cap(offer, limit=1, mode="soft")
    hard = cap(offer, limit=1, mode="hard", period="total")

    results = [outcome(convert(client, offer=offer))[2:] for _ in range(2)]

    assert results == [("approved", ""), ("rejected", "cap_reached")]
    assert offer_caps.cap_usage([soft, hard]) == {soft.pk: 1, hard.pk: 1}


def test_too_fast_wins_over_a_cap_and_takes_no_slot(client):
    offer = OfferFactory(min_conversion_seconds=60)
    daily = cap(offer, limit=1)

    fast = outcome(convert(client, offer=offer))
    slow = ClickFactory(offer=offer, created_at=timezone.now() - timedelta(minutes=2))

    assert fast[2:] == ("rejected", "too_fast")
    assert outcome(convert(client, slow))[2:] == ("approved", "")
    assert offer_caps.cap_usage([daily]) == {daily.pk: 1}


def test_a_publisher_cap_holds_only_that_publishers_conversions(client):
    offer = OfferFactory()
    capped, other = PublisherFactory(), PublisherFactory()
    cap(offer, limit=1, publisher=capped)

    first = convert(client, ClickFactory(offer=offer, publisher=capped))
    second = convert(client, ClickFactory(offer=offer, publisher=capped))
    elsewhere = convert(client, ClickFactory(offer=offer, publisher=other))

    assert [outcome(r)[2] for r in (first, second, elsewhere)] == [
        "approved",
        "rejected",
        "approved",
    ]


def test_a_payout_cap_adds_up_conversions_and_events_and_caps_events_too(client):
    offer = OfferFactory(payout_value=Decimal("3.00"))
    event = EventFactory(offer=offer, payout_value=Decimal("1.00"), allow_multiple=True)
    payout = cap(offer, metric="payout", limit=Decimal("4.00"), mode="soft")
    click = ClickFactory(offer=offer)

    conversion = outcome(convert(client, click))
    events = [outcome(convert(client, click, event_id=str(event.pk)))[2:] for _ in range(2)]

    assert conversion[2] == "approved"
    # 3.00 + 1.00 = 4.00: full; the next event is held.
    assert events == [("approved", ""), ("pending", "cap_reached")]
    assert offer_caps.cap_usage([payout]) == {payout.pk: Decimal("4.00")}


def test_a_money_cap_holds_a_record_in_another_currency(client):
    offer = OfferFactory(currency="USD")
    revenue = cap(offer, metric="revenue", limit=100)

    response = convert(client, offer=offer, currency="EUR")

    assert outcome(response)[2:] == ("pending", "cap_currency")
    assert offer_caps.cap_usage([revenue]) == {revenue.pk: 0}


def test_test_clicks_ignore_caps_and_the_minimum_time(client):
    offer = OfferFactory(min_conversion_seconds=3600)
    daily = cap(offer, limit=1)
    convert(client, offer=offer)  # fills the cap (and is too fast: rejected, no slot)
    convert(client, ClickFactory(offer=offer, created_at=timezone.now() - timedelta(hours=2)))

    response = convert(client, ClickFactory(offer=offer, is_test=True))

    assert outcome(response)[2:] == ("approved", "")
    assert offer_caps.cap_usage([daily]) == {daily.pk: 1}


def test_rejecting_a_record_frees_its_slot_and_nothing_is_approved_automatically(client):
    offer = OfferFactory()
    daily = cap(offer, limit=1)
    first = convert(client, offer=offer).json()
    held = convert(client, offer=offer).json()
    assert held["record_status"] == "rejected"
    token = offer.advertiser.postback_token

    rejected = client.get(
        "/postback/status",
        {"secure": token, "transaction_id": first["transaction_id"], "status": "rejected"},
    )

    assert rejected.json()["reason"] == "updated"
    assert offer_caps.cap_usage([daily]) == {daily.pk: 0}
    assert Conversion.objects.get(pk=held["id"]).status == "rejected"
    assert outcome(convert(client, offer=offer))[2] == "approved"
    assert offer_caps.cap_usage([daily]) == {daily.pk: 1}


def test_an_advertiser_cannot_approve_a_record_a_cap_holds(client):
    offer = OfferFactory()
    cap(offer, limit=1, mode="soft")
    convert(client, offer=offer)
    held = convert(client, offer=offer).json()

    response = client.get(
        "/postback/status",
        {
            "secure": offer.advertiser.postback_token,
            "transaction_id": held["transaction_id"],
            "status": "approved",
        },
    )

    assert (response.status_code, response.json()["reason"]) == (409, "invalid_transition")
    assert Conversion.objects.get(pk=held["id"]).status == "pending"


def test_a_manager_approving_a_held_record_counts_it(client):

    offer = OfferFactory()
    daily = cap(offer, limit=1, mode="soft")
    convert(client, offer=offer)
    held = convert(client, offer=offer).json()

    record_status_change(record=Conversion, record_id=held["id"], status="approved", source="api")

    assert offer_caps.cap_usage([daily]) == {daily.pk: 2}


def test_a_new_cap_starts_from_the_periods_approved_records():
    offer = OfferFactory()
    ConversionFactory.create_batch(2, click__offer=offer)
    ConversionFactory(click__offer=offer, status="rejected")

    daily = cap(offer, limit=5)

    assert offer_caps.cap_usage([daily]) == {daily.pk: 2}


def test_events_of_a_pending_conversion_take_no_slot(client):
    offer = OfferFactory()
    event = EventFactory(offer=offer)
    payout = cap(offer, metric="payout", limit=100)
    conversion = ConversionFactory(click__offer=offer, status="pending")

    response = convert(client, conversion.click, event_id=str(event.pk))

    assert outcome(response)[2:] == ("pending", "conversion_pending")
    assert offer_caps.cap_usage([payout]) == {payout.pk: 0}
    assert EventRecord.objects.get().status_by_rule


def test_the_dry_run_shows_the_status_a_full_cap_gives(manager_admin):
    offer = OfferFactory()
    cap(offer, limit=1)
    ConversionFactory(click__offer=offer)
    CapCounter.objects.filter(shard=0).update(used=1)
    click = ClickFactory(offer=offer)

    response = manager_admin.post(
        f"/admin/tracking/test-postback/{offer.pk}/send/",
        {"target": "conversion", "transaction_id": click.transaction_id, "dry_run": True},
        content_type="application/json",
    )

    body = response.json()["body"]
    assert (body["record_status"], body["record_status_reason"]) == ("rejected", "cap_reached")
    assert not Conversion.objects.filter(click=click).exists()


# (period, local time, start of its period)
PERIODS = [
    ("day", datetime(2026, 12, 6, 23, 30), date(2026, 12, 6)),
    ("week", datetime(2026, 12, 6, 23, 30), date(2026, 11, 30)),  # a Sunday: Monday before
    ("week", datetime(2026, 12, 7, 0, 0), date(2026, 12, 7)),  # a Monday starts its week
    ("month", datetime(2026, 12, 31, 23, 59), date(2026, 12, 1)),
    ("month", datetime(2027, 1, 1, 0, 0), date(2027, 1, 1)),
    ("total", datetime(2026, 12, 6, 12, 0), date(1970, 1, 1)),
]


@pytest.mark.parametrize(("period", "local", "start"), PERIODS)
def test_periods_are_calendar_periods_in_time_zone(settings, period, local, start):
    settings.TIME_ZONE = "America/New_York"
    at = timezone.make_aware(local)  # in TIME_ZONE

    assert offer_caps.period_start(period, offer_caps.local_day(at)) == start


def test_a_utc_time_counts_in_the_day_of_time_zone(settings):
    settings.TIME_ZONE = "America/New_York"
    # Monday 03:00 UTC is still Sunday evening in New York: last week's counter.
    at = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)

    assert offer_caps.period_start("week", offer_caps.local_day(at)) == date(2026, 11, 30)
    assert offer_caps.period_bounds("day", offer_caps.local_day(at))[0].isoformat() == (
        "2026-12-06T00:00:00-05:00"
    )


def test_each_period_has_its_own_counter(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    offer = OfferFactory()
    weekly = cap(offer, period="week", limit=1)
    decision = _decision(offer, weekly)
    sunday = timezone.make_aware(datetime(2026, 12, 6, 23, 0))
    monday = timezone.make_aware(datetime(2026, 12, 7, 0, 30))

    assert caps.take_slots(decision, created_at=sunday)[0] == "approved"
    assert caps.take_slots(decision, created_at=sunday)[0] == "rejected"
    assert caps.take_slots(decision, created_at=monday)[0] == "approved"
    assert set(CapCounter.objects.filter(used__gt=0).values_list("period_start", "used")) == {
        (date(2026, 11, 30), Decimal(1)),
        (date(2026, 12, 7), Decimal(1)),
    }


def _decision(offer, *held: OfferCap):  # noqa: ANN001, ANN202
    from offers.definitions import definitions  # noqa: PLC0415
    from tracking import rules  # noqa: PLC0415

    defs = definitions(version=None).offer(offer.pk)
    assert defs is not None
    base = rules.Decision(
        rules.Reason.ACCEPTED,
        "",
        rules.RecordKind.CONVERSION,
        offer_id=offer.pk,
        revenue=Decimal(5),
        payout=Decimal(3),
        currency="USD",
    )
    from dataclasses import replace  # noqa: PLC0415

    return replace(base, caps=tuple(c for c in defs.caps if c.id in {h.pk for h in held}))


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_with_one_slot_left_exactly_one_of_fifty_simultaneous_conversions_is_approved(servers):
    offer = OfferFactory()
    daily = cap(offer, limit=3)
    ConversionFactory.create_batch(2, click__offer=offer)
    caps.counter_start(daily)  # two of three slots used
    clicks = ClickFactory.create_batch(50, offer=offer)
    params = [
        {"secure": offer.advertiser.postback_token, "transaction_id": c.transaction_id}
        for c in clicks
    ]
    urls = [servers[n % len(servers)] for n in range(50)]

    responses = fire_at_once(urls, params)

    assert answers(responses) == {(200, "accepted"): 50}
    statuses = [r.json()["record_status"] for r in responses]
    assert statuses.count("approved") == 1
    assert statuses.count("rejected") == 49
    new = Conversion.objects.filter(click__in=clicks)
    assert new.filter(status="approved").count() == 1
    assert new.filter(status="rejected", status_reason="cap_reached").count() == 49
    assert offer_caps.cap_usage([daily]) == {daily.pk: 3}


def offer_url_burst(servers: list[str], offer, count: int) -> list:  # noqa: ANN001
    """``count`` conversions of new clicks on the offer URL, fired at once, spread over the
    servers."""
    token = offer.advertiser.postback_token
    clicks = ClickFactory.create_batch(count, offer=offer)
    params = [
        {"secure": token, "transaction_id": c.transaction_id, "offer_id": offer.pk} for c in clicks
    ]
    return fire_at_once([servers[n % len(servers)] for n in range(count)], params)


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_with_the_servers_warm_exactly_as_many_as_there_are_slots_are_approved(servers):
    # Once a worker has the definitions cached, an accepted postback takes its slots in the
    # one statement that records it (tracking/postback.py); the first burst warms every
    # worker (its conversions all have room), the second races for the last ten slots.
    offer = OfferFactory()
    daily = cap(offer, limit=50)
    burst = functools.partial(offer_url_burst, servers, offer)

    warm = burst(40)
    assert [r.json()["record_status"] for r in warm].count("approved") == 40

    responses = burst(50)

    statuses = [r.json()["record_status"] for r in responses]
    assert answers(responses) == {(200, "accepted"): 50}
    assert (statuses.count("approved"), statuses.count("rejected")) == (10, 40)
    assert Conversion.objects.filter(offer=offer, status="approved").count() == 50
    assert offer_caps.cap_usage([daily]) == {daily.pk: 50}


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_far_from_the_limit_records_take_slots_alone_and_near_it_count_exactly(servers):
    # tracking/caps.py: while a shard's allowance holds a record, the record locks that
    # shard alone; the allowances add up to no more than the limit, and near it no shard
    # holds one, so of 50 simultaneous conversions for the last ten slots exactly ten are
    # approved.
    offer = OfferFactory()
    daily = cap(offer, limit=1000)
    burst = functools.partial(offer_url_burst, servers, offer)

    alone = burst(40) + burst(20)  # the first burst warms the workers
    counters = CapCounter.objects.filter(cap=daily)

    assert [r.json()["record_status"] for r in alone].count("approved") == 60
    assert offer_caps.cap_usage([daily]) == {daily.pk: 60}
    assert counters.filter(used__gt=0).count() > 1
    assert counters.filter(balanced_for=1000).count() == CapCounter.SHARDS
    assert sum(counter.allowance for counter in _counters(daily)) <= 1000

    # A manager lowers the limit to leave ten slots: the allowances were shared out for
    # the old one, so the next record counts the exact way and shares out what is left,
    # less than a record per shard.
    daily.limit = Decimal(70)
    daily.save()
    responses = burst(50)

    statuses = [r.json()["record_status"] for r in responses]
    assert answers(responses) == {(200, "accepted"): 50}
    assert (statuses.count("approved"), statuses.count("rejected")) == (10, 40)
    assert offer_caps.cap_usage([daily]) == {daily.pk: 70}
    assert all(counter.allowance == counter.used for counter in _counters(daily))
    # Rejecting one frees its slot for the next conversion, counted exactly.
    approved = Conversion.objects.filter(offer=offer, status="approved").first()
    record_status_change(record=approved, status="rejected", reason="fraud", source="admin")
    assert offer_caps.cap_usage([daily]) == {daily.pk: 69}
    (last, after) = burst(2)
    assert sorted([last.json()["record_status"], after.json()["record_status"]]) == [
        "approved",
        "rejected",
    ]


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_simultaneous_duplicates_of_a_capped_conversion_count_once(servers):
    # The one-statement path inserts a capped record without ON CONFLICT: a duplicate that
    # commits between its read and its insert makes it raise, which undoes the slots it took
    # (tracking/postback.py), and the ordinary path refuses the duplicate.
    offer = OfferFactory()
    daily = cap(offer, limit=1000)
    monthly = cap(offer, period="month", limit=1000, mode="soft")
    offer_url_burst(servers, offer, 20)  # warms every worker
    click = ClickFactory(offer=offer)
    params = {"secure": offer.advertiser.postback_token, "transaction_id": click.transaction_id}

    responses = fire_at_once([servers[n % len(servers)] for n in range(20)], [params] * 20)

    assert answers(responses) == {(200, "accepted"): 1, (409, "duplicate_conversion"): 19}
    assert Conversion.objects.filter(click=click).count() == 1
    assert offer_caps.cap_usage([daily, monthly]) == {daily.pk: 21, monthly.pk: 21}


def _counters(cap_: OfferCap) -> list[CapCounter]:
    return list(CapCounter.objects.filter(cap=cap_).order_by("shard"))


def test_allowances_share_out_what_is_left_and_add_up_to_no_more_than_the_limit(client):
    offer = OfferFactory()
    ConversionFactory.create_batch(2, click__offer=offer)
    daily = cap(offer, limit=100)  # counter_start: 2 used, 98 left over 16 shards

    counters = _counters(daily)
    assert [c.allowance - c.used for c in counters] == [Decimal("6.12")] * CapCounter.SHARDS
    assert sum(c.used for c in counters) == 2
    assert {c.balanced_for for c in counters} == {Decimal(100)}

    for _ in range(5):
        assert outcome(convert(client, offer=offer))[2] == "approved"

    counters = _counters(daily)
    assert sum(c.used for c in counters) == 7
    assert all(c.used <= c.allowance for c in counters)
    assert sum(c.allowance for c in counters) <= 100


def test_a_changed_limit_is_shared_out_again_before_a_record_takes_a_slot_alone(client):
    offer = OfferFactory()
    daily = cap(offer, limit=100)
    convert(client, offer=offer)
    daily.limit = Decimal(3)
    daily.save()

    assert outcome(convert(client, offer=offer))[2] == "approved"

    counters = _counters(daily)
    assert {c.balanced_for for c in counters} == {Decimal(3)}
    assert sum(c.allowance for c in counters) <= 3
    assert outcome(convert(client, offer=offer))[2] == "approved"
    assert outcome(convert(client, offer=offer))[2] == "rejected"
    assert offer_caps.cap_usage([daily]) == {daily.pk: 3}


def test_a_manager_approving_past_the_limit_closes_every_allowance(client):
    offer = OfferFactory()
    daily = cap(offer, limit=2, mode="soft")
    convert(client, offer=offer)
    convert(client, offer=offer)
    click = ClickFactory(offer=offer)
    assert outcome(convert(client, click))[2] == "pending"
    held = Conversion.objects.get(click=click)

    record_status_change(record=held, status="approved", reason="", source="admin")

    counters = _counters(daily)
    assert sum(c.used for c in counters) == 3
    assert all(c.allowance == c.used for c in counters)
    assert outcome(convert(client, offer=offer))[2] == "pending"


@requires_postgresql
def test_a_record_one_of_whose_caps_has_no_room_in_its_shard_counts_the_exact_way(client):
    offer = OfferFactory()
    daily = cap(offer, limit=100)
    monthly = cap(offer, period="month", limit=100)
    convert(client, offer=offer)  # caches the definitions
    # The monthly cap's shards hold nothing more (as after a manager's approval past a
    # limit), the daily cap's have room: the one statement takes a daily slot, finds no
    # monthly one, and is undone whole; the ordinary path counts the record exactly.
    CapCounter.objects.filter(cap=monthly).update(allowance=F("used"))
    click = ClickFactory(offer=offer)

    with CaptureQueriesContext(connection) as captured:
        assert outcome(convert(client, click)) == (200, "accepted", "approved", "")

    sql = [q["sql"].lstrip() for q in captured.captured_queries if "SAVEPOINT" not in q["sql"]]
    tried = [n for n, statement in enumerate(sql) if statement.startswith("WITH the_click")]
    assert tried and tried[0] < len(sql) - 1  # tried in one statement, then the ordinary way
    assert offer_caps.cap_usage([daily, monthly]) == {daily.pk: 2, monthly.pk: 2}
    assert sum(c.allowance for c in _counters(monthly)) <= 100
    assert PostbackLog.objects.filter(reason="accepted").count() == 2


@requires_postgresql
def test_the_one_statement_path_adds_each_records_own_amount(client):
    # The caps' rows are built once per day, caps and amounts (tracking/postback.py
    # ``_caps_param``): events of different amounts each add their own.
    offer = OfferFactory(payout_value=Decimal("1.00"))
    event = EventFactory(
        offer=offer, payout_type="CPS", payout_value=Decimal("10"), allow_multiple=True
    )
    payout = cap(offer, metric="payout", limit=Decimal("1000.00"), mode="soft")
    click = ClickFactory(offer=offer)
    convert(client, click)  # caches the definitions and makes the day's counters

    for amount in ("20.00", "30.00", "20.00"):
        with CaptureQueriesContext(connection) as captured:
            body = convert(client, click, event_id=str(event.pk), amount=amount).json()
        writes = [q["sql"] for q in captured.captured_queries if "WITH the_click" in q["sql"]]
        assert len(writes) == 1 and "offers_capcounter" in writes[0]  # in one statement
        assert body["record_status"] == "approved"

    # 1.00 for the conversion, then 10 % of each amount.
    assert offer_caps.cap_usage([payout]) == {payout.pk: Decimal("8.00")}


def test_the_caps_rows_follow_the_day_in_time_zone(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    offer = OfferFactory()
    daily = cap(offer, period="day", limit=5)
    decision = _decision(offer, daily)
    evening = timezone.make_aware(datetime(2026, 12, 7, 23, 30))  # Monday in Berlin
    after_midnight = evening + timedelta(hours=1)  # Tuesday in Berlin, Monday in UTC

    starts = [
        [(k["k_cap_id"], k["k_start"]) for k in json.loads(postback._caps_param([decision], at)[0])]
        for at in (evening, after_midnight, evening)
    ]

    assert starts == [
        [(daily.pk, "2026-12-07")],
        [(daily.pk, "2026-12-08")],
        [(daily.pk, "2026-12-07")],
    ]


@requires_postgresql
@pytest.mark.parametrize(
    ("taken", "of", "answer"), [(2, 2, True), (0, 2, False), (0, 0, True), (1, 2, None)]
)
def test_a_record_is_inserted_when_all_its_caps_took_it_and_undone_when_some_did(taken, of, answer):
    with connection.cursor() as cursor:
        if answer is None:
            with pytest.raises(DatabaseError) as raised, transaction.atomic():
                cursor.execute(f"SELECT {caps.TAKEN}(%s, %s)", [taken, of])
            assert caps.is_taken_in_part(raised.value)
        else:
            cursor.execute(f"SELECT {caps.TAKEN}(%s, %s)", [taken, of])
            assert cursor.fetchone()[0] is answer


@requires_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_cap_deleted_while_a_process_still_has_it_cached_changes_no_answer(client, monkeypatch):
    from offers import definitions  # noqa: PLC0415
    from offers.services import offer_caps_replace  # noqa: PLC0415

    # A process that has not cached the definitions yet, nor made any counter itself.
    monkeypatch.setattr(definitions, "_current", None)
    monkeypatch.setattr(caps, "_ensured", set())
    offer = OfferFactory()
    daily = cap(offer, limit=100)
    # The ordinary path: it caches the definitions, the cap included.
    assert outcome(convert(client, offer=offer)) == (200, "accepted", "approved", "")
    # An account manager removes the cap (its counters go with it) while this process
    # still has it cached: the next postback's one statement would make counters for a cap
    # that is gone (whose foreign key fails the commit); it is left to the ordinary path,
    # which reads the definitions as they are now.
    offer_caps_replace(offer=offer, caps=[])
    assert not OfferCap.objects.filter(pk=daily.pk).exists()

    answers_now = [outcome(convert(client, offer=offer)) for _ in range(3)]

    assert answers_now == [(200, "accepted", "approved", "")] * 3
    assert Conversion.objects.filter(offer=offer, status="approved").count() == 4
    assert PostbackLog.objects.filter(reason="accepted").count() == 4
    assert not CapCounter.objects.filter(cap_id=daily.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_a_record_written_as_its_cap_is_deleted_counts_against_the_caps_that_are_left():
    offer = OfferFactory()
    daily, monthly = cap(offer, limit=5), cap(offer, period="month", limit=5)
    decision = _decision(offer, daily, monthly)
    # The definitions were read with both caps; the daily one is deleted before the record
    # takes its slots.
    CapCounter.objects.filter(cap=daily).delete()
    daily.delete()

    with transaction.atomic():
        status = caps.take_slots(decision, created_at=timezone.now())

    assert status == ("approved", "", False)
    assert offer_caps.cap_usage([monthly]) == {monthly.pk: 1}
    assert not CapCounter.objects.filter(cap_id=daily.pk).exists()
