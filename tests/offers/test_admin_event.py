"""Events from the offer's Revenue & Payout tab: create, edit, delete, and the roles."""

import html
from decimal import Decimal

import pytest

from offers.models import Event
from offers.postback_urls import event_postback_url
from tests.factories import EventFactory, EventRecordFactory, OfferFactory

pytestmark = pytest.mark.django_db

SPEC_LABELS = [
    "Event name",
    "Revenue type",
    "Revenue value",
    "Payout type",
    "Payout value",
    "Parameter mapping",
    "Allow multiple events with the same click ID",
]


def event_form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "purchase",
        "revenue_type": "CPS",
        "revenue_value": "30",
        "payout_type": "CPA",
        "payout_value": "1.50",
        # The AppsFlyer preset, as the preset button fills it.
        "parameters__transaction_id": "{clickid}",
        "parameters__amount": "{event_revenue}",
        "parameters__currency": "{event_revenue_currency}",
        "parameters__adv_sub": "",
    }
    data.update(overrides)
    return data


def test_event_changelist_and_search_work(manager_admin):
    wanted = EventFactory(name="first_purchase")
    EventFactory(name="level_10")

    listed = manager_admin.get("/admin/offers/event/")
    found = manager_admin.get("/admin/offers/event/", {"q": "first"})
    by_id = manager_admin.get("/admin/offers/event/", {"q": str(wanted.pk)})

    assert listed.status_code == 200
    assert len(listed.context["cl"].result_list) == 2
    assert list(found.context["cl"].result_list) == [wanted]
    assert wanted in by_id.context["cl"].result_list


def test_the_create_form_asks_exactly_the_spec_fields(manager_admin):
    offer = OfferFactory()

    response = manager_admin.get(f"/admin/offers/event/add/?offer={offer.pk}")

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert [form.fields[name].label for name in form.fields] == SPEC_LABELS
    page = response.content.decode()
    assert offer.name in page
    for preset in ["Generic", "AppsFlyer", "Adjust"]:
        assert f">{preset}</button>" in page
    for parameter in ["transaction_id", "amount", "currency", "adv_sub", "adv_sub5"]:
        assert f"<code>{parameter}</code>" in page


def test_creating_an_event_returns_to_the_tab_with_its_url(manager_admin):
    offer = OfferFactory()

    response = manager_admin.post(f"/admin/offers/event/add/?offer={offer.pk}", event_form())

    event = Event.objects.get(offer=offer)
    assert response.status_code == 302
    assert response["Location"] == (
        f"/admin/offers/offer/{offer.pk}/change/?event={event.pk}#revenue-payout"
    )
    assert event.parameters == {
        "transaction_id": "{clickid}",
        "amount": "{event_revenue}",
        "currency": "{event_revenue_currency}",
    }
    assert (event.revenue_type, event.revenue_value) == ("CPS", Decimal("30.00"))
    assert event.allow_multiple is False
    tab = manager_admin.get(response["Location"]).content.decode()
    assert f"(event ID {event.pk}) was created" in tab
    assert html.escape(event_postback_url(event)) in tab
    assert f'data-event-row="{event.pk}" class="ct-new"' in tab


def test_create_and_add_another_stays_on_the_same_offer(manager_admin):
    offer = OfferFactory()

    response = manager_admin.post(
        f"/admin/offers/event/add/?offer={offer.pk}", event_form(_addanother="1")
    )

    assert response["Location"] == f"/admin/offers/event/add/?offer={offer.pk}"


