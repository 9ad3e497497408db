"""Exactly once under real concurrency: gunicorn servers sharing one database.

Two gunicorn servers (2 workers × 4 threads each) run against the PostgreSQL test database;
50 identical postbacks are released at once across both. The unique constraints decide:
one is accepted, the other 49 are told they are duplicates (409), never a 500. A separate
test makes the race deterministic by holding the winner's insert open in another
transaction. Then the same on SQLite, the embedded default, with a handful of requests.
"""

import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal

import pytest
import requests
from django.db import connection, transaction

from tests.factories import ClickFactory, ConversionFactory, EventFactory, EventRecordFactory
from tests.markers import requires_postgresql
from tests.servers import answers, fire_at_once, gunicorn, sqlite_database
from tracking.models import Conversion, EventRecord, PostbackLog

REQUESTS = 50


def spread(servers: list[str], count: int = REQUESTS) -> list[str]:
    return [servers[n % len(servers)] for n in range(count)]


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_fifty_identical_conversions_at_once_record_exactly_one(servers):
    click = ClickFactory()
    params = {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
    }

    responses = fire_at_once(spread(servers), [params] * REQUESTS)

    assert answers(responses) == {
        (200, "accepted"): 1,
        (409, "duplicate_conversion"): REQUESTS - 1,
    }
    assert Conversion.objects.count() == 1
    assert PostbackLog.objects.count() == REQUESTS
    accepted = PostbackLog.objects.get(reason="accepted")
    assert accepted.conversion_id == Conversion.objects.get().pk


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_fifty_identical_single_fire_events_at_once_record_exactly_one(servers):
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer, name="purchase")
    params = {
        "secure": conversion.offer.advertiser.postback_token,
        "transaction_id": conversion.click.transaction_id,
        "event_id": str(event.pk),
    }

    responses = fire_at_once(spread(servers), [params] * REQUESTS)

    assert answers(responses) == {(200, "accepted"): 1, (409, "duplicate_event"): REQUESTS - 1}
    assert EventRecord.objects.count() == 1
    assert PostbackLog.objects.count() == REQUESTS


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_fifty_identical_multiple_events_with_one_adv_sub_record_exactly_one(servers):
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer, allow_multiple=True)
    params = {
        "secure": conversion.offer.advertiser.postback_token,
        "transaction_id": conversion.click.transaction_id,
        "event_name": event.name,
        "adv_sub": "order-42",
        "amount": "19.99",
    }

    responses = fire_at_once(spread(servers), [params] * REQUESTS)

    assert answers(responses) == {(200, "accepted"): 1, (409, "duplicate_event"): REQUESTS - 1}
    record = EventRecord.objects.get()
    assert (record.adv_sub, record.amount) == ("order-42", Decimal("19.99"))
    assert PostbackLog.objects.count() == REQUESTS


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_concurrent_multiple_events_keep_one_record_per_adv_sub(servers):
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer, allow_multiple=True)
    base = {
        "secure": conversion.offer.advertiser.postback_token,
        "transaction_id": conversion.click.transaction_id,
        "event_id": str(event.pk),
    }
    params_list = [{**base, "adv_sub": f"order-{n % 5}"} for n in range(REQUESTS)]

    responses = fire_at_once(spread(servers), params_list)

    assert answers(responses) == {(200, "accepted"): 5, (409, "duplicate_event"): REQUESTS - 5}
    assert sorted(EventRecord.objects.values_list("adv_sub", flat=True)) == [
        f"order-{n}" for n in range(5)
    ]


@contextmanager
def held_in_another_transaction(insert) -> Iterator[threading.Event]:  # noqa: ANN001
    """Run ``insert`` in a transaction on another connection and keep it open until the
    yielded event is set, then commit: the winner of a race, frozen mid-flight."""
    inserted, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def hold() -> None:
        try:
            with transaction.atomic():
                insert()
                inserted.set()
                release.wait(timeout=60)
        except BaseException as exc:  # reported to the test below
            failure.append(exc)
            inserted.set()
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    inserted.wait(timeout=30)
    try:
        yield release
    finally:
        release.set()
        holder.join(timeout=60)
    assert not failure, failure


def wait_until_a_backend_waits_for_a_lock() -> None:
    deadline = time.monotonic() + 30
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the postback never waited for the other transaction")


@pytest.mark.parametrize("kind", ["conversion", "event"])
@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_the_loser_of_a_race_answers_409_duplicate_never_500(servers, kind):
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer)
    click = conversion.click
    params = {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
    }
    if kind == "conversion":
        Conversion.objects.all().delete()
        expected = "duplicate_conversion"

        def insert() -> None:
            ConversionFactory(click=click, adv_sub="winner")
    else:
        params["event_id"] = str(event.pk)
        expected = "duplicate_event"

        def insert() -> None:
            EventRecordFactory(conversion=conversion, event=event, adv_sub="winner")

    with held_in_another_transaction(insert) as release, ThreadPoolExecutor(1) as pool:
        # The winner's row is not committed, so every read of the loser sees nothing and it
        # goes on to insert; the unique index makes that insert wait for the winner.
        loser = pool.submit(requests.get, f"{servers[0]}/postback", params=params, timeout=60)
        wait_until_a_backend_waits_for_a_lock()
        release.set()
        response = loser.result()

    assert response.status_code == 409
    assert response.json()["reason"] == expected
    model = Conversion if kind == "conversion" else EventRecord
    assert list(model.objects.values_list("adv_sub", flat=True)) == ["winner"]
    log = PostbackLog.objects.get()
    assert (log.reason, log.conversion_id, log.event_record_id) == (expected, None, None)


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_servers_write_no_token_to_their_logs(servers, server_log):
    click = ClickFactory()
    token = click.offer.advertiser.postback_token
    params = {"secure": token, "transaction_id": click.transaction_id}

    for extra in ({}, {}, {"amount": "bad"}, {"event_name": "nope"}, {"offer_id": "999999"}):
        requests.get(f"{servers[0]}/postback", params={**params, **extra}, timeout=30)
    requests.get(f"{servers[1]}/", params={"secure": token}, timeout=30)
    requests.put(f"{servers[1]}/postback", params=params, timeout=30)

    assert PostbackLog.objects.count() == 6
    assert token not in server_log.read_text()


def test_sqlite_answers_concurrent_postbacks_without_locking_errors(tmp_path):
    """The embedded default: 2 gunicorn workers on one SQLite file, 10 postbacks at once."""
    database = tmp_path / "clicktrail.sqlite3"
    url, (token, transaction_id) = sqlite_database(
        database,
        "from tests.factories import ConversionFactory, EventFactory;"
        "c = ConversionFactory(); e = EventFactory(offer=c.offer, name='purchase');"
        "print(c.offer.advertiser.postback_token, c.click.transaction_id)",
    )
    params = {"secure": token, "transaction_id": transaction_id, "event_name": "purchase"}

    with gunicorn(url, tmp_path / "sqlite-server.log") as base:
        responses = fire_at_once([base] * 10, [params] * 10)

    assert answers(responses) == {(200, "accepted"): 1, (409, "duplicate_event"): 9}
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT count(*) FROM tracking_eventrecord").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM tracking_postbacklog").fetchone() == (10,)
    assert "database is locked" not in (tmp_path / "sqlite-server.log").read_text()
