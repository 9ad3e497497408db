"""Offer and advertiser rules (docs/postbacks.md "Offer rules"): caps, windows, early events,
IP allow-lists.

Offers that exist keep no conversion window (their clicks' conversions must keep counting);
new offers get 90 days. Caps are definitions: the definitions version trigger covers them."""

import django.core.validators
import django.db.models.deletion
import offers.allow_list
from decimal import Decimal
from django.db import migrations, models

TRIGGER = """
CREATE OR REPLACE TRIGGER offers_offercap_definitions_changed
AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON offers_offercap
FOR EACH STATEMENT EXECUTE FUNCTION offers_definitions_changed();
"""
DROP = "DROP TRIGGER IF EXISTS offers_offercap_definitions_changed ON offers_offercap;"


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRIGGER)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("offers", "0002_definitions_version"),
    ]

    operations = [
        migrations.CreateModel(
            name="CapCounter",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("period_start", models.DateField()),
                (
                    "used",
                    models.DecimalField(decimal_places=2, default=Decimal("0"), max_digits=16),
                ),
            ],
        ),
        migrations.CreateModel(
            name="OfferCap",
            fields=[
                (
                    "id",
                    models.AutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "metric",
                    models.CharField(
                        choices=[
                            ("conversions", "Conversions"),
                            ("payout", "Payout"),
                            ("revenue", "Revenue"),
                        ],
                        max_length=12,
                    ),
                ),
                (
                    "period",
                    models.CharField(
                        choices=[
                            ("day", "Day"),
                            ("week", "Week (from Monday)"),
                            ("month", "Month"),
                            ("total", "Total"),
                        ],
                        max_length=5,
                    ),
                ),
                (
                    "limit",
                    models.DecimalField(
                        decimal_places=2,
                        help_text="Conversions (a whole number) or an amount in the offer's currency.",
                        max_digits=14,
                        validators=[
                            django.core.validators.MinValueValidator(
                                Decimal("0.01"), message="A cap's limit is above 0."
                            )
                        ],
                    ),
                ),
                (
                    "mode",
                    models.CharField(
                        choices=[
                            ("soft", "Soft (record as pending)"),
                            ("hard", "Hard (record as rejected)"),
                        ],
                        default="hard",
                        max_length=4,
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
            ],
            options={
                "ordering": ["offer_id", "id"],
            },
        ),
        migrations.AddField(
            model_name="advertiser",
            name="allowed_ips",
            field=models.JSONField(
                db_default=[],
                blank=True,
                default=list,
                help_text="Addresses and CIDR ranges (IPv4 or IPv6) the advertiser's postbacks may come from, one per line. Empty: any address.",
                validators=[offers.allow_list.validate_allow_list],
                verbose_name="allowed IPs",
            ),
        ),
        migrations.AddField(
            model_name="event",
            name="wait_for_conversion_minutes",
            field=models.PositiveIntegerField(
                db_default=0,
                default=0,
                help_text="When this event arrives before its click's conversion, keep it this many minutes (0–1440) and record it when the conversion comes. 0: refuse it (no_conversion).",
                validators=[django.core.validators.MaxValueValidator(1440)],
                verbose_name="wait for conversion (minutes)",
            ),
        ),
        migrations.AddField(
            model_name="offer",
            name="conversion_window_days",
            # Existing offers: no limit (NULL); the default of 90 is for new offers (below).
            field=models.PositiveIntegerField(blank=True, default=None, null=True),
        ),
        migrations.AlterField(
            model_name="offer",
            name="conversion_window_days",
            field=models.PositiveIntegerField(
                blank=True,
                default=90,
                help_text="A conversion for a click older than this many days is refused (click_expired). Empty: no limit.",
                null=True,
                validators=[django.core.validators.MinValueValidator(1)],
            ),
        ),
        migrations.AddField(
            model_name="offer",
            name="fallback_url",
            field=models.URLField(
                db_default="",
                blank=True,
                default="",
                help_text="Where clicks go while a hard cap of the offer (or of the click's publisher) is full. Same macros as the destination URL. Empty: the destination URL.",
                max_length=2000,
                verbose_name="fallback URL",
            ),
        ),
        migrations.AddField(
            model_name="offer",
            name="min_conversion_seconds",
            field=models.PositiveIntegerField(
                db_default=0,
                default=0,
                help_text="A conversion sooner than this many seconds after its click is recorded rejected (too_fast). 0: off.",
            ),
        ),
        migrations.AddConstraint(
            model_name="event",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("wait_for_conversion_minutes__gte", 0),
                    ("wait_for_conversion_minutes__lte", 1440),
                ),
                name="event_wait_for_conversion_0_1440",
                violation_error_message="Wait for conversion is 0 to 1440 minutes.",
            ),
        ),
        migrations.AddConstraint(
            model_name="offer",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("conversion_window_days__isnull", True),
                    ("conversion_window_days__gte", 1),
                    _connector="OR",
                ),
                name="offer_conversion_window_days_gte_1",
                violation_error_message="The conversion window is at least 1 day (or empty).",
            ),
        ),
        migrations.AddConstraint(
            model_name="offer",
            constraint=models.CheckConstraint(
                condition=models.Q(("min_conversion_seconds__gte", 0)),
                name="offer_min_conversion_seconds_gte_0",
            ),
        ),
        migrations.AddField(
            model_name="offercap",
            name="offer",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="caps", to="offers.offer"
            ),
        ),
        migrations.AddField(
            model_name="offercap",
            name="publisher",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="caps",
                to="offers.publisher",
            ),
        ),
        migrations.AddField(
            model_name="capcounter",
            name="cap",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="counters",
                to="offers.offercap",
            ),
        ),
        migrations.AddConstraint(
            model_name="offercap",
            constraint=models.CheckConstraint(
                condition=models.Q(("metric__in", ["conversions", "payout", "revenue"])),
                name="offercap_metric_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="offercap",
            constraint=models.CheckConstraint(
                condition=models.Q(("period__in", ["day", "week", "month", "total"])),
                name="offercap_period_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="offercap",
            constraint=models.CheckConstraint(
                condition=models.Q(("mode__in", ["soft", "hard"])), name="offercap_mode_valid"
            ),
        ),
        migrations.AddConstraint(
            model_name="offercap",
            constraint=models.CheckConstraint(
                condition=models.Q(("limit__gt", 0)), name="offercap_limit_gt_0"
            ),
        ),
        migrations.AddConstraint(
            model_name="capcounter",
            constraint=models.UniqueConstraint(
                fields=("cap", "period_start"), name="capcounter_one_per_period"
            ),
        ),
        migrations.AddConstraint(
            model_name="capcounter",
            constraint=models.CheckConstraint(
                condition=models.Q(("used__gte", 0)), name="capcounter_used_gte_0"
            ),
        ),
        migrations.RunPython(create_trigger, drop_trigger),
    ]