def test_a_duplicate_event_name_on_the_offer_is_a_form_error(manager_admin):
    offer = OfferFactory()
    EventFactory(offer=offer, name="purchase")

    duplicate = manager_admin.post(f"/admin/offers/event/add/?offer={offer.pk}", event_form())
    other_case = manager_admin.post(
        f"/admin/offers/event/add/?offer={offer.pk}", event_form(name="Purchase")
    )

    assert duplicate.status_code == 200
    assert "already has an event with this name" in duplicate.content.decode()
    assert other_case.status_code == 302
    assert Event.objects.filter(offer=offer).count() == 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("revenue_value", "120", "percentage"),
        ("payout_value", "-1", "negative"),
        ("name", "", "required"),
        ("parameters__adv_sub", "has space", "placeholder"),
    ],
)
def test_invalid_events_are_refused_with_an_explanation(manager_admin, field, value, message):
    offer = OfferFactory()

    response = manager_admin.post(
        f"/admin/offers/event/add/?offer={offer.pk}", event_form(**{field: value})
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Event.objects.exists()


def test_an_event_added_from_the_events_list_asks_for_its_offer(manager_admin):
    offer = OfferFactory()

    page = manager_admin.get("/admin/offers/event/add/")
    response = manager_admin.post("/admin/offers/event/add/", event_form(offer=str(offer.pk)))

    assert list(page.context["adminform"].form.fields)[0] == "offer"
    assert response.status_code == 302
    assert Event.objects.get().offer == offer


def test_editing_an_event_returns_to_the_offer(manager_admin):
    event = EventFactory(name="purchase")

    page = manager_admin.get(f"/admin/offers/event/{event.pk}/change/")
    response = manager_admin.post(
        f"/admin/offers/event/{event.pk}/change/",
        event_form(name="purchase", revenue_type="CPA", revenue_value="2.75", allow_multiple="on"),
    )

    assert page.status_code == 200
    assert "offer" not in page.context["adminform"].form.fields
    assert response["Location"].endswith("#revenue-payout")
    event.refresh_from_db()
    assert (event.revenue_value, event.allow_multiple) == (Decimal("2.75"), True)


def test_deleting_an_event_without_records_works(manager_admin):
    event = EventFactory()

    confirm = manager_admin.get(f"/admin/offers/event/{event.pk}/delete/")
    response = manager_admin.post(f"/admin/offers/event/{event.pk}/delete/")

    assert "Yes, delete the event" in confirm.content.decode()
    assert response["Location"] == f"/admin/offers/offer/{event.offer_id}/change/#revenue-payout"
    assert not Event.objects.exists()


def test_deleting_an_event_with_records_is_refused_with_an_explanation(manager_admin):
    record = EventRecordFactory()
    event = record.event

    confirm = manager_admin.get(f"/admin/offers/event/{event.pk}/delete/")
    response = manager_admin.post(f"/admin/offers/event/{event.pk}/delete/", follow=True)

    assert "cannot be deleted" in confirm.content.decode()
    assert "Yes, delete the event" not in confirm.content.decode()
    assert "has recorded postbacks and cannot be deleted" in response.content.decode()
    assert Event.objects.filter(pk=event.pk).exists()


def test_analyst_cannot_create_edit_or_delete_events(analyst_admin):
    event = EventFactory()

    assert analyst_admin.get(f"/admin/offers/event/add/?offer={event.offer_id}").status_code == 403
    assert analyst_admin.get(f"/admin/offers/event/{event.pk}/change/").status_code == 200
    assert (
        analyst_admin.post(f"/admin/offers/event/{event.pk}/change/", event_form()).status_code
        == 403
    )
    assert analyst_admin.post(f"/admin/offers/event/{event.pk}/delete/").status_code == 403
    assert Event.objects.filter(pk=event.pk, name=event.name).exists()


def test_the_events_list_has_no_bulk_delete_that_would_bypass_the_service(manager_admin):
    EventFactory()

    response = manager_admin.get("/admin/offers/event/")

    assert "delete_selected" not in response.content.decode()


def test_an_event_allowing_multiple_without_adv_sub_is_saved_with_a_warning(manager_admin):
    offer = OfferFactory(parameters={})

    response = manager_admin.post(
        f"/admin/offers/event/add/?offer={offer.pk}",
        event_form(allow_multiple="on", parameters__adv_sub=""),
        follow=True,
    )

    page = response.content.decode()
    assert Event.objects.filter(offer=offer, allow_multiple=True).exists()
    assert "every resend of the same order is recorded again" in page
    assert 'class="warning"' in page  # Django's warning message, above the offer page
    assert "data-event-warning" in page  # and beside the event's URL in the events table


def test_an_event_allowing_multiple_with_adv_sub_saves_without_a_warning(manager_admin):
    offer = OfferFactory(parameters={})

    response = manager_admin.post(
        f"/admin/offers/event/add/?offer={offer.pk}",
        event_form(allow_multiple="on", parameters__adv_sub="{af_order_id}"),
        follow=True,
    )

    assert "recorded again" not in response.content.decode()


def test_the_event_form_shows_what_the_offer_maps_and_how_to_warn(manager_admin):
    offer = OfferFactory(parameters={"adv_sub": "{order_id}"})

    page = manager_admin.get(f"/admin/offers/event/add/?offer={offer.pk}").content.decode()

    assert 'placeholder="from the offer: {order_id}"' in page
    assert "data-event-mapping" in page
    assert "data-double-count-warning" in page
    assert 'data-offer-transaction="REPLACE"' in page
    assert "{af_order_id}" in page  # the AppsFlyer preset's order ID


def test_the_events_list_says_allow_multiple_in_full_on_hover_and_flags_double_counting(
    manager_admin,
):
    offer = OfferFactory(parameters={})
    EventFactory(offer=offer, name="purchase", allow_multiple=True, parameters={})
    EventFactory(
        offer=offer, name="renewal", allow_multiple=True, parameters={"adv_sub": "{order_id}"}
    )

    page = manager_admin.get("/admin/offers/event/").content.decode()

    assert ">Allow multiple<" in page
    assert 'title="Allow multiple events with the same click ID"' in page
    assert page.count("no adv_sub: resends count") == 1
