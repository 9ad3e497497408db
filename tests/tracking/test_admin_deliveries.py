"""The delivery log in the admin and the publisher page's postbacks inline with its Test
button (a real publisher server on loopback)."""

import pytest
from pytest_httpserver import HTTPServer

from offers.models import PublisherPostback
from offers.outbound_urls import MACROS
from tests.factories import ConversionFactory, OfferFactory, PublisherFactory
from tracking.deliveries import deliveries_create
from tracking.models import Delivery

pytestmark = pytest.mark.django_db

SECRET_URL = "https://p.example/pb?key=s3cr3t-value&click={transaction_id}"


def inline(**fields: str) -> dict[str, str]:
    """The publisher form with one new postback in its inline."""
    return {
        "postbacks-TOTAL_FORMS": "1",
        "postbacks-INITIAL_FORMS": "0",
        **{f"postbacks-0-{name}": value for name, value in fields.items()},
    }


def test_an_account_manager_adds_a_postback_on_the_publisher_page(manager_admin):
    publisher, offer = PublisherFactory(name="MediaHub"), OfferFactory()
    page = manager_admin.get(f"/admin/offers/publisher/{publisher.pk}/change/")

    saved = manager_admin.post(
        f"/admin/offers/publisher/{publisher.pk}/change/",
        {
            "name": "MediaHub",
            **inline(
                offer=str(offer.pk),
                trigger="conversion",
                url="https://p.example/pb?c={transaction_id}",
                enabled="on",
            ),
        },
    )

    assert page.status_code == 200
    # The macro list under the URL field.
    assert all(f"{{{name}}}" in page.content.decode() for name in MACROS)
    assert saved.status_code == 302
    postback = PublisherPostback.objects.get()
    assert (postback.publisher, postback.offer, postback.trigger) == (
        publisher,
        offer,
        "conversion",
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://p.example/pb?r={revenue}", "Unknown macro {revenue}"),
        ("https://{aff_sub}.example/pb", "not in the scheme, host or port"),
        ("gopher://p.example/pb", "http:// or https://"),
    ],
)
def test_the_publisher_page_refuses_a_url_that_cannot_be_sent(manager_admin, url, message):
    publisher = PublisherFactory(name="MediaHub")

    page = manager_admin.post(
        f"/admin/offers/publisher/{publisher.pk}/change/",
        {"name": "MediaHub", **inline(trigger="conversion", url=url, enabled="on")},
    )

    assert page.status_code == 200
    assert message in page.content.decode()
    assert not PublisherPostback.objects.exists()


def test_the_test_button_sends_one_request_and_shows_the_answer(
    manager_admin, httpserver: HTTPServer
):
    offer = OfferFactory(name="Summer")
    postback = PublisherPostback.objects.create(
        publisher=PublisherFactory(),
        offer=offer,
        trigger="conversion",
        url=httpserver.url_for("/pb") + "?o={offer_id}&d={delivery_id}&secret=abc",
    )
    httpserver.expect_request("/pb").respond_with_data("thanks, got it", status=200)
    page = manager_admin.get(f"/admin/offers/publisher/{postback.publisher_id}/change/")
    assert f"/admin/offers/publisherpostback/{postback.pk}/test/" in page.content.decode()

    answer = manager_admin.post(f"/admin/offers/publisherpostback/{postback.pk}/test/")

    assert answer.status_code == 200
    body = answer.content.decode()
    assert "Delivered" in body and "thanks, got it" in body
    assert "secret=***" in body
    ((request, _),) = httpserver.log
    assert request.args["o"] == str(offer.pk) and request.args["d"] == "0"
    assert not Delivery.objects.exists()  # a test records nothing


def test_analysts_cannot_press_the_test_button(analyst_admin):
    postback = PublisherPostback.objects.create(
        publisher=PublisherFactory(), trigger="conversion", url="https://p.example/pb"
    )

    answer = analyst_admin.post(f"/admin/offers/publisherpostback/{postback.pk}/test/")

    assert answer.status_code == 403


def test_a_disabled_postback_is_flagged_on_the_publisher_page(manager_admin):
    postback = PublisherPostback.objects.create(
        publisher=PublisherFactory(),
        trigger="conversion",
        url="https://p.example/pb",
        enabled=False,
        disabled_reason="Disabled automatically: its last 10 deliveries all failed.",
    )

    page = manager_admin.get(f"/admin/offers/publisher/{postback.publisher_id}/change/")

    assert "its last 10 deliveries all failed" in page.content.decode()


def queued() -> Delivery:
    conversion = ConversionFactory()
    PublisherPostback.objects.create(
        publisher=conversion.publisher, trigger="conversion", url=SECRET_URL
    )
    return deliveries_create(record=conversion)[0]


def test_delivery_log_changelist_filters_search_and_detail_work(analyst_admin):
    delivery, other = queued(), queued()

    listed = analyst_admin.get("/admin/tracking/delivery/")
    found = analyst_admin.get("/admin/tracking/delivery/", {"q": delivery.transaction_id})
    by_id = analyst_admin.get("/admin/tracking/delivery/", {"q": str(other.pk)})
    filtered = analyst_admin.get(
        "/admin/tracking/delivery/",
        {"outcome__exact": "queued", "publisher__id__exact": other.publisher_id},
    )
    detail = analyst_admin.get(f"/admin/tracking/delivery/{delivery.pk}/change/")

    assert listed.status_code == 200
    assert len(listed.context["cl"].result_list) == 2
    assert list(found.context["cl"].result_list) == [delivery]
    assert list(by_id.context["cl"].result_list) == [other]
    assert list(filtered.context["cl"].result_list) == [other]
    assert detail.status_code == 200
    assert "key=***" in detail.content.decode()
    for page in (listed, detail):
        assert "s3cr3t" not in page.content.decode()
    assert analyst_admin.get("/admin/tracking/delivery/add/").status_code == 403


def test_account_managers_resend_from_the_delivery_log(manager_admin, analyst_admin):
    delivery = queued()
    Delivery.objects.filter(pk=delivery.pk).update(outcome="failed", next_attempt_at=None)
    form = {"action": "resend", "_selected_action": [str(delivery.pk)]}

    refused = analyst_admin.post("/admin/tracking/delivery/", form)
    assert Delivery.objects.get().outcome == "failed"
    done = manager_admin.post("/admin/tracking/delivery/", form)

    assert refused.status_code in (200, 302, 403)
    assert done.status_code == 302
    resent = Delivery.objects.get()
    assert (resent.pk, resent.outcome) == (delivery.pk, "queued")
