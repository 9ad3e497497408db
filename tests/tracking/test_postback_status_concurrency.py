"""Status changes under real concurrency: 20 status postbacks released at once at two
gunicorn servers (2 workers × 4 threads each) sharing the PostgreSQL test database, and a
handful at one server on SQLite. Changes of one record serialise: no 5xx, and each record's
history is one unbroken chain (every entry changes from the status the one before left),
ending at the status the record has."""

import sqlite3

import pytest

from tests.factories import ConversionFactory, EventFactory, EventRecordFactory
from tests.markers import requires_postgresql
from tests.servers import fire_at_once, gunicorn, sqlite_database
from tracking.models import Conversion, EventRecord, PostbackLog, StatusChange

REQUESTS = 20


def assert_unbroken(first_status: str, entries: list[tuple[str, str]], final: str) -> None:
    """``entries`` (from, to), oldest first, chain from ``first_status`` to ``final``."""
    status = first_status
    for from_status, to_status in entries:
        assert from_status == status, entries
        assert to_status != from_status
        status = to_status
    assert status == final, entries


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_twenty_status_postbacks_at_once_serialise_on_each_record(servers):
    conversion = ConversionFactory(status="pending")
    event = EventFactory(offer=conversion.offer, allow_multiple=True)
    records = [
        EventRecordFactory(conversion=conversion, event=event, adv_sub=f"o-{n}", status="pending")
        for n in range(3)
    ]
    base = {
        "secure": conversion.offer.advertiser.postback_token,
        "transaction_id": conversion.click.transaction_id,
    }
    # The conversion approved and rejected at once, and its events changed meanwhile: the
    # cascade and the events' own changes cross on the same rows.
    params = []
    for n in range(REQUESTS):
        status = "approved" if n % 2 else "rejected"
        if n % 4 < 2:
            params.append(base | {"status": status, "reason": f"r{n}"})
        else:
            params.append(
                base
                | {
                    "status": status,
                    "event_id": str(event.pk),
                    "adv_sub": f"o-{n % 3}",
                    "reason": f"e{n}",
                }
            )
    urls = [servers[n % len(servers)] for n in range(REQUESTS)]

    responses = fire_at_once(urls, params, path="/postback/status")

    codes = [r.status_code for r in responses]
    assert all(code < 500 for code in codes), [r.text for r in responses if r.status_code >= 500]
    reasons = {r.json()["reason"] for r in responses}
    assert reasons <= {"updated", "unchanged", "invalid_transition"}
    assert "updated" in reasons
    assert PostbackLog.objects.filter(type="status").count() == REQUESTS

    conversion.refresh_from_db()
    history = list(StatusChange.objects.filter(conversion=conversion).order_by("id"))
    assert_unbroken("pending", [(h.from_status, h.to_status) for h in history], conversion.status)
    # Once rejected, an advertiser cannot reinstate it: at most pending → approved → rejected.
    assert len(history) <= 2
    for record in records:
        record.refresh_from_db()
        entries = StatusChange.objects.filter(event_record=record).order_by("id")
        assert_unbroken("pending", [(h.from_status, h.to_status) for h in entries], record.status)
    if conversion.status == "rejected":
        assert all(r.status == "rejected" for r in records)
    # What each "updated" answer said it changed from is in the history, in order.
    updated = [r.json() for r in responses if r.json()["reason"] == "updated"]
    changes = {
        (
            h.conversion_id and "conversion",
            h.conversion_id or h.event_record_id,
            h.from_status,
            h.to_status,
        )
        for h in StatusChange.objects.exclude(source="rule")
    }
    for body in updated:
        assert (
            "conversion" if body["type"] == "conversion" else None,
            body["id"],
            body["previous_record_status"],
            body["record_status"],
        ) in changes
    assert len(updated) == StatusChange.objects.exclude(source="rule").count()


