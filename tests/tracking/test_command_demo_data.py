from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from offers.models import Advertiser, Event, MoneyType, Offer
from offers.money import earned
from tracking.models import Click, Conversion, EventRecord, PostbackLog

pytestmark = pytest.mark.django_db


def test_demo_data_fills_a_believable_network():
    out = StringIO()

    call_command("demo_data", "--clicks", "3000", stdout=out)

    assert Advertiser.objects.count() == 3
    assert Offer.objects.count() == 6
    assert set(Event.objects.values_list("revenue_type", flat=True)) == set(MoneyType.values)
    assert Click.objects.count() == 3000
    assert Conversion.objects.exists() and EventRecord.objects.exists()
    # Every accepted record has its log row; some rejections are logged too.
    accepted = PostbackLog.objects.filter(reason="accepted").count()
    assert accepted == Conversion.objects.count() + EventRecord.objects.count()
    assert PostbackLog.objects.exclude(reason="accepted").exists()
    assert "Demo data:" in out.getvalue()


def test_demo_records_earn_what_their_rules_say():
    call_command("demo_data", "--clicks", "2000", stdout=StringIO())

    for record in EventRecord.objects.select_related("event")[:200]:
        event = record.event
        assert record.revenue == earned(
            money_type=event.revenue_type, value=event.revenue_value, amount=record.amount
        )
        assert record.payout == earned(
            money_type=event.payout_type, value=event.payout_value, amount=record.amount
        )


def test_demo_data_respects_the_exactly_once_rules():
    call_command("demo_data", "--clicks", "2000", stdout=StringIO())

    single_fire = (
        EventRecord.objects.filter(allow_multiple=False)
        .values("event", "click")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    assert not single_fire.exists()


def test_demo_data_with_if_empty_loads_only_once():
    call_command("demo_data", "--clicks", "500", stdout=StringIO())
    out = StringIO()

    call_command("demo_data", "--clicks", "500", "--if-empty", stdout=out)

    assert Click.objects.count() == 500
    assert "already loaded" in out.getvalue()


def test_bootstrap_admin_creates_a_superuser_and_prints_a_working_login():
    out = StringIO()

    call_command("bootstrap_admin", stdout=out)

    password = out.getvalue().split("password: ")[1].split()[0]
    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser and user.is_staff
    assert user.check_password(password)


def test_demo_data_has_nothing_dated_in_the_future():
    before = timezone.now()

    # One day of traffic: many clicks within the 15 hours a rejected postback may come after.
    call_command("demo_data", "--clicks", "3000", "--days", "1", stdout=StringIO())

    after = timezone.now()
    for model in (Click, Conversion, EventRecord, PostbackLog):
        newest = model.objects.order_by("-created_at").values_list("created_at", flat=True)[0]
        assert newest <= after, model.__name__
    # The rejections are spread over the period too, not all squeezed onto "now".
    assert PostbackLog.objects.exclude(reason="accepted").filter(created_at__lt=before).exists()
