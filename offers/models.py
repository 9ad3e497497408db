"""Advertisers, publishers, offers and their event definitions: what account managers set up."""

from decimal import Decimal

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from offers.allow_list import validate_allow_list
from offers.parameters import validate_parameter_mapping
from offers.tokens import generate_postback_token, mask_token, token_digest

CURRENCY_REGEX = r"^[A-Z]{3}$"
DEFAULT_CONVERSION_WINDOW_DAYS = 90
MAX_WAIT_FOR_CONVERSION_MINUTES = 1440
NOT_NEGATIVE = [MinValueValidator(Decimal("0"), message="Cannot be negative.")]


class MoneyType(models.TextChoices):
    """How a revenue or payout value is read (SPEC "Money")."""

    CPA = "CPA", "CPA (per action)"
    CPL = "CPL", "CPL (per lead)"
    FIXED = "FIXED", "Fixed amount"
    CPS = "CPS", "CPS (% of sale)"


def money_rule_constraints(prefix: str) -> list[models.CheckConstraint]:
    """Constraints shared by every model that carries revenue and payout rules."""
    constraints = []
    for side in ("revenue", "payout"):
        constraints += [
            models.CheckConstraint(
                condition=Q(**{f"{side}_type__in": MoneyType.values}),
                name=f"{prefix}_{side}_type_valid",
                violation_error_message=f"The {side} type must be CPA, CPL, FIXED or CPS.",
            ),
            models.CheckConstraint(
                condition=Q(**{f"{side}_value__gte": Decimal("0")}),
                name=f"{prefix}_{side}_value_gte_0",
                violation_error_message=f"The {side} value cannot be negative.",
            ),
            # A CPS value is a percentage of the sale.
            models.CheckConstraint(
                condition=~Q(**{f"{side}_type": MoneyType.CPS})
                | Q(**{f"{side}_value__lte": Decimal("100")}),
                name=f"{prefix}_{side}_cps_percent_lte_100",
                violation_error_message=f"A CPS {side} value is a percentage: 0 to 100.",
            ),
        ]
    return constraints