def test_sqlite_serialises_concurrent_status_postbacks(tmp_path):
    """The embedded default: 2 gunicorn workers on one SQLite file, 8 status postbacks at
    once on one pending conversion."""
    database = tmp_path / "clicktrail.sqlite3"
    url, (token, transaction_id) = sqlite_database(
        database,
        "from tests.factories import ConversionFactory, EventRecordFactory;"
        "c = ConversionFactory(status='pending'); EventRecordFactory(conversion=c);"
        "print(c.offer.advertiser.postback_token, c.click.transaction_id)",
    )
    params = [
        {
            "secure": token,
            "transaction_id": transaction_id,
            "status": "approved" if n % 2 else "rejected",
        }
        for n in range(8)
    ]

    with gunicorn(url, tmp_path / "sqlite-server.log") as base:
        responses = fire_at_once([base] * 8, params, path="/postback/status")

    assert all(r.status_code < 500 for r in responses), [r.text for r in responses]
    with sqlite3.connect(database) as db:
        (status,) = db.execute("SELECT status FROM tracking_conversion").fetchone()
        entries = db.execute(
            "SELECT from_status, to_status FROM tracking_statuschange "
            "WHERE conversion_id IS NOT NULL ORDER BY id"
        ).fetchall()
        assert db.execute("SELECT count(*) FROM tracking_postbacklog").fetchone() == (8,)
    assert_unbroken("pending", entries, status)
    assert "database is locked" not in (tmp_path / "sqlite-server.log").read_text()


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_events_accepted_while_their_conversion_is_rejected_never_stay_approved(servers):
    """Accepting an event locks its conversion first: 19 event postbacks and the
    conversion's rejection released at once. Each event is either recorded before the
    rejection (and follows it) or refused after it (conversion_rejected): none is left
    approved on a rejected conversion."""
    conversion = ConversionFactory()
    event = EventFactory(offer=conversion.offer, allow_multiple=True)
    base = {
        "secure": conversion.offer.advertiser.postback_token,
        "transaction_id": conversion.click.transaction_id,
    }
    params = [base | {"event_id": str(event.pk), "adv_sub": f"o-{n}"} for n in range(REQUESTS)]
    paths = ["/postback"] * REQUESTS
    middle = REQUESTS // 2
    params[middle] = base | {"status": "rejected", "reason": "fraud"}
    paths[middle] = "/postback/status"
    urls = [servers[n % len(servers)] for n in range(REQUESTS)]

    responses = fire_at_once(urls, params, paths=paths)

    assert all(r.status_code < 500 for r in responses), [r.text for r in responses]
    assert responses[middle].json()["reason"] == "updated"
    events = [r for n, r in enumerate(responses) if n != middle]
    assert {r.json()["reason"] for r in events} <= {"accepted", "conversion_rejected"}, (
        [r.json() for r in events if r.json()["reason"] not in ("accepted", "conversion_rejected")],
        list(EventRecord.objects.values_list("id", "adv_sub", "status")),
        list(PostbackLog.objects.values_list("id", "reason", "params")),
    )
    conversion.refresh_from_db()
    assert conversion.status == "rejected"
    records = EventRecord.objects.filter(conversion=conversion)
    accepted = sum(r.json()["reason"] == "accepted" for r in events)
    assert records.count() == accepted
    assert set(records.values_list("status", flat=True)) <= {"rejected"}
    followed = StatusChange.objects.filter(source="rule", event_record__in=records).count()
    assert followed == accepted


@pytest.mark.django_db(transaction=True)
@requires_postgresql
def test_a_change_aborted_to_break_a_deadlock_is_run_again():
    """Another transaction holds the hourly-totals row the change needs second and then asks
    for the one it took first: PostgreSQL aborts the change (it waited longest), and the
    service runs it again, whole, once the other transaction is done."""
    import threading
    import time

    import psycopg
    from django.db import connection

    from tests.servers import postgres_url
    from tracking.status import record_status_change

    # Recorded approved, then held: both of its hourly-totals rows (approved, now empty, and
    # pending) exist, so the change will need to lock rows another transaction can hold.
    conversion = ConversionFactory()
    Conversion.objects.filter(pk=conversion.pk).update(status="pending")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, count FROM tracking_hourlytotal WHERE offer_id = %s ORDER BY 1",
            [conversion.offer_id],
        )
        assert cursor.fetchall() == [("approved", 0), ("pending", 1)]
    other = psycopg.connect(postgres_url())
    other.execute("SET deadlock_timeout = '10s'")
    # Take the "approved" rows first (the change's second), as a crossing change would.
    other.execute(
        "SELECT 1 FROM tracking_hourlytotal WHERE offer_id = %s AND status = 'approved' FOR UPDATE",
        [conversion.offer_id],
    )
    outcome = {}

    def change() -> None:
        try:
            outcome["result"] = record_status_change(
                record=conversion, status="approved", source="api"
            )
        except Exception as exc:  # noqa: BLE001 - reported below
            outcome["error"] = exc
        finally:
            connection.close()

    worker = threading.Thread(target=change)
    worker.start()
    time.sleep(0.5)  # the change now waits for the "approved" rows, holding "pending"
    other.execute(
        "SELECT 1 FROM tracking_hourlytotal WHERE offer_id = %s AND status = 'pending' FOR UPDATE",
        [conversion.offer_id],
    )  # a cycle: PostgreSQL aborts the change after its 1 s deadlock_timeout
    other.commit()
    other.close()
    worker.join(timeout=30)

    assert "error" not in outcome, outcome
    assert outcome["result"].outcome == "updated"
    conversion.refresh_from_db()
    assert conversion.status == "approved"
    assert StatusChange.objects.filter(conversion=conversion).count() == 1
