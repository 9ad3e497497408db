"""The read-only admin lists: clicks, conversions, event records and the postback log."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from offers.models import Event
from tests.factories import (
    ClickFactory,
    ConversionFactory,
    EventFactory,
    EventRecordFactory,
    OfferFactory,
    PostbackLogFactory,
    PublisherFactory,
    UserFactory,
    account_manager,
    analyst,
)
from tests.markers import requires_postgresql
from tracking import admin as tracking_admin
from tracking.models import Click, Conversion, EventRecord, PostbackLog, Reason

pytestmark = pytest.mark.django_db

MODELS = ["click", "conversion", "eventrecord", "postbacklog"]


def changelist(client, model: str, **params) -> str:  # noqa: ANN001
    response = client.get(f"/admin/tracking/{model}/", params)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def listed_ids(html: str) -> set[int]:
    return {int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html)} | {
        int(pk) for pk in re.findall(r"/admin/tracking/\w+/(\d+)/change/", html)
    }


def totals_rows(html: str) -> list[list[str]]:
    table = re.search(r'<table class="ct-totals".*?</table>', html, re.S)
    assert table, "no totals table"
    return [
        re.findall(r"<t[hd][^>]*>([^<]*)</t[hd]>", row)
        for row in re.findall(r'<tr class="ct-total-row">(.*?)</tr>', table.group(0), re.S)
    ]


@pytest.fixture
def admin_client(client):  # noqa: ANN001
    client.force_login(UserFactory(is_superuser=True))
    return client


@pytest.fixture
def analyst_browser(client):  # noqa: ANN001
    client.force_login(analyst())
    return client


@pytest.fixture
def recorded():
    offer = OfferFactory()
    other_offer = OfferFactory()
    publisher = PublisherFactory()
    event = EventFactory(offer=offer)
    conversion = ConversionFactory(
        click__offer=offer, click__publisher=publisher, adv_sub="ORDER-1"
    )
    other = ConversionFactory(click__offer=other_offer, revenue=Decimal("9.99"), currency="EUR")
    record = EventRecordFactory(conversion=conversion, event=event, adv_sub="ORDER-2")
    log = PostbackLogFactory(reason=Reason.NO_CONVERSION, status_code=422, offer=offer)
    accepted = PostbackLogFactory(
        reason=Reason.ACCEPTED, status_code=200, conversion=conversion, offer=offer
    )
    return {
        "offer": offer,
        "other_offer": other_offer,
        "publisher": publisher,
        "event": event,
        "conversion": conversion,
        "other": other,
        "record": record,
        "log": log,
        "accepted": accepted,
    }


@pytest.mark.parametrize("model", MODELS)
def test_every_list_shows_for_superusers_analysts_and_account_managers(client, recorded, model):
    for user in (UserFactory(is_superuser=True), analyst(), account_manager()):
        client.force_login(user)
        html = changelist(client, model)
        assert "Export CSV" in html
        assert "Totals of what is filtered" in html


@pytest.mark.parametrize("model", MODELS)
def test_nobody_adds_changes_or_deletes_recorded_rows_not_even_a_superuser(
    admin_client, recorded, model
):
    pk = {
        "click": recorded["conversion"].click_id,
        "conversion": recorded["conversion"].pk,
        "eventrecord": recorded["record"].pk,
        "postbacklog": recorded["log"].pk,
    }[model]

    assert admin_client.get(f"/admin/tracking/{model}/add/").status_code == 403
    detail = admin_client.get(f"/admin/tracking/{model}/{pk}/change/")
    assert detail.status_code == 200
    assert 'type="submit"' not in detail.content.decode().split('id="content-main"')[1]
    assert admin_client.post(f"/admin/tracking/{model}/{pk}/change/", {}).status_code == 403
    assert admin_client.get(f"/admin/tracking/{model}/{pk}/delete/").status_code == 403
    html = changelist(admin_client, model)
    assert "delete_selected" not in html
    assert f"/admin/tracking/{model}/add/" not in html


@pytest.mark.parametrize("model", MODELS)
def test_a_staff_user_without_a_role_cannot_see_the_lists(client, model):
    client.force_login(UserFactory())
    assert client.get(f"/admin/tracking/{model}/").status_code == 403
    assert client.get(f"/admin/tracking/{model}/export.csv").status_code == 403


def test_totals_count_and_add_money_per_currency_for_what_is_filtered(admin_client, recorded):
    ConversionFactory(
        click__offer=recorded["offer"], revenue=Decimal("1.10"), payout=Decimal("2.20")
    )

    everything = totals_rows(changelist(admin_client, "conversion"))
    assert everything == [
        ["approved", "EUR", "1", "9.99 EUR", "3.00 EUR", "6.99 EUR"],
        ["approved", "USD", "2", "6.10 USD", "5.20 USD", "0.90 USD"],
    ]
    one_offer = totals_rows(
        changelist(admin_client, "conversion", offer__id__exact=recorded["other_offer"].pk)
    )
    assert one_offer == [["approved", "EUR", "1", "9.99 EUR", "3.00 EUR", "6.99 EUR"]]
    by_publisher = totals_rows(
        changelist(admin_client, "conversion", publisher__id__exact=recorded["publisher"].pk)
    )
    assert by_publisher == [["approved", "USD", "1", "5.00 USD", "3.00 USD", "2.00 USD"]]


def test_event_record_totals_follow_the_event_filter(admin_client, recorded):
    EventRecordFactory(revenue=Decimal("4.00"), payout=Decimal("1.00"))

    rows = totals_rows(
        changelist(admin_client, "eventrecord", event__id__exact=recorded["event"].pk)
    )
    assert rows == [["approved", "USD", "1", "2.00 USD", "1.00 USD", "1.00 USD"]]
    assert totals_rows(changelist(admin_client, "eventrecord")) == [
        ["approved", "USD", "2", "6.00 USD", "2.00 USD", "4.00 USD"]
    ]


def test_the_postback_log_totals_count_each_reason(admin_client, recorded):
    html = changelist(admin_client, "postbacklog")
    assert totals_rows(html) == [["all", "2"]]
    assert '<th scope="row"><span title="no_conversion">No conversion</span></th><td>1</td>' in html
    assert '<th scope="row"><span title="accepted">Accepted</span></th><td>1</td>' in html


def test_lists_filter_by_offer_advertiser_publisher_event_and_reason(admin_client, recorded):
    conversion, other = recorded["conversion"], recorded["other"]
    assert listed_ids(
        changelist(admin_client, "conversion", offer__id__exact=recorded["offer"].pk)
    ) == {conversion.pk}
    assert listed_ids(
        changelist(
            admin_client,
            "conversion",
            offer__advertiser__id__exact=recorded["other_offer"].advertiser_id,
        )
    ) == {other.pk}
    assert listed_ids(
        changelist(admin_client, "click", publisher__id__exact=recorded["publisher"].pk)
    ) == {conversion.click_id}
    assert listed_ids(
        changelist(admin_client, "eventrecord", event__id__exact=recorded["event"].pk)
    ) == {recorded["record"].pk}
    assert listed_ids(
        changelist(admin_client, "postbacklog", reason__exact=Reason.NO_CONVERSION)
    ) == {recorded["log"].pk}


def test_search_finds_exact_transaction_ids_and_adv_subs(admin_client, recorded):
    conversion = recorded["conversion"]
    txid = conversion.click.transaction_id

    assert listed_ids(changelist(admin_client, "conversion", q=txid)) == {conversion.pk}
    assert listed_ids(changelist(admin_client, "conversion", q="ORDER-1")) == {conversion.pk}
    assert listed_ids(changelist(admin_client, "conversion", q="ORDER")) == set()
    assert listed_ids(changelist(admin_client, "eventrecord", q="ORDER-2")) == {
        recorded["record"].pk
    }
    assert listed_ids(changelist(admin_client, "click", q=txid)) == {conversion.click_id}
    log = recorded["log"]
    assert listed_ids(changelist(admin_client, "postbacklog", q=log.transaction_id)) == {log.pk}


def test_the_lists_show_the_last_30_days_unless_another_period_is_chosen(admin_client):
    recent = ConversionFactory()
    old = ConversionFactory(created_at=timezone.now() - timedelta(days=45))

    default = changelist(admin_client, "conversion")
    assert listed_ids(default) == {recent.pk}
    assert totals_rows(default) == [["approved", "USD", "1", "5.00 USD", "3.00 USD", "2.00 USD"]]
    assert listed_ids(changelist(admin_client, "conversion", period="all")) == {recent.pk, old.pk}
    day = timezone.localtime(old.created_at).date().isoformat()
    assert listed_ids(changelist(admin_client, "conversion", since=day, until=day)) == {old.pk}


def test_an_invalid_period_is_refused_without_an_error_page(admin_client):
    response = admin_client.get("/admin/tracking/conversion/", {"since": "not-a-date"})
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_pagination_counts_at_most_the_cap(admin_client, monkeypatch):
    monkeypatch.setattr(tracking_admin, "LIST_COUNT_CAP", 3)
    ClickFactory.create_batch(5)

    paginator = tracking_admin.CappedPaginator(Click.objects.all(), 2)
    assert paginator.count == 4  # the cap plus one: "more than the cap"
    html = changelist(admin_client, "click")
    assert "More than 3 rows match" in html
    assert "more than 3 results" in html
    assert "more than 3 clicks" in html
    assert "Show all" not in html


@requires_postgresql
def test_the_default_list_page_never_counts_the_whole_table(admin_client):
    EventRecordFactory.create_batch(3)

    with CaptureQueriesContext(connection) as queries:
        changelist(admin_client, "eventrecord")

    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts, "the page counts (capped) for its paginator"
    for sql in counts:
        # Only the capped paginator count (a LIMIT subquery) touches the records; the
        # totals come from the hourly totals.
        assert "LIMIT" in sql.upper(), sql
    assert any("tracking_hourlytotal" in q["sql"] for q in queries.captured_queries)
    for model_admin in (
        tracking_admin.ClickAdmin,
        tracking_admin.ConversionAdmin,
        tracking_admin.EventRecordAdmin,
        tracking_admin.PostbackLogAdmin,
    ):
        assert model_admin.show_full_result_count is False
        assert model_admin.paginator is tracking_admin.CappedPaginator
        assert model_admin.list_select_related


def test_columns_are_rendered_with_their_links_and_badges(admin_client, recorded):
    html = changelist(admin_client, "postbacklog")
    assert (
        '<span class="ct-reason ct-reason-rejected" title="no_conversion">No conversion</span>'
        in html
    )
    assert '<span class="ct-reason ct-reason-accepted" title="accepted">Accepted</span>' in html
    records = changelist(admin_client, "eventrecord")
    transaction_id = recorded["conversion"].click.transaction_id
    # Cut short by CSS, whole on hover and in the text a selection copies.
    assert f'<span class="ct-code" title="{transaction_id}">{transaction_id}</span>' in records
    assert '<span class="ct-profit">1.00</span>' in records


def test_each_list_runs_a_fixed_number_of_queries(admin_client, django_assert_max_num_queries):
    for _ in range(20):
        EventRecordFactory()
    with django_assert_max_num_queries(12):
        changelist(admin_client, "eventrecord")


def test_reports_are_linked_from_every_list(admin_client):
    for model in MODELS:
        assert "/admin/tracking/eventrecord/reports/" in changelist(admin_client, model)


def test_recorded_models_are_all_registered():
    from django.contrib import admin

    for model in (Click, Conversion, EventRecord, PostbackLog):
        assert admin.site.is_registered(model)


def test_amounts_are_grouped_with_two_decimals_and_the_currency_beside_totals(admin_client):
    ConversionFactory(
        revenue=Decimal("12345.60"), payout=Decimal("1000.00"), amount=Decimal("49.9000")
    )

    html = changelist(admin_client, "conversion")

    assert totals_rows(html) == [
        ["approved", "USD", "1", "12,345.60 USD", "1,000.00 USD", "11,345.60 USD"]
    ]
    assert '<td class="field-revenue_display">12,345.60</td>' in html
    assert '<td class="field-amount_display">49.90</td>' in html
    assert "49.9000" not in html


def test_the_postback_log_shows_amount_and_adv_sub_it_received(admin_client):
    PostbackLogFactory(params={"transaction_id": "x", "amount": "19.99", "adv_sub": "ORD-7"})

    html = changelist(admin_client, "postbacklog")

    assert '<td class="field-amount_param">19.99</td>' in html
    assert '<span class="ct-code" title="ORD-7">ORD-7</span>' in html


@pytest.mark.parametrize(
    ("model", "title"),
    [
        ("click", "Clicks"),
        ("conversion", "Conversions"),
        ("eventrecord", "Event records"),
        ("postbacklog", "Postback logs"),
    ],
)
def test_a_list_is_titled_by_what_it_lists(analyst_browser, model, title):
    html = changelist(analyst_browser, model)

    assert f"<h1>{title}</h1>" in html
    assert "to view" not in html


def test_a_postback_log_row_reads_in_words_with_its_parameters_in_a_table(admin_client):
    log = PostbackLogFactory(
        reason=Reason.INVALID_SECURE,
        status_code=403,
        params={"transaction_id": "abc", "secure": "AbCd••••", "amount": "5"},
        secure_masked="AbCd••••",
        ip="203.0.113.7",
    )

    html = admin_client.get(f"/admin/tracking/postbacklog/{log.pk}/change/").content.decode()

    assert "IP address" in html and ">Ip:<" not in html
    assert "Token (masked)" in html and "Secure masked" not in html
    assert 'title="invalid_secure">Invalid secure token</span>' in html
    assert '<table class="ct-params">' in html
    assert '<tr><th scope="row"><code>amount</code></th><td><code>5</code></td></tr>' in html
    assert '{"transaction_id"' not in html


def test_a_record_page_shows_amounts_with_two_decimals(admin_client):
    record = EventRecordFactory(amount=Decimal("1234.5000"))

    html = admin_client.get(f"/admin/tracking/eventrecord/{record.pk}/change/").content.decode()

    assert "1,234.50" in html
    assert "1234.5000" not in html


@pytest.mark.parametrize("model", MODELS)
def test_the_reports_link_keeps_the_lists_offer_and_dates(admin_client, model):
    offer = OfferFactory()

    html = changelist(
        admin_client, model, offer__id__exact=offer.pk, since="2026-10-01", until="2026-10-31"
    )

    assert (
        f'href="/admin/tracking/eventrecord/reports/?offer={offer.pk}'
        '&amp;since=2026-10-01&amp;until=2026-10-31"' in html
    )


def test_the_reports_link_of_an_unfiltered_list_opens_the_default_period(admin_client):
    html = changelist(admin_client, "conversion")

    assert 'href="/admin/tracking/eventrecord/reports/"' in html


def test_a_log_row_of_a_deleted_event_still_lists(admin_client):
    event = EventFactory()
    log = PostbackLogFactory(offer=event.offer, event=event)
    Event.objects.filter(pk=event.pk).delete()

    html = changelist(admin_client, "postbacklog")

    assert f"event {event.pk} (deleted)" in html
    assert log.pk in listed_ids(html)
