"""Record status (docs/postbacks.md "Approving and rejecting"): status, reason and time of last change on
conversions and event records, their history, the status postback's log reasons, and the
hourly totals split by status.

- Existing records become ``approved``, changed at their ``created_at``.
- ``tracking_hourlytotal`` (0004_reports, PostgreSQL only) gains ``status`` in its key: every
  existing row is approved, so nothing is recomputed; the triggers now move a record's count
  and money between status rows when its status changes, inside the transaction that
  changes it, so the hourly totals stay exact per status.
- Account managers get ``change`` on conversions and event records: in this project that
  permission means "change the status" (the admin form and the API change nothing else).
"""

import django.db.models.deletion
import django.db.models.functions.datetime
import django.utils.timezone
from django.conf import settings
import importlib

from django.db import migrations, models


# The 0004 trigger function with the record's status in the key of its rows.
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
          AND status = OLD.status
          AND shard = OLD.id % 4;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO tracking_hourlytotal AS t
            (offer_id, hour, event_id, currency, status, shard, count, revenue, payout)
        VALUES (NEW.offer_id, date_trunc('hour', NEW.created_at, 'UTC'), {new_event},
                NEW.currency, NEW.status, NEW.id % 4, 1, NEW.revenue, NEW.payout)
        ON CONFLICT (offer_id, hour, event_id, currency, status, shard) DO UPDATE
        SET count = t.count + 1,
            revenue = t.revenue + EXCLUDED.revenue,
            payout = t.payout + EXCLUDED.payout;
    END IF;
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS hourlytotal_{name} ON tracking_{name};
CREATE TRIGGER hourlytotal_{name}
AFTER INSERT OR DELETE OR UPDATE OF offer_id, created_at, currency, revenue, payout, status{update_of}
ON tracking_{name} FOR EACH ROW EXECUTE FUNCTION tracking_hourlytotal_{name}();
"""

ROLLUP_BY_STATUS = [
    """
    ALTER TABLE tracking_hourlytotal
        ADD COLUMN IF NOT EXISTS status varchar(10) NOT NULL DEFAULT 'approved';
    ALTER TABLE tracking_hourlytotal ALTER COLUMN status DROP DEFAULT;
    ALTER TABLE tracking_hourlytotal DROP CONSTRAINT hourlytotal_key;
    -- Reports for one offer over a period read a range of this key, any or one status.
    ALTER TABLE tracking_hourlytotal ADD CONSTRAINT hourlytotal_key
        PRIMARY KEY (offer_id, hour, event_id, currency, status, shard);
    """,
    FUNCTION.format(name="conversion", old_event="0", new_event="0", update_of=""),
    FUNCTION.format(
        name="eventrecord",
        old_event="OLD.event_id",
        new_event="NEW.event_id",
        update_of=", event_id",
    ),
]


def rollup_by_status(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for sql in ROLLUP_BY_STATUS:
            cursor.execute(sql)


def rollup_without_status(apps, schema_editor):
    """Back to 0004's table and triggers, rebuilt from the records."""
    if schema_editor.connection.vendor != "postgresql":
        return
    reports = importlib.import_module("tracking.migrations.0004_reports")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(reports.DROP)
        for sql in (reports.TABLE, reports.CONVERSION, reports.EVENT_RECORD, reports.BACKFILL):
            cursor.execute(sql)


STATUS_CHANGERS = {"Account managers": [("tracking", "change_conversion"), ("tracking", "change_eventrecord")]}


def grant_status_changes(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in STATUS_CHANGERS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *[
                Permission.objects.get(content_type__app_label=app, codename=codename)
                for app, codename in codenames
            ]
        )


