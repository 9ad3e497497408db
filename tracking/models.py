"""What the tracking endpoints record: clicks, conversions, event records, the postback log.

These are the hit tables: big, append-only, read by reports. Every index is named and says
which query it serves. Money is copied onto each record when it is accepted, so editing an
offer or event later never rewrites history.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from offers.models import CURRENCY_REGEX, Advertiser, Event, Offer, Publisher


class Click(models.Model):
    id = models.BigAutoField(primary_key=True)
    # Unique by the named constraint in Meta.
    transaction_id = models.CharField(max_length=64)
    # Foreign keys here carry db_index=False where a named composite index below leads
    # with the same column: one index fewer on every insert of a hit table.
    offer = models.ForeignKey(
        Offer, on_delete=models.PROTECT, related_name="clicks", db_index=False
    )
    publisher = models.ForeignKey(
        Publisher, on_delete=models.PROTECT, related_name="clicks", db_index=False
    )
    aff_sub = models.CharField(max_length=255, blank=True, default="")
    aff_sub2 = models.CharField(max_length=255, blank=True, default="")
    aff_sub3 = models.CharField(max_length=255, blank=True, default="")
    aff_sub4 = models.CharField(max_length=255, blank=True, default="")
    aff_sub5 = models.CharField(max_length=255, blank=True, default="")
    source = models.CharField(max_length=255, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    referrer = models.CharField(max_length=2048, blank=True, default="")
    # Made from the admin's Test postback tab, so account managers can tell them apart.
    is_test = models.BooleanField(default=False)
    # Made while a hard cap of its offer (or publisher) was full: sent to the offer's
    # fallback URL (docs/postbacks.md "Capped clicks").
    # (A database default too: bulk loads and other writers that name columns need not.)
    capped = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Click lists and click counts per offer for a period.
            models.Index(fields=["offer", "created_at"], name="click_offer_created"),
            # Click lists filtered by publisher for a period.
            models.Index(fields=["publisher", "created_at"], name="click_publisher_created"),
            # Unfiltered click lists, newest first, and date-range filters.
            models.Index(fields=["created_at"], name="click_created"),
        ]
        constraints = [
            # One click per transaction_id; its index is how every postback finds its click.
            # A constraint rather than unique=True, for which Django's PostgreSQL backend adds
            # a second index (varchar_pattern_ops, for LIKE 'prefix%') that nothing here uses
            # (transaction_ids are only ever matched exactly) and every click would pay for:
            # a random insert into an index as big as this one (76 MB at 1M clicks).
            models.UniqueConstraint(fields=["transaction_id"], name="click_transaction_id_unique"),
            models.CheckConstraint(
                condition=Q(transaction_id__regex=r"^[A-Za-z0-9_-]{16,64}$"),
                name="click_transaction_id_format",
            ),
        ]

    def __str__(self) -> str:
        return self.transaction_id


class RecordStatus(models.TextChoices):
    """A conversion's or event record's status (docs/postbacks.md "Approving and rejecting")."""

    APPROVED = "approved", "Approved"
    PENDING = "pending", "Pending"
    REJECTED = "rejected", "Rejected"


class MoneyRecord(models.Model):
    """What conversions and event records share: where they came from and what they earned."""

    id = models.BigAutoField(primary_key=True)
    click = models.ForeignKey(Click, on_delete=models.PROTECT, db_index=False)
    # Copied from the click so reports filter and group without joining the click table.
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, db_index=False)
    publisher = models.ForeignKey(Publisher, on_delete=models.PROTECT, db_index=False)
    # 14 digits, not 12: a CPS rule of 100 % on the largest allowed sale amount
    # (9999999999.9999) earns 10000000000.00, one digit more than a definition's value.
    revenue = models.DecimalField(max_digits=14, decimal_places=2)
    payout = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    # The sale amount the advertiser sent (CPS), as sent: up to 10 digits and 4 decimals.
    amount = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    adv_sub = models.CharField(max_length=255, blank=True, default="")
    adv_sub2 = models.CharField(max_length=255, blank=True, default="")
    adv_sub3 = models.CharField(max_length=255, blank=True, default="")
    adv_sub4 = models.CharField(max_length=255, blank=True, default="")
    adv_sub5 = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    # Whether the record counts (docs/postbacks.md "Approving and rejecting"). The money above never
    # changes with it: what counts is decided when reading. Changed only through
    # tracking.status, which writes a StatusChange row in the same transaction.
    # Database defaults too, so rows written by hand-made SQL (bulk loads, the bench) are
    # recorded approved as every postback is unless a rule says otherwise.
    status = models.CharField(
        max_length=10,
        choices=RecordStatus.choices,
        default=RecordStatus.APPROVED,
        db_default=RecordStatus.APPROVED.value,
    )
    # A platform code (cap_reached, conversion_rejected, …) or the advertiser's or manager's
    # text; "" when none.
    status_reason = models.CharField(max_length=255, blank=True, default="", db_default="")
    # When the status was last set (the record's created_at until it first changes).
    status_changed_at = models.DateTimeField(default=timezone.now, db_default=Now())

    class Meta:
        abstract = True

    @property
    def profit(self) -> Decimal:
        return self.revenue - self.payout


def money_record_constraints(prefix: str) -> list[models.CheckConstraint]:
    return [
        models.CheckConstraint(
            condition=Q(revenue__gte=Decimal("0")), name=f"{prefix}_revenue_gte_0"
        ),
        models.CheckConstraint(
            condition=Q(payout__gte=Decimal("0")), name=f"{prefix}_payout_gte_0"
        ),
        models.CheckConstraint(
            condition=Q(amount__isnull=True) | Q(amount__gte=Decimal("0")),
            name=f"{prefix}_amount_gte_0",
        ),
        models.CheckConstraint(
            condition=Q(currency__regex=CURRENCY_REGEX), name=f"{prefix}_currency_iso"
        ),
        models.CheckConstraint(
            condition=Q(status__in=RecordStatus.values), name=f"{prefix}_status_valid"
        ),
    ]


class Conversion(MoneyRecord):
    """The first accepted postback for a click."""

    # Indexed by the named constraint and indexes in Meta.
    click = models.ForeignKey(
        Click, on_delete=models.PROTECT, related_name="conversions", db_index=False
    )
    offer = models.ForeignKey(
        Offer, on_delete=models.PROTECT, related_name="conversions", db_index=False
    )
    publisher = models.ForeignKey(
        Publisher, on_delete=models.PROTECT, related_name="conversions", db_index=False
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Exactly once: two concurrent conversion postbacks for one click cannot both
            # insert; the loser gets an IntegrityError and answers duplicate_conversion.
            models.UniqueConstraint(fields=["click"], name="conversion_one_per_click"),
            *money_record_constraints("conversion"),
        ]
        indexes = [
            # Reports and lists for one offer over a period (with a status: approved by
            # default); the included columns let the daily report (also by publisher and by
            # status) be answered by an index-only scan on PostgreSQL.
            models.Index(
                fields=["offer", "created_at"],
                include=["publisher", "currency", "revenue", "payout", "status"],
                name="conversion_offer_created",
            ),
            # "Pending (or rejected) records of this offer in this period": the few records
            # that are not approved, found without reading the approved ones. Partial, so an
            # approved record (nearly every postback) never writes to it.
            models.Index(
                fields=["offer", "status", "created_at"],
                condition=~Q(status="approved"),
                name="conversion_offer_unapproved",
            ),
            # Lists and reports filtered by publisher over a period.
            models.Index(fields=["publisher", "created_at"], name="conversion_publisher_created"),
            # Unfiltered lists newest first, date-range filters, all-offer reports.
            models.Index(
                fields=["created_at"],
                include=["offer", "currency", "revenue", "payout", "status"],
                name="conversion_created",
            ),
            # Search by the advertiser's order reference.
            models.Index(fields=["adv_sub"], name="conversion_adv_sub"),
        ]

    def __str__(self) -> str:
        return f"Conversion #{self.pk}"


class EventRecord(MoneyRecord):
    """One accepted event postback."""

    # Indexed by the named constraints and indexes in Meta.
    click = models.ForeignKey(
        Click, on_delete=models.PROTECT, related_name="event_records", db_index=False
    )
    offer = models.ForeignKey(
        Offer, on_delete=models.PROTECT, related_name="event_records", db_index=False
    )
    publisher = models.ForeignKey(
        Publisher, on_delete=models.PROTECT, related_name="event_records", db_index=False
    )
    # PROTECT: an event that has records cannot be deleted (the API answers 409).
    event = models.ForeignKey(
        Event, on_delete=models.PROTECT, related_name="records", db_index=False
    )
    # Conversions are never deleted, so nothing looks records up by conversion in bulk.
    conversion = models.ForeignKey(
        Conversion, on_delete=models.PROTECT, related_name="event_records", db_index=False
    )
    # The event's setting when this record was accepted; the dedupe constraints below
    # depend on it, so changing the event later does not reinterpret old records.
    allow_multiple = models.BooleanField(default=False)
    # The status was set by the rule "events follow their conversion" (or recorded pending
    # because the conversion was): approving the conversion approves exactly these. A flag,
    # not the reason text, so an advertiser's reason can never pass for the rule's.
    status_by_rule = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Exactly once for a single-fire event: one record per (event, click).
            models.UniqueConstraint(
                fields=["event", "click"],
                condition=Q(allow_multiple=False),
                name="eventrecord_single_fire_once_per_click",
            ),
            # A multiple event deduplicates by the advertiser's reference when one is sent.
            models.UniqueConstraint(
                fields=["event", "click", "adv_sub"],
                condition=Q(allow_multiple=True) & ~Q(adv_sub=""),
                name="eventrecord_multiple_once_per_adv_sub",
            ),
            *money_record_constraints("eventrecord"),
        ]
        indexes = [
            # The postback path's "does this click already have a record of this event?"
            models.Index(fields=["click", "event"], name="eventrecord_click_event"),
            # Reports for one offer over a period, grouped by day, event or publisher: the
            # included columns make it an index-only scan on PostgreSQL (docs/benchmarks.md).
            models.Index(
                fields=["offer", "created_at"],
                include=["event", "publisher", "currency", "revenue", "payout", "status"],
                name="eventrecord_offer_created",
            ),
            # Not-approved records of an offer in a period (see conversion_offer_unapproved).
            models.Index(
                fields=["offer", "status", "created_at"],
                condition=~Q(status="approved"),
                name="eventrecord_offer_unapproved",
            ),
            # Lists filtered by event over a period.
            models.Index(fields=["event", "created_at"], name="eventrecord_event_created"),
            # Lists and reports filtered by publisher over a period.
            models.Index(fields=["publisher", "created_at"], name="eventrecord_publisher_created"),
            # Unfiltered lists newest first, date-range filters, all-offer reports.
            models.Index(
                fields=["created_at"],
                include=["offer", "event", "currency", "revenue", "payout", "status"],
                name="eventrecord_created",
            ),
            # Search by the advertiser's order reference.
            models.Index(fields=["adv_sub"], name="eventrecord_adv_sub"),
        ]

    def __str__(self) -> str:
        return f"Event record #{self.pk}"


class Reason(models.TextChoices):
    """The outcome of a postback (SPEC "Postback endpoint")."""

    ACCEPTED = "accepted", "Accepted"
    MISSING_PARAMETER = "missing_parameter", "Missing parameter"
    INVALID_PARAMETER = "invalid_parameter", "Invalid parameter"
    INVALID_SECURE = "invalid_secure", "Invalid secure token"
    UNKNOWN_TRANSACTION = "unknown_transaction", "Unknown transaction"
    OFFER_MISMATCH = "offer_mismatch", "Offer mismatch"
    DUPLICATE_CONVERSION = "duplicate_conversion", "Duplicate conversion"
    AMOUNT_REQUIRED = "amount_required", "Amount required"
    UNKNOWN_EVENT = "unknown_event", "Unknown event"
    EVENT_MISMATCH = "event_mismatch", "Event mismatch"
    NO_CONVERSION = "no_conversion", "No conversion"
    DUPLICATE_EVENT = "duplicate_event", "Duplicate event"
    # docs/postbacks.md "Offer rules".
    IP_NOT_ALLOWED = "ip_not_allowed", "IP not allowed"
    CLICK_EXPIRED = "click_expired", "Click expired"
    WAITING_FOR_CONVERSION = "waiting_for_conversion", "Waiting for conversion"
    # Events and their conversion's status (docs/postbacks.md, check 10a).
    CONVERSION_REJECTED = "conversion_rejected", "Conversion rejected"
    # The status postback's outcomes (docs/postbacks.md "Approving and rejecting").
    UPDATED = "updated", "Status updated"
    UNCHANGED = "unchanged", "Status unchanged"
    UNKNOWN_RECORD = "unknown_record", "Unknown record"
    AMBIGUOUS_RECORD = "ambiguous_record", "Ambiguous record"
    INVALID_TRANSITION = "invalid_transition", "Invalid status transition"
    UNAVAILABLE = "unavailable", "Unavailable"
    REQUEST_TOO_LARGE = "request_too_large", "Request too large"


LOG_LINK = {
    "null": True,
    "blank": True,
    "on_delete": models.DO_NOTHING,
    "db_constraint": False,
    "db_index": False,
}


class PostbackLog(models.Model):
    """One row for every postback request received, accepted or not.

    On PostgreSQL the table is partitioned by UTC month of ``created_at``
    (tracking/partitions.py, migration 0007): its primary key there is ``(id, created_at)``,
    while the ORM keeps ``id`` (unique all the same: one identity sequence gives them), and
    retention drops whole months (tracking/retention.py).
    """

    Reason = Reason

    class Type(models.TextChoices):
        CONVERSION = "conversion", "Conversion"
        EVENT = "event", "Event"
        STATUS = "status", "Status"

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now)
    method = models.CharField(max_length=10)
    # Every parameter received, the secure value masked. Never the whole token.
    params = models.JSONField(default=dict)
    secure_masked = models.CharField(max_length=32, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    status_code = models.PositiveSmallIntegerField()
    reason = models.CharField(max_length=32, choices=Reason.choices)
    message = models.CharField(max_length=500, blank=True, default="")
    type = models.CharField(max_length=10, choices=Type.choices, blank=True, default="")
    transaction_id = models.CharField(max_length=255, blank=True, default="")
    # What the request resolved to, as far as it got (null where it did not get that far).
    # The log is an audit trail: it keeps these IDs even if a definition is deleted later,
    # so the links carry no database constraint (deleting an event must not rewrite or
    # scan millions of log rows) and no index beyond the named ones in Meta.
    advertiser = models.ForeignKey(Advertiser, **LOG_LINK, related_name="+")
    offer = models.ForeignKey(Offer, **LOG_LINK, related_name="+")
    event = models.ForeignKey(Event, **LOG_LINK, related_name="+")
    click = models.ForeignKey(Click, **LOG_LINK, related_name="postback_logs")
    # The record this request created (only when accepted); for a status postback, the
    # record it found (whatever the outcome).
    conversion = models.ForeignKey(Conversion, **LOG_LINK, related_name="+")
    event_record = models.ForeignKey(EventRecord, **LOG_LINK, related_name="+")
    # A kept early event (reason waiting_for_conversion) keeps its arrival and its 202; these
    # say how it ended: recorded (200 accepted) or refused (its reason), and when.
    decided_at = models.DateTimeField(null=True, blank=True)
    final_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    final_reason = models.CharField(
        max_length=32, blank=True, default="", db_default="", choices=Reason.choices
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(reason__in=Reason.values),
                name="postbacklog_reason_valid",
            ),
            models.CheckConstraint(
                condition=Q(type__in=["", "conversion", "event", "status"]),
                name="postbacklog_type_valid",
            ),
            # An accepted row always links the record it created; a rejected one never does.
            # A status postback links the record it found, whatever it answered, and is
            # never "accepted" (its outcomes are updated, unchanged or a refusal).
            models.CheckConstraint(
                condition=(
                    Q(reason="accepted")
                    & (Q(conversion__isnull=False) | Q(event_record__isnull=False))
                )
                | (~Q(reason="accepted") & Q(conversion__isnull=True, event_record__isnull=True))
                # A kept early event links the record it became when it was recorded later.
                | Q(
                    reason="waiting_for_conversion",
                    final_reason="accepted",
                    conversion__isnull=True,
                    event_record__isnull=False,
                )
                | (Q(type="status") & ~Q(reason="accepted")),
                name="postbacklog_accepted_links_record",
            ),
            models.CheckConstraint(
                condition=Q(final_reason="") | Q(final_reason__in=Reason.values),
                name="postbacklog_final_reason_valid",
            ),
        ]
        indexes = [
            # The log list newest first, and date-range filters.
            models.Index(fields=["created_at"], name="postbacklog_created"),
            # "Which postbacks were rejected and why" for a period; outcome charts.
            models.Index(fields=["reason", "created_at"], name="postbacklog_reason_created"),
            # Debugging one click's postbacks by transaction_id.
            models.Index(fields=["transaction_id"], name="postbacklog_transaction_id"),
            # Log filtered by offer for a period; with the reason included, the reports'
            # "outcomes by reason" for one offer is an index-only scan.
            models.Index(
                fields=["offer", "created_at"],
                include=["reason"],
                name="postbacklog_offer_created",
            ),
        ]

    def __str__(self) -> str:
        return f"Postback #{self.pk} {self.reason}"


class StatusChange(models.Model):
    """One change of a conversion's or event record's status: the status history.

    Written by tracking.status in the transaction that changes the record, with the status
    the record had under its lock as ``from_status``, so the history never shows a change
    from a status the record no longer had. A record's first status is not an entry.
    """

    class Source(models.TextChoices):
        POSTBACK = "postback", "Postback"
        ADMIN = "admin", "Admin"
        API = "api", "API"
        RULE = "rule", "Rule"

    id = models.BigAutoField(primary_key=True)
    # Exactly one of the two is set (the check constraint below); indexed by the partial
    # indexes in Meta.
    conversion = models.ForeignKey(
        Conversion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="status_changes",
        db_index=False,
    )
    event_record = models.ForeignKey(
        EventRecord,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="status_changes",
        db_index=False,
    )
    from_status = models.CharField(max_length=10, choices=RecordStatus.choices)
    to_status = models.CharField(max_length=10, choices=RecordStatus.choices)
    reason = models.CharField(max_length=255, blank=True, default="")
    source = models.CharField(max_length=10, choices=Source.choices)
    # The account manager who made it (admin, API); null for postbacks and rules.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(conversion__isnull=False, event_record__isnull=True)
                | Q(conversion__isnull=True, event_record__isnull=False),
                name="statuschange_one_record",
            ),
            models.CheckConstraint(
                condition=Q(from_status__in=RecordStatus.values)
                & Q(to_status__in=RecordStatus.values),
                name="statuschange_status_valid",
            ),
            # Changes only: setting the status a record already has is no entry.
            models.CheckConstraint(
                condition=~Q(from_status=models.F("to_status")),
                name="statuschange_is_a_change",
            ),
            models.CheckConstraint(
                condition=Q(source__in=["postback", "admin", "api", "rule"]),
                name="statuschange_source_valid",
            ),
        ]
        indexes = [
            # A conversion's history, oldest first (its admin page and API item).
            models.Index(
                fields=["conversion", "id"],
                condition=Q(conversion__isnull=False),
                name="statuschange_conversion",
            ),
            # An event record's history, oldest first.
            models.Index(
                fields=["event_record", "id"],
                condition=Q(event_record__isnull=False),
                name="statuschange_event_record",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status} ({self.source})"


# --- Publisher postbacks: deliveries (SPEC "Publisher postbacks (outbound)") ---------------


class Delivery(models.Model):
    """One notification to a publisher: the delivery log's row and the worker's queue entry.

    Written in the same transaction as the record or status change it reports
    (tracking/deliveries.py), so nothing can drop it; sent by ``manage.py deliver_postbacks``.
    Its ID is the ``{delivery_id}`` macro, stable across retries and resends.
    """

    class Trigger(models.TextChoices):
        CONVERSION = "conversion", "Conversion"
        EVENT = "event", "Event"
        STATUS = "status", "Status change"

    class RecordType(models.TextChoices):
        CONVERSION = "conversion", "Conversion"
        EVENT = "event", "Event"

    class Outcome(models.TextChoices):
        QUEUED = "queued", "Queued"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        SUPERSEDED = "superseded", "Superseded"
        CANCELLED = "cancelled", "Cancelled"

    #: Outcomes the worker still has to act on.
    PENDING = ("queued", "retrying")

    id = models.BigAutoField(primary_key=True)
    # The links carry no database constraint (``db_constraint=False``), like the postback
    # log's: the table is partitioned by month on PostgreSQL (migration 0012), and dropping
    # a month whose table had foreign keys would lock the tables they reference (records,
    # offers) against every reader, and adding one would lock out their writers. The ORM
    # still applies on_delete (PROTECT, SET_NULL); the tracking path writes a delivery in
    # the statement that writes its record.
    # SET_NULL: deleting a postback keeps its delivery log (its pending deliveries are
    # cancelled when a worker next claims them: tracking/deliveries.py deliveries_claim).
    postback = models.ForeignKey(
        "offers.PublisherPostback",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="deliveries",
        db_index=False,
        db_constraint=False,
    )
    publisher = models.ForeignKey(
        Publisher,
        on_delete=models.PROTECT,
        related_name="deliveries",
        db_index=False,
        db_constraint=False,
    )
    offer = models.ForeignKey(
        Offer,
        on_delete=models.PROTECT,
        related_name="deliveries",
        db_index=False,
        db_constraint=False,
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    record_type = models.CharField(max_length=10, choices=RecordType.choices)
    conversion = models.ForeignKey(
        Conversion,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        db_constraint=False,
        related_name="deliveries",
    )
    event_record = models.ForeignKey(
        EventRecord,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        db_constraint=False,
        related_name="deliveries",
    )
    # The status history entry a status delivery reports (trigger status only).
    status_change = models.ForeignKey(
        StatusChange,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        db_constraint=False,
        related_name="deliveries",
    )
    transaction_id = models.CharField(max_length=64)
    # As it will be sent, secrets included (the worker needs them); shown masked everywhere.
    url = models.CharField(max_length=4000)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.QUEUED)
    attempt_count = models.PositiveSmallIntegerField(default=0)
    # When the worker should try next. A worker that claims a delivery moves this into the
    # future (its lease), so a worker killed mid-attempt leaves it due again later.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    # The reported record's ``created_at``, which every delivery of a record shares: the
    # partition key on PostgreSQL (tracking/partitions.py, migration 0012), so the "once per
    # postback and record" unique keys, which must hold it, still mean once per record, and
    # retention drops a month of records' deliveries whole.
    record_created_at = models.DateTimeField()
    # When it ended delivered or failed (the auto-disable rule looks at these).
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        permissions = [("resend_delivery", "Can resend a publisher postback delivery")]
        constraints = [
            models.CheckConstraint(
                condition=Q(trigger__in=["conversion", "event", "status"]),
                name="delivery_trigger_valid",
            ),
            models.CheckConstraint(
                condition=Q(record_type__in=["conversion", "event"]),
                name="delivery_record_type_valid",
            ),
            models.CheckConstraint(
                condition=Q(
                    outcome__in=[
                        "queued",
                        "retrying",
                        "delivered",
                        "failed",
                        "superseded",
                        "cancelled",
                    ]
                ),
                name="delivery_outcome_valid",
            ),
            # A delivery reports exactly one record, of its type.
            models.CheckConstraint(
                condition=(
                    Q(record_type="conversion", conversion__isnull=False, event_record__isnull=True)
                    | Q(record_type="event", conversion__isnull=True, event_record__isnull=False)
                ),
                name="delivery_one_record",
            ),
            # Only pending deliveries are due.
            models.CheckConstraint(
                condition=Q(outcome__in=["queued", "retrying"]) | Q(next_attempt_at__isnull=True),
                name="delivery_due_only_when_pending",
            ),
            # Conversion and event postbacks fire once per (postback, record), whatever path
            # approves the record and however often: these refuse a second one.
            # ``record_created_at`` is the partition key, one value per record: it narrows
            # nothing.
            models.UniqueConstraint(
                fields=["postback", "conversion", "record_created_at"],
                condition=Q(trigger="conversion"),
                name="delivery_once_per_postback_conversion",
            ),
            models.UniqueConstraint(
                fields=["postback", "event_record", "record_created_at"],
                condition=Q(trigger="event"),
                name="delivery_once_per_postback_event_record",
            ),
            # Status postbacks fire once per (postback, history entry).
            models.UniqueConstraint(
                fields=["postback", "status_change", "record_created_at"],
                condition=Q(trigger="status"),
                name="delivery_once_per_postback_status_change",
            ),
            models.CheckConstraint(
                condition=Q(trigger="status", status_change__isnull=False)
                | (~Q(trigger="status") & Q(status_change__isnull=True)),
                name="delivery_status_change_only_for_status",
            ),
        ]
        indexes = [
            # The worker's claim: pending deliveries by due time (small: only pending rows).
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(outcome__in=["queued", "retrying"]),
                name="delivery_due",
            ),
            # The delivery log newest first, and date filters.
            models.Index(fields=["created_at"], name="delivery_created"),
            # The log filtered by publisher / offer.
            models.Index(fields=["publisher", "created_at"], name="delivery_publisher_created"),
            models.Index(fields=["offer", "created_at"], name="delivery_offer_created"),
            # Search by transaction_id.
            models.Index(fields=["transaction_id"], name="delivery_transaction_id"),
            # Auto-disable: a postback's last finished deliveries. Partial, like the two below:
            # a new delivery (written by the tracking path) adds no entry to it, and only
            # one of the record links ever has a value.
            models.Index(
                fields=["postback", "finished_at"],
                condition=Q(finished_at__isnull=False),
                name="delivery_postback_finished",
            ),
            # A record's deliveries (status deliveries superseded by a later change).
            models.Index(
                fields=["conversion"],
                condition=Q(conversion__isnull=False),
                name="delivery_conversion",
            ),
            models.Index(
                fields=["event_record"],
                condition=Q(event_record__isnull=False),
                name="delivery_event_record",
            ),
        ]

    def __str__(self) -> str:
        return f"Delivery #{self.pk} {self.outcome}"

    @property
    def record_id(self) -> int | None:
        return self.conversion_id if self.record_type == "conversion" else self.event_record_id


class DeliveryAttempt(models.Model):
    """One request the worker made for a delivery, whatever came of it."""

    id = models.BigAutoField(primary_key=True)
    # No database constraint: the delivery log is partitioned on PostgreSQL (migration 0012)
    # and a key on its id alone cannot reference it; deleting through the ORM still
    # cascades, and retention drops a month of attempts with its month of deliveries.
    delivery = models.ForeignKey(
        Delivery,
        on_delete=models.CASCADE,
        related_name="attempts",
        db_index=False,
        db_constraint=False,
    )
    # The delivery's ``record_created_at``: partitioned by the same month as its delivery.
    record_created_at = models.DateTimeField()
    at = models.DateTimeField()
    # The URL as sent, secret-looking parameters masked (offers.outbound_urls.mask_url).
    url = models.CharField(max_length=4000)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    # The first 1 KiB of the answer, decoded leniently.
    response = models.TextField(blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["delivery_id", "at", "id"]
        indexes = [
            # A delivery's attempts, in order.
            models.Index(fields=["delivery", "at"], name="deliveryattempt_delivery_at"),
        ]

    def __str__(self) -> str:
        return f"Attempt #{self.pk} of delivery #{self.delivery_id}"


class KeptPostback(models.Model):
    """An early event (docs/postbacks.md "Early events"): an event postback that came before
    its click's conversion, kept until the conversion comes or its time passes. Its log row
    tells the story; this row is deleted when it is decided (whoever deletes it decides it,
    so it is decided once)."""

    id = models.BigAutoField(primary_key=True)
    # No database constraint: the log is partitioned on PostgreSQL (migration 0007), and a
    # key on its id alone cannot reference it; deleting through the ORM still cascades.
    log = models.OneToOneField(
        PostbackLog, on_delete=models.CASCADE, related_name="kept", db_constraint=False
    )
    click = models.ForeignKey(Click, on_delete=models.CASCADE, db_index=False)
    # The event as resolved on arrival; judged by its definition when the conversion comes.
    # Deleting the event closes it (unknown_event), so no database link.
    event_id = models.IntegerField()
    # The parsed parameters (amount, currency, adv_sub … adv_sub5). Never the token.
    params = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [
            # A click's kept postbacks in arrival order, when its conversion is recorded.
            models.Index(fields=["click", "id"], name="keptpostback_click"),
            # The sweep of those whose time has passed.
            models.Index(fields=["expires_at"], name="keptpostback_expires"),
            # Closing an event's kept postbacks when it is deleted.
            models.Index(fields=["event_id"], name="keptpostback_event"),
        ]

    def __str__(self) -> str:
        return f"Kept postback #{self.pk}"


class PruneKind(models.TextChoices):
    POSTBACK_LOG = "postback_log", "Postback log"
    CLICKS = "clicks", "Unconverted clicks"


class PruneMark(models.Model):
    """What retention has removed (tracking/retention.py): of each kind, the rows created
    before ``before``. Reports over such a period say so; their totals come from the
    records, which are never pruned."""

    Kind = PruneKind

    kind = models.CharField(max_length=20, choices=PruneKind.choices, primary_key=True)
    before = models.DateTimeField()
    pruned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=PruneKind.values), name="prunemark_kind_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} pruned before {self.before:%Y-%m-%d %H:%M}"
