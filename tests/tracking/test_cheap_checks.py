"""The tracking path's check constraints on PostgreSQL (tracking/checks.py, migration 0013):
each big one is the same predicate in a function, so a statement that writes the table does
not prepare a tree of thousands of characters first; they still refuse what Django's form
refuses; a constraint made big again (a later migration re-adding Django's form) is caught;
and the migration goes back and forth."""

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, transaction

from tests.factories import ConversionFactory, PostbackLogFactory
from tests.markers import requires_postgresql
from tests.migrations import latest, migrate
from tracking import checks
from tracking.models import Delivery, PostbackLog

pytestmark = [pytest.mark.django_db, requires_postgresql]

#: The most a check constraint of a hot table may hold as its stored tree (``conbin``): a
#: plain comparison or a function call is 300-800 characters, an ``IN`` list of the
#: reasons ~5,400.
BUDGET = 1000
HOT_TABLES = {apps.get_model(label)._meta.db_table for label in checks.CHEAP}

TARGET = ("tracking", "0013_cheap_checks")
PREVIOUS = ("tracking", "0012_delivery_partitions")


def stored_checks() -> dict[tuple[str, str], tuple[int, str]]:
    """(table, constraint) → (size of the stored tree, definition), of the hot tables."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, length(conbin), pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'c' AND conrelid::regclass::text = ANY(%s)",
            [sorted(HOT_TABLES)],
        )
        return {(table, name): (size, text) for table, name, size, text in cursor.fetchall()}


def test_no_check_constraint_of_a_hot_table_is_big():
    big = {key: size for key, (size, _) in stored_checks().items() if size > BUDGET}

    assert big == {}, (
        "A check constraint of a tracking-path table is big again (each statement that "
        "writes the table prepares it): list it in tracking/checks.py CHEAP and make it "
        "cheap in a migration (checks.make_cheap)."
    )


def test_each_listed_constraint_calls_its_function():
    found = stored_checks()
    for label, names in checks.CHEAP.items():
        table = apps.get_model(label)._meta.db_table
        for name in names:
            assert checks.function_name(name) in found[(table, name)][1]


def test_the_functions_refuse_what_the_constraints_refused():
    log = PostbackLogFactory()
    with pytest.raises(IntegrityError, match="postbacklog_reason_valid"), transaction.atomic():
        PostbackLog.objects.filter(pk=log.pk).update(reason="bogus")
    # An accepted row must link its record (postbacklog_accepted_links_record).
    with (
        pytest.raises(IntegrityError, match="postbacklog_accepted_links_record"),
        transaction.atomic(),
    ):
        PostbackLog.objects.filter(pk=log.pk).update(reason="accepted")
    conversion = ConversionFactory()
    with pytest.raises(IntegrityError, match="conversion_status_valid"), transaction.atomic():
        type(conversion).objects.filter(pk=conversion.pk).update(status="paid")
    delivery = Delivery.objects.create(
        publisher_id=conversion.publisher_id,
        offer_id=conversion.offer_id,
        trigger="conversion",
        record_type="conversion",
        conversion=conversion,
        transaction_id=conversion.click.transaction_id,
        url="https://publisher.example/pb",
        next_attempt_at=conversion.created_at,
        record_created_at=conversion.created_at,
    )
    for change, name in [
        ({"outcome": "lost", "next_attempt_at": None}, "delivery_outcome_valid"),
        ({"record_type": "event"}, "delivery_one_record"),
        ({"outcome": "delivered"}, "delivery_due_only_when_pending"),  # still due
    ]:
        with pytest.raises(IntegrityError, match=name), transaction.atomic():
            Delivery.objects.filter(pk=delivery.pk).update(**change)
    # What the constraints allow, the functions allow.
    Delivery.objects.filter(pk=delivery.pk).update(outcome="delivered", next_attempt_at=None)


@pytest.mark.django_db(transaction=True)
def test_the_migration_goes_back_to_djangos_form_and_forth():
    try:
        migrate(PREVIOUS)
        back = stored_checks()
        assert back[("tracking_postbacklog", "postbacklog_reason_valid")][0] > BUDGET
        assert "ct_check_" not in " ".join(text for _, text in back.values())
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'ct_check_%'")
            assert cursor.fetchone()[0] == 0
    finally:
        migrate(*latest())
    assert all(size <= BUDGET for size, _ in stored_checks().values())