def revoke_status_changes(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in STATUS_CHANGERS.items():
        for group in Group.objects.filter(name=name):
            group.permissions.remove(
                *Permission.objects.filter(
                    content_type__app_label__in=[app for app, _ in codenames],
                    codename__in=[codename for _, codename in codenames],
                )
            )


# Existing records were accepted as final: approved, changed when they were recorded.
# (The hourly totals' triggers do not fire on status_changed_at.)
CHANGED_AT_CREATED = [
    "UPDATE tracking_conversion SET status_changed_at = created_at",
    "UPDATE tracking_eventrecord SET status_changed_at = created_at",
]


class Migration(migrations.Migration):

    dependencies = [
        ('offers', '0002_definitions_version'),
        ('tracking', '0005_click_transaction_id_one_index'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='StatusChange',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('from_status', models.CharField(choices=[('approved', 'Approved'), ('pending', 'Pending'), ('rejected', 'Rejected')], max_length=10)),
                ('to_status', models.CharField(choices=[('approved', 'Approved'), ('pending', 'Pending'), ('rejected', 'Rejected')], max_length=10)),
                ('reason', models.CharField(blank=True, default='', max_length=255)),
                ('source', models.CharField(choices=[('postback', 'Postback'), ('admin', 'Admin'), ('api', 'API'), ('rule', 'Rule')], max_length=10)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['created_at', 'id'],
            },
        ),
        migrations.RemoveConstraint(
            model_name='postbacklog',
            name='postbacklog_reason_valid',
        ),
        migrations.RemoveConstraint(
            model_name='postbacklog',
            name='postbacklog_type_valid',
        ),
        migrations.RemoveConstraint(
            model_name='postbacklog',
            name='postbacklog_accepted_links_record',
        ),
        migrations.RemoveIndex(
            model_name='conversion',
            name='conversion_created',
        ),
        migrations.RemoveIndex(
            model_name='conversion',
            name='conversion_offer_created',
        ),
        migrations.RemoveIndex(
            model_name='eventrecord',
            name='eventrecord_created',
        ),
        migrations.RemoveIndex(
            model_name='eventrecord',
            name='eventrecord_offer_created',
        ),
        migrations.AddField(
            model_name='conversion',
            name='status',
            field=models.CharField(choices=[('approved', 'Approved'), ('pending', 'Pending'), ('rejected', 'Rejected')], db_default='approved', default='approved', max_length=10),
        ),
        migrations.AddField(
            model_name='conversion',
            name='status_changed_at',
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name='conversion',
            name='status_reason',
            field=models.CharField(blank=True, db_default='', default='', max_length=255),
        ),
        migrations.AddField(
            model_name='eventrecord',
            name='status',
            field=models.CharField(choices=[('approved', 'Approved'), ('pending', 'Pending'), ('rejected', 'Rejected')], db_default='approved', default='approved', max_length=10),
        ),
        migrations.AddField(
            model_name='eventrecord',
            name='status_by_rule',
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name='eventrecord',
            name='status_changed_at',
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now(), default=django.utils.timezone.now),
        ),
        migrations.AddField(
            model_name='eventrecord',
            name='status_reason',
            field=models.CharField(blank=True, db_default='', default='', max_length=255),
        ),
        migrations.AlterField(
            model_name='postbacklog',
            name='reason',
            field=models.CharField(choices=[('accepted', 'Accepted'), ('missing_parameter', 'Missing parameter'), ('invalid_parameter', 'Invalid parameter'), ('invalid_secure', 'Invalid secure token'), ('unknown_transaction', 'Unknown transaction'), ('offer_mismatch', 'Offer mismatch'), ('duplicate_conversion', 'Duplicate conversion'), ('amount_required', 'Amount required'), ('unknown_event', 'Unknown event'), ('event_mismatch', 'Event mismatch'), ('no_conversion', 'No conversion'), ('duplicate_event', 'Duplicate event'), ('conversion_rejected', 'Conversion rejected'), ('updated', 'Status updated'), ('unchanged', 'Status unchanged'), ('unknown_record', 'Unknown record'), ('ambiguous_record', 'Ambiguous record'), ('invalid_transition', 'Invalid status transition'), ('unavailable', 'Unavailable')], max_length=32),
        ),
        migrations.AlterField(
            model_name='postbacklog',
            name='type',
            field=models.CharField(blank=True, choices=[('conversion', 'Conversion'), ('event', 'Event'), ('status', 'Status')], default='', max_length=10),
        ),
        migrations.AddIndex(
            model_name='conversion',
            index=models.Index(fields=['offer', 'created_at'], include=('publisher', 'currency', 'revenue', 'payout', 'status'), name='conversion_offer_created'),
        ),
        migrations.AddIndex(
            model_name='conversion',
            index=models.Index(condition=models.Q(('status', 'approved'), _negated=True), fields=['offer', 'status', 'created_at'], name='conversion_offer_unapproved'),
        ),
        migrations.AddIndex(
            model_name='conversion',
            index=models.Index(fields=['created_at'], include=('offer', 'currency', 'revenue', 'payout', 'status'), name='conversion_created'),
        ),
        migrations.AddIndex(
            model_name='eventrecord',
            index=models.Index(fields=['offer', 'created_at'], include=('event', 'publisher', 'currency', 'revenue', 'payout', 'status'), name='eventrecord_offer_created'),
        ),
        migrations.AddIndex(
            model_name='eventrecord',
            index=models.Index(condition=models.Q(('status', 'approved'), _negated=True), fields=['offer', 'status', 'created_at'], name='eventrecord_offer_unapproved'),
        ),
        migrations.AddIndex(
            model_name='eventrecord',
            index=models.Index(fields=['created_at'], include=('offer', 'event', 'currency', 'revenue', 'payout', 'status'), name='eventrecord_created'),
        ),
        migrations.AddConstraint(
            model_name='conversion',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['approved', 'pending', 'rejected'])), name='conversion_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='eventrecord',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['approved', 'pending', 'rejected'])), name='eventrecord_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='postbacklog',
            constraint=models.CheckConstraint(condition=models.Q(('reason__in', ['accepted', 'missing_parameter', 'invalid_parameter', 'invalid_secure', 'unknown_transaction', 'offer_mismatch', 'duplicate_conversion', 'amount_required', 'unknown_event', 'event_mismatch', 'no_conversion', 'duplicate_event', 'conversion_rejected', 'updated', 'unchanged', 'unknown_record', 'ambiguous_record', 'invalid_transition', 'unavailable'])), name='postbacklog_reason_valid'),
        ),
        migrations.AddConstraint(
            model_name='postbacklog',
            constraint=models.CheckConstraint(condition=models.Q(('type__in', ['', 'conversion', 'event', 'status'])), name='postbacklog_type_valid'),
        ),
        migrations.AddConstraint(
            model_name='postbacklog',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('reason', 'accepted'), models.Q(('conversion__isnull', False), ('event_record__isnull', False), _connector='OR')), models.Q(models.Q(('reason', 'accepted'), _negated=True), ('conversion__isnull', True), ('event_record__isnull', True)), models.Q(('type', 'status'), models.Q(('reason', 'accepted'), _negated=True)), _connector='OR'), name='postbacklog_accepted_links_record'),
        ),
        migrations.AddField(
            model_name='statuschange',
            name='conversion',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='status_changes', to='tracking.conversion'),
        ),
        migrations.AddField(
            model_name='statuschange',
            name='event_record',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='status_changes', to='tracking.eventrecord'),
        ),
        migrations.AddField(
            model_name='statuschange',
            name='user',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='statuschange',
            index=models.Index(condition=models.Q(('conversion__isnull', False)), fields=['conversion', 'id'], name='statuschange_conversion'),
        ),
        migrations.AddIndex(
            model_name='statuschange',
            index=models.Index(condition=models.Q(('event_record__isnull', False)), fields=['event_record', 'id'], name='statuschange_event_record'),
        ),
        migrations.AddConstraint(
            model_name='statuschange',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('conversion__isnull', False), ('event_record__isnull', True)), models.Q(('conversion__isnull', True), ('event_record__isnull', False)), _connector='OR'), name='statuschange_one_record'),
        ),
        migrations.AddConstraint(
            model_name='statuschange',
            constraint=models.CheckConstraint(condition=models.Q(('from_status__in', ['approved', 'pending', 'rejected']), ('to_status__in', ['approved', 'pending', 'rejected'])), name='statuschange_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='statuschange',
            constraint=models.CheckConstraint(condition=models.Q(('from_status', models.F('to_status')), _negated=True), name='statuschange_is_a_change'),
        ),
        migrations.AddConstraint(
            model_name='statuschange',
            constraint=models.CheckConstraint(condition=models.Q(('source__in', ['postback', 'admin', 'api', 'rule'])), name='statuschange_source_valid'),
        ),
        migrations.RunSQL(CHANGED_AT_CREATED, migrations.RunSQL.noop),
        migrations.RunPython(rollup_by_status, rollup_without_status),
        migrations.RunPython(grant_status_changes, revoke_status_changes),
    ]
