"""Fill the database with a believable network: definitions plus 30 days of traffic."""

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from offers.models import Advertiser, MoneyType, Offer, Publisher
from offers.money import earned
from offers.services import advertiser_create, event_create
from offers.tokens import mask_token
from tracking.models import (
    Click,
    Conversion,
    EventRecord,
    PostbackLog,
    Reason,
    RecordStatus,
    StatusChange,
)
from tracking.services import generate_transaction_id
from tracking.status import record_status_change

BATCH = 5000

ADVERTISERS = ["Northwind Games", "Acme Streaming", "Globex Finance"]
PUBLISHERS = ["MediaHub", "AppPromo Ltd", "CashbackWorld", "SocialBoost", "SearchNest"]
# (advertiser, offer, currency, (revenue type, value), (payout type, value), events)
# events: (name, (revenue type, value), (payout type, value), allow_multiple, rate)
OFFERS = [
    (
        0,
        "Dragon Quest Mobile – Install",
        "USD",
        ("CPA", "2.50"),
        ("CPA", "1.80"),
        [
            ("tutorial_complete", ("CPA", "0.40"), ("CPA", "0.25"), False, 0.45),
            ("purchase", ("CPS", "30"), ("CPS", "20"), True, 0.25),
            ("level_10", ("FIXED", "1.00"), ("FIXED", "0.60"), False, 0.15),
        ],
    ),
    (
        0,
        "Space Tycoon – Install",
        "EUR",
        ("CPA", "1.90"),
        ("CPA", "1.20"),
        [
            ("purchase", ("CPS", "25"), ("CPS", "15"), True, 0.2),
        ],
    ),
    (
        1,
        "Acme+ Free Trial",
        "USD",
        ("CPL", "3.00"),
        ("CPL", "2.00"),
        [
            ("first_payment", ("CPA", "25.00"), ("CPA", "15.00"), False, 0.35),
            ("renewal", ("CPS", "10"), ("CPS", "5"), True, 0.2),
        ],
    ),
    (
        1,
        "Acme Kids Trial",
        "GBP",
        ("CPL", "2.20"),
        ("CPL", "1.40"),
        [
            ("first_payment", ("FIXED", "18.00"), ("FIXED", "11.00"), False, 0.3),
        ],
    ),
    (
        2,
        "Globex Credit Card Lead",
        "USD",
        ("CPL", "12.00"),
        ("CPL", "8.50"),
        [
            ("card_approved", ("CPL", "60.00"), ("CPL", "40.00"), False, 0.25),
            ("first_transaction", ("CPS", "2.5"), ("CPS", "1.5"), False, 0.5),
        ],
    ),
    (
        2,
        "Globex Savings Sign-up",
        "USD",
        ("CPA", "8.00"),
        ("CPA", "5.00"),
        [
            ("deposit", ("CPS", "1"), ("CPS", "0.5"), True, 0.4),
        ],
    ),
]


