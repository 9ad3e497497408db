"""The admin's status actions (Approve, Reject with a reason, Set pending) with their
confirmation page, the status column and filter, and the history on a record's page."""

import re
from decimal import Decimal

import pytest

from tests.conftest import admin_client_for
from tests.factories import (
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    account_manager,
    analyst,
)
from tracking.models import Conversion, EventRecord, StatusChange

pytestmark = pytest.mark.django_db

CONVERSIONS = "/admin/tracking/conversion/"
EVENT_RECORDS = "/admin/tracking/eventrecord/"


def act(client, url, action, records, **extra):  # noqa: ANN001, ANN201
    return client.post(
        url + "?period=all",
        {"action": action, "_selected_action": [r.pk for r in records], **extra},
    )


@pytest.fixture
def manager():
    return account_manager()


@pytest.fixture
def manager_browser(manager):
    return admin_client_for(manager)


def test_reject_asks_for_a_reason_and_says_how_many_records_and_how_much_money_move(
    manager_browser, manager
):
    first = ConversionFactory(revenue=Decimal("5.00"), payout=Decimal("3.00"))
    second = ConversionFactory(revenue=Decimal("7.50"), payout=Decimal("4.25"))
    euro = ConversionFactory(revenue=Decimal("9.99"), payout=Decimal("1.00"), currency="EUR")
    already = ConversionFactory(status="rejected")
    EventRecordFactory(conversion=first)

    page = act(manager_browser, CONVERSIONS, "reject_selected", [first, second, euro, already])

    assert page.status_code == 200
    html = page.content.decode()
    assert '<strong class="ct-changing">3</strong> of 4 selected' in html
    assert "1 already rejected" in html
    assert "1 event records of these conversions will follow them" in html
    rows = [
        re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row)
        for row in re.findall(r'<tr class="ct-moving-row">(.*?)</tr>', html, re.S)
    ]
    assert [row[0] for row in rows] == ["EUR", "USD"]
    assert rows[1][2:] == ["12.50", "7.25"]
    assert rows[0][2:] == ["9.99", "1.00"]
    assert 'name="status_reason"' in html and "required" in html
    assert Conversion.objects.filter(status="rejected").count() == 1  # nothing yet

    without_reason = act(
        manager_browser, CONVERSIONS, "reject_selected", [first], confirm="yes", status_reason=""
    )
    assert without_reason.status_code == 400
    assert "Give a reason" in without_reason.content.decode()
    assert Conversion.objects.filter(status="rejected").count() == 1

    done = act(
        manager_browser,
        CONVERSIONS,
        "reject_selected",
        [first, second, euro, already],
        confirm="yes",
        status_reason="fraudulent traffic",
    )

    assert done.status_code == 302
    assert Conversion.objects.filter(status="rejected").count() == 4
    changes = StatusChange.objects.filter(source="admin")
    assert changes.count() == 3
    assert {(c.user_id, c.reason, c.to_status) for c in changes} == {
        (manager.pk, "fraudulent traffic", "rejected")
    }
    assert EventRecord.objects.get().status == "rejected"  # followed its conversion
    messages = [str(m) for m in done.wsgi_request._messages]
    assert messages == [
        "3 conversions set rejected; 1 event records followed their conversions; "
        "1 already rejected."
    ]


def test_approve_and_set_pending_need_no_reason(manager_browser):
    conversion = ConversionFactory(status="pending", status_reason="checking")

    act(manager_browser, CONVERSIONS, "approve_selected", [conversion], confirm="yes")
    conversion.refresh_from_db()
    assert (conversion.status, conversion.status_reason) == ("approved", "")

    act(
        manager_browser,
        CONVERSIONS,
        "set_pending_selected",
        [conversion],
        confirm="yes",
        status_reason="looks odd",
    )
    conversion.refresh_from_db()
    assert (conversion.status, conversion.status_reason) == ("pending", "looks odd")
    assert [c.source for c in StatusChange.objects.all()] == ["admin", "admin"]


def test_event_records_of_a_rejected_conversion_are_refused_with_a_warning(manager_browser):
    event = EventRecordFactory(status="rejected", status_reason="conversion_rejected")
    Conversion.objects.update(status="rejected")
    fine = EventRecordFactory(status="pending")

    page = act(manager_browser, EVENT_RECORDS, "approve_selected", [event, fine])
    assert "1 cannot be" in page.content.decode()

    done = act(manager_browser, EVENT_RECORDS, "approve_selected", [event, fine], confirm="yes")

    event.refresh_from_db()
    fine.refresh_from_db()
    assert (event.status, fine.status) == ("rejected", "approved")
    messages = [str(m) for m in done.wsgi_request._messages]
    assert messages[0] == "1 event records set approved."
    assert messages[1].startswith(f"1 refused: #{event.pk}: ")


def test_analysts_are_refused_the_status_actions():
    conversion = ConversionFactory()
    browser = admin_client_for(analyst())

    listing = browser.get(CONVERSIONS, {"period": "all"}).content.decode()
    assert "approve_selected" not in listing
    assert 'name="_selected_action"' not in listing

    response = act(
        browser, CONVERSIONS, "reject_selected", [conversion], confirm="yes", status_reason="x"
    )

    assert response.status_code in (200, 302)
    assert Conversion.objects.get().status == "approved"
    assert not StatusChange.objects.exists()


def test_the_managers_list_offers_the_actions_and_shows_the_status_column(manager_browser):
    ConversionFactory(status="pending", status_reason="cap_reached")

    html = manager_browser.get(CONVERSIONS, {"period": "all"}).content.decode()

    for action in ("approve_selected", "reject_selected", "set_pending_selected"):
        assert f'value="{action}"' in html
    assert '<span class="ct-status ct-status-pending" title="cap_reached">pending</span>' in html
    assert "status__exact=rejected" in html  # the status filter


def test_a_records_page_shows_its_status_history_oldest_first(manager_browser, client):
    conversion = ConversionFactory()
    event = EventRecordFactory(conversion=conversion, event=EventFactory(offer=conversion.offer))
    client.get(
        "/postback/status",
        {
            "secure": conversion.offer.advertiser.postback_token,
            "transaction_id": conversion.click.transaction_id,
            "status": "rejected",
            "reason": "refund",
        },
    )
    act(manager_browser, CONVERSIONS, "approve_selected", [conversion], confirm="yes")

    page = manager_browser.get(f"{CONVERSIONS}{conversion.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Status history" in html
    postback_at = html.index("refund")
    admin_at = html.index(">Admin<")
    assert postback_at < admin_at

    event_page = admin_client_for(analyst()).get(f"{EVENT_RECORDS}{event.pk}/change/")
    text = event_page.content.decode()
    assert "conversion_rejected" in text and "conversion_approved" in text
    assert ">Rule<" in text


def test_the_postback_log_shows_status_postbacks_with_their_outcome(manager_browser, client):
    conversion = ConversionFactory()
    params = {
        "secure": conversion.offer.advertiser.postback_token,
        "transaction_id": conversion.click.transaction_id,
    }
    client.get("/postback/status", params | {"status": "rejected"})
    client.get("/postback/status", params | {"status": "approved"})

    html = manager_browser.get(
        "/admin/tracking/postbacklog/", {"period": "all", "type__exact": "status"}
    ).content.decode()

    # The reason's label, its code on hover (the admin's reason labels).
    assert (
        '<span class="ct-reason ct-reason-accepted" title="updated">Status updated</span>' in html
    )
    assert (
        '<span class="ct-reason ct-reason-rejected" title="invalid_transition">'
        "Invalid status transition</span>" in html
    )
