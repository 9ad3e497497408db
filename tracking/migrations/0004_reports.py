"""Hourly totals of conversions and event records, kept exact by triggers (PostgreSQL only).

Measured on 10M event records (docs/benchmarks.md): even with covering indexes and
index-only scans, a 30-day report has to aggregate every record of the period (about 155k
for one offer, 3.3M for all offers: 50-120 ms and about 2 s on these machines). This table
holds one row per (offer, UTC hour, event — 0 for conversions —, currency, shard), so the
same reports read a few thousand rows.

Triggers keep it exact inside the transaction that writes, changes or deletes a record
(whatever writes it: the postback service, the admin's test postbacks, fixtures), so a
report never disagrees with the records. ``shard`` (the record's id modulo 4) spreads
concurrent postbacks for one offer, event and hour over four rows instead of making them
queue on one row lock. UTC hours (not local days) keep the table valid whatever TIME_ZONE
is; a local day is the sum of its 24 hours (zones whose offset is not whole hours, and
filters beyond offer and period, are answered from the records themselves).

On SQLite nothing is created: reports there read the records.
"""

from django.db import migrations, models

SHARDS = 4

TABLE = """
CREATE TABLE IF NOT EXISTS tracking_hourlytotal (
    offer_id integer NOT NULL,
    hour timestamp with time zone NOT NULL,
    event_id integer NOT NULL,
    currency varchar(3) NOT NULL,
    shard smallint NOT NULL,
    count bigint NOT NULL,
    revenue numeric(20, 2) NOT NULL,
    payout numeric(20, 2) NOT NULL,
    -- Reports for one offer over a period read a range of this key.
    CONSTRAINT hourlytotal_key PRIMARY KEY (offer_id, hour, event_id, currency, shard)
);
-- Reports over all offers for a period.
CREATE INDEX IF NOT EXISTS hourlytotal_hour ON tracking_hourlytotal (hour);
"""

FUNCTION = """
CREATE OR REPLACE FUNCTION tracking_hourlytotal_{name}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        UPDATE tracking_hourlytotal
        SET count = count - 1, revenue = revenue - OLD.revenue, payout = payout - OLD.payout
        WHERE offer_id = OLD.offer_id
          AND hour = date_trunc('hour', OLD.created_at, 'UTC')
          AND event_id = {old_event}
          AND currency = OLD.currency
          AND shard = OLD.id % {shards};
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO tracking_hourlytotal AS t
            (offer_id, hour, event_id, currency, shard, count, revenue, payout)
        VALUES (NEW.offer_id, date_trunc('hour', NEW.created_at, 'UTC'), {new_event},
                NEW.currency, NEW.id % {shards}, 1, NEW.revenue, NEW.payout)
        ON CONFLICT (offer_id, hour, event_id, currency, shard) DO UPDATE
        SET count = t.count + 1,
            revenue = t.revenue + EXCLUDED.revenue,
            payout = t.payout + EXCLUDED.payout;
    END IF;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION tracking_hourlytotal_{name}_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM tracking_hourlytotal WHERE {truncate_condition};
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS hourlytotal_{name} ON tracking_{name};
CREATE TRIGGER hourlytotal_{name}
AFTER INSERT OR DELETE OR UPDATE OF offer_id, created_at, currency, revenue, payout{update_of}
ON tracking_{name} FOR EACH ROW EXECUTE FUNCTION tracking_hourlytotal_{name}();

DROP TRIGGER IF EXISTS hourlytotal_{name}_truncate ON tracking_{name};
CREATE TRIGGER hourlytotal_{name}_truncate AFTER TRUNCATE ON tracking_{name}
FOR EACH STATEMENT EXECUTE FUNCTION tracking_hourlytotal_{name}_truncate();
"""

CONVERSION = FUNCTION.format(
    name="conversion",
    old_event="0",
    new_event="0",
    shards=SHARDS,
    truncate_condition="event_id = 0",
    update_of="",
)
EVENT_RECORD = FUNCTION.format(
    name="eventrecord",
    old_event="OLD.event_id",
    new_event="NEW.event_id",
    shards=SHARDS,
    truncate_condition="event_id <> 0",
    update_of=", event_id",
)

BACKFILL = f"""
DELETE FROM tracking_hourlytotal;
INSERT INTO tracking_hourlytotal
    (offer_id, hour, event_id, currency, shard, count, revenue, payout)
SELECT offer_id, date_trunc('hour', created_at, 'UTC'), 0, currency, id % {SHARDS},
       count(*), sum(revenue), sum(payout)
FROM tracking_conversion GROUP BY 1, 2, 3, 4, 5
UNION ALL
SELECT offer_id, date_trunc('hour', created_at, 'UTC'), event_id, currency, id % {SHARDS},
       count(*), sum(revenue), sum(payout)
FROM tracking_eventrecord GROUP BY 1, 2, 3, 4, 5;
"""  # noqa: S608 - constants only

DROP = """
DROP TRIGGER IF EXISTS hourlytotal_conversion ON tracking_conversion;
DROP TRIGGER IF EXISTS hourlytotal_conversion_truncate ON tracking_conversion;
DROP TRIGGER IF EXISTS hourlytotal_eventrecord ON tracking_eventrecord;
DROP TRIGGER IF EXISTS hourlytotal_eventrecord_truncate ON tracking_eventrecord;
DROP FUNCTION IF EXISTS tracking_hourlytotal_conversion();
DROP FUNCTION IF EXISTS tracking_hourlytotal_conversion_truncate();
DROP FUNCTION IF EXISTS tracking_hourlytotal_eventrecord();
DROP FUNCTION IF EXISTS tracking_hourlytotal_eventrecord_truncate();
DROP TABLE IF EXISTS tracking_hourlytotal;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # No parameters: "%" is SQL's modulo here, and several statements may run at once.
    with schema_editor.connection.cursor() as cursor:
        for sql in (TABLE, CONVERSION, EVENT_RECORD, BACKFILL):
            cursor.execute(sql)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("offers", "0001_initial"), ("tracking", "0002_roles")]

    operations = [
        # The covering indexes for one offer's records also carry the publisher, so reports
        # grouped by publisher (answered from the records) are index-only scans too.
        migrations.RemoveIndex(model_name="conversion", name="conversion_offer_created"),
        migrations.RemoveIndex(model_name="eventrecord", name="eventrecord_offer_created"),
        migrations.AddIndex(
            model_name="conversion",
            index=models.Index(
                fields=["offer", "created_at"],
                include=("publisher", "currency", "revenue", "payout"),
                name="conversion_offer_created",
            ),
        ),
        migrations.AddIndex(
            model_name="eventrecord",
            index=models.Index(
                fields=["offer", "created_at"],
                include=("event", "publisher", "currency", "revenue", "payout"),
                name="eventrecord_offer_created",
            ),
        ),
        # "Postback outcomes by reason" for one offer: an index-only scan.
        migrations.RemoveIndex(model_name="postbacklog", name="postbacklog_offer_created"),
        migrations.AddIndex(
            model_name="postbacklog",
            index=models.Index(
                fields=["offer", "created_at"],
                include=("reason",),
                name="postbacklog_offer_created",
            ),
        ),
        migrations.RunPython(create, drop),
    ]