class Advertiser(models.Model):
    name = models.CharField(max_length=200, unique=True)
    # Shown whole to account managers (they paste it into the advertiser's platform), so it
    # is stored; lookups go through the digest so the comparison never touches the token.
    postback_token = models.CharField(
        max_length=64, unique=True, default=generate_postback_token, editable=False
    )
    postback_token_digest = models.CharField(max_length=64, unique=True, editable=False)
    # docs/postbacks.md check 3a: where this advertiser's postbacks may come from.
    # (Database defaults on the rule columns: older code paths and bulk loads that insert
    # without naming them keep working.)
    allowed_ips = models.JSONField(
        "allowed IPs",
        default=list,
        db_default=[],
        blank=True,
        validators=[validate_allow_list],
        help_text="Addresses and CIDR ranges (IPv4 or IPv6) the advertiser's postbacks may "
        "come from, one per line. Empty: any address.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # The digest is always the SHA-256 of the token (64 hex characters).
            models.CheckConstraint(
                condition=Q(postback_token_digest__regex=r"^[0-9a-f]{64}$"),  # noqa: S106
                name="advertiser_token_digest_is_sha256",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def set_postback_token(self, token: str) -> None:
        self.postback_token = token
        self.postback_token_digest = token_digest(token)

    @property
    def masked_token(self) -> str:
        return mask_token(self.postback_token)


class Publisher(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Offer(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    name = models.CharField(max_length=200)
    advertiser = models.ForeignKey(Advertiser, on_delete=models.PROTECT, related_name="offers")
    destination_url = models.URLField(
        max_length=2000,
        help_text="Where clicks are sent. Macros: {transaction_id}, {offer_id}, {aff_id}, "
        "{aff_sub} … {aff_sub5}, {source}.",
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    currency = models.CharField(max_length=3, default="USD", help_text="3-letter ISO code.")
    revenue_type = models.CharField(max_length=5, choices=MoneyType.choices, default=MoneyType.CPA)
    revenue_value = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0.00"), validators=NOT_NEGATIVE
    )
    payout_type = models.CharField(max_length=5, choices=MoneyType.choices, default=MoneyType.CPA)
    payout_value = models.DecimalField(
        max_digits=12, decimal_places=2, default=Decimal("0.00"), validators=NOT_NEGATIVE
    )
    parameters = models.JSONField(
        default=dict,
        blank=True,
        validators=[validate_parameter_mapping],
        help_text="Parameter mapping for the offer postback URL: name → placeholder.",
    )
    # docs/postbacks.md "Offer rules".
    fallback_url = models.URLField(
        "fallback URL",
        max_length=2000,
        blank=True,
        default="",
        db_default="",
        help_text="Where clicks go while a hard cap of the offer (or of the click's publisher) "
        "is full. Same macros as the destination URL. Empty: the destination URL.",
    )
    conversion_window_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        default=DEFAULT_CONVERSION_WINDOW_DAYS,
        validators=[MinValueValidator(1)],
        help_text="A conversion for a click older than this many days is refused "
        "(click_expired). Empty: no limit.",
    )
    min_conversion_seconds = models.PositiveIntegerField(
        default=0,
        db_default=0,
        help_text="A conversion sooner than this many seconds after its click is recorded "
        "rejected (too_fast). 0: off.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "paused"]), name="offer_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=CURRENCY_REGEX),
                name="offer_currency_iso",
                violation_error_message="The currency must be a 3-letter ISO code, e.g. USD.",
            ),
            *money_rule_constraints("offer"),
            models.CheckConstraint(
                condition=Q(conversion_window_days__isnull=True) | Q(conversion_window_days__gte=1),
                name="offer_conversion_window_days_gte_1",
                violation_error_message="The conversion window is at least 1 day (or empty).",
            ),
            models.CheckConstraint(
                condition=Q(min_conversion_seconds__gte=0),
                name="offer_min_conversion_seconds_gte_0",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class Event(models.Model):
    """A post-conversion action of an offer. Its primary key is the platform-wide event ID."""

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(
        max_length=255, help_text="Must match what the advertiser sends (case sensitive)."
    )
    revenue_type = models.CharField(max_length=5, choices=MoneyType.choices)
    revenue_value = models.DecimalField(max_digits=12, decimal_places=2, validators=NOT_NEGATIVE)
    payout_type = models.CharField(max_length=5, choices=MoneyType.choices)
    payout_value = models.DecimalField(max_digits=12, decimal_places=2, validators=NOT_NEGATIVE)
    allow_multiple = models.BooleanField(
        "allow multiple events with the same click ID", default=False
    )
    parameters = models.JSONField(
        "parameter mapping",
        default=dict,
        blank=True,
        validators=[validate_parameter_mapping],
        help_text="Extra parameters for the event postback URL: name → placeholder.",
    )
    # docs/postbacks.md "Early events".
    wait_for_conversion_minutes = models.PositiveIntegerField(
        "wait for conversion (minutes)",
        default=0,
        db_default=0,
        validators=[MaxValueValidator(MAX_WAIT_FOR_CONVERSION_MINUTES)],
        help_text="When this event arrives before its click's conversion, keep it this many "
        "minutes (0–1440) and record it when the conversion comes. 0: refuse it "
        "(no_conversion).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["offer_id", "id"]
        constraints = [
            # Case sensitive on both engines: PostgreSQL's default collation and SQLite's
            # BINARY collation compare bytes.
            models.UniqueConstraint(
                fields=["offer", "name"],
                name="event_name_unique_per_offer",
                violation_error_message="This offer already has an event with this name.",
            ),
            models.CheckConstraint(condition=~Q(name=""), name="event_name_not_empty"),
            *money_rule_constraints("event"),
            models.CheckConstraint(
                condition=Q(wait_for_conversion_minutes__gte=0)
                & Q(wait_for_conversion_minutes__lte=MAX_WAIT_FOR_CONVERSION_MINUTES),
                name="event_wait_for_conversion_0_1440",
                violation_error_message="Wait for conversion is 0 to 1440 minutes.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class PublisherPostback(models.Model):
    """A publisher's URL that Clicktrail calls about the publisher's conversions and events
    (SPEC "Publisher postbacks (outbound)"). The URL holds macros (offers/outbound_urls.py),
    filled when a delivery is created; deliveries live in tracking (tracking/deliveries.py).
    """

    class Trigger(models.TextChoices):
        CONVERSION = "conversion", "Conversion"
        EVENT = "event", "Event"
        STATUS = "status", "Status change"

    publisher = models.ForeignKey(Publisher, on_delete=models.CASCADE, related_name="postbacks")
    offer = models.ForeignKey(
        Offer,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="publisher_postbacks",
        help_text="Empty: all offers.",
    )
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    event = models.ForeignKey(
        Event,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="publisher_postbacks",
        help_text="For the event trigger: one event (of the offer), or empty for any event.",
    )
    url = models.CharField("URL", max_length=2000)
    enabled = models.BooleanField(default=True)
    # Set when deliveries kept failing (tracking/deliveries.py, postback_disable_if_failing);
    # cleared when someone enables it again.
    disabled_reason = models.CharField(max_length=255, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["publisher_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(trigger__in=["conversion", "event", "status"]),
                name="publisherpostback_trigger_valid",
            ),
            # One event only makes sense for the event trigger.
            models.CheckConstraint(
                condition=Q(event__isnull=True) | Q(trigger="event"),
                name="publisherpostback_event_only_for_event_trigger",
                violation_error_message="Only an event postback can name one event.",
            ),
            # An event belongs to an offer: the postback names that offer too
            # (publisherpostback_clean keeps them in step).
            models.CheckConstraint(
                condition=Q(event__isnull=True) | Q(offer__isnull=False),
                name="publisherpostback_event_needs_offer",
            ),
            models.CheckConstraint(condition=~Q(url=""), name="publisherpostback_url_not_empty"),
        ]
        indexes = [
            # The definitions cache loads an offer's postbacks (its own and the all-offers
            # ones) once per definitions version.
            models.Index(fields=["offer", "enabled"], name="publisherpostback_offer"),
        ]

    def __str__(self) -> str:
        scope = f"offer #{self.offer_id}" if self.offer_id else "all offers"
        return f"{self.get_trigger_display()} postback of {self.publisher} ({scope})"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from offers.outbound_urls import validate_postback_url

        errors = {}
        try:
            validate_postback_url(self.url)
        except ValidationError as error:
            errors["url"] = error.messages
        if self.event_id is not None and self.trigger != self.Trigger.EVENT:
            errors["event"] = ["Only an event postback can name one event."]
        elif self.event_id is not None:
            event_offer = Event.objects.filter(pk=self.event_id).values_list("offer_id", flat=True)
            event_offer_id = event_offer.first()
            if self.offer_id is None:
                self.offer_id = event_offer_id
            elif event_offer_id != self.offer_id:
                errors["event"] = ["This event belongs to another offer."]
        if errors:
            raise ValidationError(errors)


class OfferCap(models.Model):
    """A cap on what an offer (or one publisher on it) may earn in a period (docs/postbacks.md
    "Caps"). Its use per period is counted in ``tracking.CapCounter``."""

    class Metric(models.TextChoices):
        CONVERSIONS = "conversions", "Conversions"
        PAYOUT = "payout", "Payout"
        REVENUE = "revenue", "Revenue"

    class Period(models.TextChoices):
        DAY = "day", "Day"
        WEEK = "week", "Week (from Monday)"
        MONTH = "month", "Month"
        TOTAL = "total", "Total"

    class Mode(models.TextChoices):
        SOFT = "soft", "Soft (record as pending)"
        HARD = "hard", "Hard (record as rejected)"

    offer = models.ForeignKey(Offer, on_delete=models.CASCADE, related_name="caps")
    metric = models.CharField(max_length=12, choices=Metric.choices)
    period = models.CharField(max_length=5, choices=Period.choices)
    limit = models.DecimalField(
        max_digits=14,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01"), message="A cap's limit is above 0.")],
        help_text="Conversions (a whole number) or an amount in the offer's currency.",
    )
    # Null: the whole offer.
    publisher = models.ForeignKey(
        Publisher, on_delete=models.CASCADE, null=True, blank=True, related_name="caps"
    )
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.HARD)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["offer_id", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(metric__in=["conversions", "payout", "revenue"]),
                name="offercap_metric_valid",
            ),
            models.CheckConstraint(
                condition=Q(period__in=["day", "week", "month", "total"]),
                name="offercap_period_valid",
            ),
            models.CheckConstraint(
                condition=Q(mode__in=["soft", "hard"]), name="offercap_mode_valid"
            ),
            models.CheckConstraint(condition=Q(limit__gt=0), name="offercap_limit_gt_0"),
        ]

    def __str__(self) -> str:
        scope = f"publisher {self.publisher_id}" if self.publisher_id else "offer"
        return f"{self.limit} {self.metric} per {self.period} ({scope}, {self.mode})"


#: Counter rows per cap and period (``CapCounter``).
CAP_COUNTER_SHARDS = 16


class CapCounter(models.Model):
    """One share of what the approved records of one cap's period add up to
    (docs/postbacks.md "Caps"): a cap's use in a period is the sum of its ``SHARDS`` rows.

    Written only by tracking (tracking/caps.py), in the transaction that writes or changes a
    record, so a postback never counts records. Each share has an ``allowance``: what its
    ``used`` may grow to by a record that locks this share alone. The allowances of a
    period add up to no more than the cap's limit (``balanced_for``), and change only under
    the locks of all the period's shares; so postbacks of one offer rarely wait on each
    other, and the last slot still goes to exactly one of any number of simultaneous
    conversions.
    """

    SHARDS = CAP_COUNTER_SHARDS

    id = models.BigAutoField(primary_key=True)
    # No index of its own: ``capcounter_one_per_shard`` starts with the cap. (Every index of
    # the table is opened by each postback that takes a slot: session 21, docs/benchmarks.md.)
    cap = models.ForeignKey(
        OfferCap, on_delete=models.CASCADE, related_name="counters", db_index=False
    )
    # The first day of the period in TIME_ZONE (a Monday for weeks, the 1st for months);
    # 1970-01-01 for a total.
    period_start = models.DateField()
    shard = models.PositiveSmallIntegerField(default=0)
    used = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0"))
    # What ``used`` may reach by a record that locks this shard only; the cap's limit the
    # period's allowances were shared out for (empty: not yet, so every record counts under
    # all the shards' locks until one shares them out: tracking/caps.py ``_share_out``).
    allowance = models.DecimalField(max_digits=16, decimal_places=2, default=Decimal("0"))
    balanced_for = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cap", "period_start", "shard"], name="capcounter_one_per_shard"
            ),
            models.CheckConstraint(condition=Q(used__gte=0), name="capcounter_used_gte_0"),
            models.CheckConstraint(
                condition=Q(shard__lt=CAP_COUNTER_SHARDS), name="capcounter_shard_in_range"
            ),
            models.CheckConstraint(
                condition=Q(allowance__gte=0), name="capcounter_allowance_gte_0"
            ),
        ]

    def __str__(self) -> str:
        return f"Cap {self.cap_id} from {self.period_start}, shard {self.shard}: {self.used}"