class Command(BaseCommand):
    help = "Load demo advertisers, publishers, offers with events and 30 days of traffic."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--clicks", type=int, default=40_000, help="clicks to create")
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument(
            "--if-empty", action="store_true", help="do nothing when offers already exist"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["if_empty"] and Offer.objects.exists():
            self.stdout.write("Demo data already loaded; leaving the database as it is.")
            return
        rng = random.Random(options["seed"])  # noqa: S311 - demo data, not security
        with transaction.atomic():
            offers, publishers = self._definitions()
            counts = self._traffic(rng, offers, publishers, options["clicks"], options["days"])
        self.stdout.write(
            self.style.SUCCESS(
                "Demo data: {advertisers} advertisers, {publishers} publishers, {offers} offers, "
                "{clicks} clicks, {conversions} conversions, {events} event records, "
                "{logs} postback log rows.".format(**counts)
            )
        )

    def _definitions(self) -> tuple[list[Offer], list[Publisher]]:
        suffix = "" if not Advertiser.objects.exists() else f" {Advertiser.objects.count()}"
        advertisers = [advertiser_create(name=name + suffix) for name in ADVERTISERS]
        publishers = [Publisher.objects.create(name=name + suffix) for name in PUBLISHERS]
        offers = []
        for adv, name, currency, revenue, payout, events in OFFERS:
            offer = Offer.objects.create(
                name=name,
                advertiser=advertisers[adv],
                destination_url=f"https://example.com/landing?click={{transaction_id}}&pub={{aff_id}}&sub={{aff_sub}}&o={len(offers)}",
                currency=currency,
                revenue_type=revenue[0],
                revenue_value=Decimal(revenue[1]),
                payout_type=payout[0],
                payout_value=Decimal(payout[1]),
                parameters={"adv_sub": "REPLACE"},
            )
            for ev_name, ev_revenue, ev_payout, multiple, _rate in events:
                event_create(
                    offer=offer,
                    name=ev_name,
                    revenue_type=ev_revenue[0],
                    revenue_value=Decimal(ev_revenue[1]),
                    payout_type=ev_payout[0],
                    payout_value=Decimal(ev_payout[1]),
                    allow_multiple=multiple,
                    parameters={"amount": "REPLACE"}
                    if "CPS" in (ev_revenue[0], ev_payout[0])
                    else {},
                )
            offers.append(offer)
        return offers, publishers

    def _traffic(
        self,
        rng: random.Random,
        offers: list[Offer],
        publishers: list[Publisher],
        n: int,
        days: int,
    ) -> dict[str, int]:
        now = timezone.now()
        events_by_offer = {o.pk: list(o.events.order_by("id")) for o in offers}
        rates = {
            ev.pk: spec[4]
            for o, (_, _, _, _, _, specs) in zip(offers, OFFERS, strict=True)
            for ev, spec in zip(events_by_offer[o.pk], specs, strict=True)
        }
        clicks = []
        for _ in range(n):
            offer = rng.choice(offers)
            # Traffic grows a little towards today and has a daily rhythm.
            age = timedelta(days=days * (rng.random() ** 1.3), seconds=rng.randint(0, 86_399))
            clicks.append(
                Click(
                    transaction_id=generate_transaction_id(),
                    offer=offer,
                    publisher=rng.choice(publishers),
                    aff_sub=rng.choice(["", "banner", "video", "push", "native"]),
                    source=rng.choice(["", "ios", "android", "web"]),
                    ip=f"198.51.100.{rng.randint(1, 254)}",
                    user_agent="Mozilla/5.0 (demo)",
                    created_at=now - age,
                )
            )
        Click.objects.bulk_create(clicks, batch_size=BATCH)
        offer_map = {o.pk: o for o in offers}

        conversions, records, logs = [], [], []
        for click in clicks:
            if rng.random() > 0.2:
                continue
            offer = offer_map[click.offer_id]
            amount = Decimal(rng.randint(199, 19_999)) / 100
            converted_at = click.created_at + timedelta(minutes=rng.randint(1, 600))
            if converted_at > now:
                continue
            conversions.append(
                Conversion(
                    click=click,
                    offer=offer,
                    publisher_id=click.publisher_id,
                    revenue=earned(
                        money_type=offer.revenue_type, value=offer.revenue_value, amount=amount
                    ),
                    payout=earned(
                        money_type=offer.payout_type, value=offer.payout_value, amount=amount
                    ),
                    currency=offer.currency,
                    amount=amount,
                    adv_sub=f"ORD-{rng.randint(100000, 999999)}",
                    created_at=converted_at,
                )
            )
        Conversion.objects.bulk_create(conversions, batch_size=BATCH)
        for conversion in conversions:
            logs.append(self._log(conversion.click, conversion.created_at, conversion=conversion))
            for event in events_by_offer[conversion.offer_id]:
                fires = 1 + (rng.randint(0, 2) if event.allow_multiple else 0)
                for n_fire in range(fires):
                    if rng.random() > rates[event.pk]:
                        break
                    at = conversion.created_at + timedelta(hours=rng.randint(1, 96), minutes=n_fire)
                    if at > now:
                        break
                    amount = Decimal(rng.randint(99, 9_999)) / 100
                    records.append(
                        EventRecord(
                            click=conversion.click,
                            offer_id=conversion.offer_id,
                            publisher_id=conversion.publisher_id,
                            event=event,
                            conversion=conversion,
                            allow_multiple=event.allow_multiple,
                            revenue=earned(
                                money_type=event.revenue_type,
                                value=event.revenue_value,
                                amount=amount,
                            ),
                            payout=earned(
                                money_type=event.payout_type,
                                value=event.payout_value,
                                amount=amount,
                            ),
                            currency=conversion.currency,
                            amount=amount
                            if MoneyType.CPS in (event.revenue_type, event.payout_type)
                            else None,
                            adv_sub=f"ORD-{rng.randint(100000, 999999)}"
                            if event.allow_multiple
                            else "",
                            created_at=at,
                        )
                    )
        EventRecord.objects.bulk_create(records, batch_size=BATCH)
        for record in records:
            logs.append(self._log(record.click, record.created_at, event_record=record))
        # Some of what goes wrong in real integrations, so the log and its charts show it.
        for click in rng.sample(clicks, k=min(len(clicks), n // 25)):
            reason, status = rng.choice(
                [
                    (Reason.UNKNOWN_EVENT, 404),
                    (Reason.NO_CONVERSION, 422),
                    (Reason.DUPLICATE_CONVERSION, 409),
                    (Reason.INVALID_SECURE, 403),
                    (Reason.AMOUNT_REQUIRED, 422),
                ]
            )
            at = click.created_at + timedelta(minutes=rng.randint(1, 900))
            if at > now:
                # Never in the future: it would sit above what a newcomer sends in the
                # newest-first log.
                continue
            logs.append(
                PostbackLog(
                    created_at=at,
                    method="GET",
                    params={"transaction_id": click.transaction_id, "secure": "demo••••••••"},
                    secure_masked="demo••••••••",
                    ip="203.0.113.10",
                    user_agent="partner-postback/1.0",
                    status_code=status,
                    reason=reason,
                    transaction_id=click.transaction_id,
                    offer_id=click.offer_id,
                    click=click,
                )
            )
        PostbackLog.objects.bulk_create(logs, batch_size=BATCH)
        # Later, advertisers reject some sales and managers hold some for review, as they do
        # (docs/postbacks.md "Approving and rejecting"); their events follow.
        for conversion in rng.sample(conversions, k=len(conversions) // 25):
            record_status_change(
                record=conversion,
                status=RecordStatus.REJECTED,
                reason=rng.choice(["refunded", "chargeback", "duplicate order"]),
                source=StatusChange.Source.POSTBACK,
            )
        for conversion in rng.sample(conversions, k=len(conversions) // 30):
            record_status_change(
                record=conversion,
                status=RecordStatus.PENDING,
                reason="checking the traffic",
                source=StatusChange.Source.ADMIN,
            )
        return {
            "advertisers": len(ADVERTISERS),
            "publishers": len(publishers),
            "offers": len(offers),
            "clicks": len(clicks),
            "conversions": len(conversions),
            "events": len(records),
            "logs": len(logs),
        }

    @staticmethod
    def _log(click: Click, at: Any, **record: Any) -> PostbackLog:
        offer = click.offer
        params = {
            "transaction_id": click.transaction_id,
            "secure": mask_token(offer.advertiser.postback_token),
        }
        event_record = record.get("event_record")
        if event_record is not None:
            params["event_id"] = str(event_record.event_id)
        # What the advertiser sent besides, as the endpoint logs it.
        sent = event_record or record.get("conversion")
        if sent.amount is not None:
            params["amount"] = str(sent.amount)
        if sent.adv_sub:
            params["adv_sub"] = sent.adv_sub
        return PostbackLog(
            created_at=at,
            method="GET",
            params=params,
            secure_masked=params["secure"],
            ip="203.0.113.10",
            user_agent="partner-postback/1.0",
            status_code=200,
            reason=Reason.ACCEPTED,
            type=PostbackLog.Type.EVENT if event_record else PostbackLog.Type.CONVERSION,
            transaction_id=click.transaction_id,
            advertiser_id=offer.advertiser_id,
            offer_id=offer.pk,
            event_id=event_record.event_id if event_record else None,
            click=click,
            **record,
        )
