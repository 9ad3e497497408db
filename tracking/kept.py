"""Early events (docs/postbacks.md "Early events"): event postbacks kept until their click's
conversion is recorded, then judged in arrival order; closed when their time passes.

An event postback that passes checks 1–8 and 11 but finds no conversion, for an event with
``wait_for_conversion_minutes``, is answered ``202 waiting_for_conversion`` and kept
(``tracking.models.KeptPostback``: its parsed parameters with the resolved click and event,
never the token; ``tracking/postback.py`` writes it with its log row). When the conversion
is recorded, ``judge_click`` decides the click's kept postbacks in arrival order with
``rules.decide_kept`` (checks 10, 10a, 11 and the caps, with the event as defined then):
the record is written or refused, and the log row gains ``decided_at``,
``final_status_code`` and ``final_reason``. ``sweep`` (the ``kept_postbacks`` command, safe
to run from cron at any interval, on any number of machines) judges those whose conversion
came meanwhile, and closes the others when their time has passed (``no_conversion``) or
their event was deleted (``unknown_event``).

Exactly once: a kept postback is decided by whoever locks and deletes its row; a second
judge waiting on the lock finds it gone.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from offers.caps import local_day
from offers.definitions import current_version, definitions
from tracking import caps, rules
from tracking.models import (
    Click,
    Conversion,
    EventRecord,
    KeptPostback,
    PostbackLog,
    Reason,
)
from tracking.rules import ClickFacts, DuplicateMode, Facts, PostbackParams


def kept_values(decision: rules.Decision, *, click_id: int, log_id: int, at: datetime) -> dict:
    """The kept row of a ``waiting_for_conversion`` decision."""
    params, event = decision.params, decision.event
    assert params is not None and event is not None
    return {
        "log_id": log_id,
        "click_id": click_id,
        "event_id": event.id,
        "params": {
            "transaction_id": params.transaction_id,
            "amount": str(params.amount) if params.amount is not None else None,
            "currency": params.currency,
            **params.adv_subs,
        },
        "created_at": at,
        "expires_at": at + timedelta(minutes=event.wait_for_conversion_minutes),
    }


def _params(kept: KeptPostback) -> PostbackParams:
    stored = kept.params
    return PostbackParams(
        secure="",
        transaction_id=stored["transaction_id"],
        event_id=kept.event_id,
        event_name=None,
        offer_id=None,
        amount=Decimal(stored["amount"]) if stored.get("amount") is not None else None,
        currency=stored.get("currency"),
        adv_subs={name: stored.get(name, "") for name in rules.ADV_SUB_PARAMETERS},
    )


@dataclass(frozen=True)
class Judged:
    log_id: int
    reason: str
    status_code: int
    record_id: int | None


def judge_click(click_id: int) -> list[Judged]:
    """Decide the click's kept postbacks, in arrival order, if it has its conversion (one
    transaction; the conversion locked first, as accepting any event does)."""
    with transaction.atomic():
        conversion = (
            Conversion.objects.select_for_update()
            .filter(click_id=click_id)
            .only("id", "status")
            .first()
        )
        if conversion is None:
            return []
        kept = list(
            KeptPostback.objects.select_for_update().filter(click_id=click_id).order_by("id")
        )
        if not kept:
            return []
        click = Click.objects.get(pk=click_id)
        return [_judge(k, click, conversion) for k in kept]


def _judge(kept: KeptPostback, click: Click, conversion: Conversion) -> Judged:
    from tracking.postback import (  # noqa: PLC0415 - postback imports us
        _Click,
        _record_values,
        deliveries_for_kept,
    )

    defs = definitions(version=current_version())
    offer = defs.offer(click.offer_id)
    assert offer is not None  # offers are never deleted while they have clicks
    event = defs.events(click.offer_id).by_id.get(kept.event_id)
    params = _params(kept)
    facts = Facts(
        click=ClickFacts(
            offer_id=click.offer_id,
            has_conversion=True,
            conversion_status=conversion.status,
            created_at=click.created_at,
            is_test=click.is_test,
            publisher_id=click.publisher_id,
        )
    )
    if event is not None:
        records = EventRecord.objects.filter(click_id=click.pk, event_id=event.id)
        mode = rules.duplicate_mode(event, params.adv_sub)
        if mode is DuplicateMode.SAME_ADV_SUB:
            records = records.filter(adv_sub=params.adv_sub)
        duplicate = mode is not DuplicateMode.NONE and records.exists()
        facts = Facts(click=facts.click, duplicate_event=duplicate)
    decision = rules.decide_kept(params, facts, offer, event)
    now = timezone.now()
    record_id = None
    if decision.accepted:
        written = _Click(click.pk, click.offer_id, click.publisher_id, conversion.pk)
        # Its counters are locked before its record is written (tracking/caps.py).
        caps.counters_lock(decision.caps, day=local_day(now))
        try:
            with transaction.atomic():
                record_id = EventRecord.objects.create(
                    **_record_values(decision, written, created_at=now)
                ).pk
        except IntegrityError:  # a duplicate recorded at the same moment
            decision = rules.decide_kept(
                params, Facts(click=facts.click, duplicate_event=True), offer, event
            )
        if record_id is not None and decision.caps:
            status, reason, by_rule = caps.take_slots(decision, created_at=now)
            if (status, reason) != (decision.record_status, decision.record_status_reason):
                EventRecord.objects.filter(pk=record_id).update(
                    status=status, status_reason=reason, status_by_rule=by_rule
                )
                decision = replace(
                    decision,
                    record_status=status,
                    record_status_reason=reason,
                    status_by_rule=by_rule,
                )
        if record_id is not None:
            # Its publisher deliveries, where it is recorded approved (a test click's: none).
            deliveries_for_kept(
                decision,
                click_id=click.pk,
                publisher_id=click.publisher_id,
                record_id=record_id,
                now=now,
            )
    _close(kept, decision.reason, decision.status_code, record_id=record_id, at=now)
    return Judged(kept.log_id, decision.reason.value, decision.status_code, record_id)


def _close(
    kept: KeptPostback, reason: str, status_code: int, *, record_id: int | None, at: datetime
) -> None:
    PostbackLog.objects.filter(pk=kept.log_id).update(
        decided_at=at,
        final_status_code=status_code,
        final_reason=reason,
        event_record_id=record_id,
    )
    kept.delete()


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Judge kept postbacks whose conversion came; close those whose time passed
    (``no_conversion``, 422) or whose event is gone (``unknown_event``, 404). Safe to run
    at any time, in several processes at once (rows another run holds are skipped)."""
    now = now or timezone.now()
    done = {"judged": 0, "no_conversion": 0, "unknown_event": 0}
    converted = KeptPostback.objects.filter(
        click_id__in=Conversion.objects.values("click_id")
    ).values_list("click_id", flat=True)
    for click_id in sorted(set(converted)):
        done["judged"] += len(judge_click(click_id))
    from offers.models import Event  # noqa: PLC0415

    with transaction.atomic():
        gone = (
            KeptPostback.objects.select_for_update(skip_locked=True)
            .exclude(event_id__in=Event.objects.values("id"))
            .order_by("id")
        )
        for kept in gone:
            _close(kept, Reason.UNKNOWN_EVENT, 404, record_id=None, at=now)
            done["unknown_event"] += 1
    with transaction.atomic():
        expired = (
            KeptPostback.objects.select_for_update(skip_locked=True)
            .filter(expires_at__lte=now)
            .exclude(click_id__in=Conversion.objects.values("click_id"))
            .order_by("id")
        )
        for kept in expired:
            _close(kept, Reason.NO_CONVERSION, 422, record_id=None, at=now)
            done["no_conversion"] += 1
    return done
