"""Check 3a over HTTP (docs/postbacks.md): an advertiser's IP allow-list admits postbacks
from its listed addresses and ranges only, on the ordinary and the one-statement path."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from offers.models import Advertiser
from tests.factories import AdvertiserFactory, ClickFactory, ConversionFactory, EventFactory
from tracking.models import Conversion, EventRecord, PostbackLog

pytestmark = pytest.mark.django_db

LISTED = ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]


@pytest.fixture
def advertiser():
    return AdvertiserFactory(allowed_ips=LISTED)


def conversion_from(client, click, ip: str, **headers: str):  # noqa: ANN001
    params = {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
    }
    return client.get("/postback", params, REMOTE_ADDR=ip, **headers)


@pytest.mark.parametrize(
    "ip", ["203.0.113.9", "198.51.100.7", "2001:db8::5", "::ffff:203.0.113.200"]
)
def test_a_postback_from_a_listed_address_or_range_is_accepted(client, advertiser, ip):
    click = ClickFactory(offer__advertiser=advertiser)

    response = conversion_from(client, click, ip)

    assert (response.status_code, response.json()["reason"]) == (200, "accepted")
    assert Conversion.objects.get().click == click


@pytest.mark.parametrize("ip", ["192.0.2.1", "198.51.100.8", "2001:db9::1", "::ffff:192.0.2.1"])
def test_a_postback_from_elsewhere_is_refused_logged_and_records_nothing(client, advertiser, ip):
    click = ClickFactory(offer__advertiser=advertiser)

    response = conversion_from(client, click, ip)

    assert response.status_code == 403
    body = response.json()
    assert (body["status"], body["reason"]) == ("rejected", "ip_not_allowed")
    assert "listed addresses" in body["message"]
    assert not Conversion.objects.exists()
    log = PostbackLog.objects.get()
    assert (log.reason, log.status_code, log.advertiser_id) == (
        "ip_not_allowed",
        403,
        advertiser.pk,
    )
    assert log.conversion_id is None


def test_an_unparseable_client_address_never_matches(client, advertiser):
    click = ClickFactory(offer__advertiser=advertiser)

    response = conversion_from(client, click, "not-an-address")

    assert response.json()["reason"] == "ip_not_allowed"


def test_an_empty_list_admits_any_address(client):
    click = ClickFactory()

    assert conversion_from(client, click, "192.0.2.1").status_code == 200


def test_events_are_checked_too(client, advertiser):
    conversion = ConversionFactory(click__offer__advertiser=advertiser)
    event = EventFactory(offer=conversion.offer)
    params = {
        "secure": advertiser.postback_token,
        "transaction_id": conversion.click.transaction_id,
        "event_id": event.pk,
    }

    refused = client.get("/postback", params, REMOTE_ADDR="192.0.2.1")
    accepted = client.get("/postback", params, REMOTE_ADDR="203.0.113.1")

    assert (refused.status_code, refused.json()["reason"]) == (403, "ip_not_allowed")
    assert accepted.status_code == 200
    assert EventRecord.objects.count() == 1


def test_the_list_is_checked_after_the_token_and_before_the_click(client, advertiser):
    unknown = {"secure": advertiser.postback_token, "transaction_id": "x" * 32}
    bad_token = {"secure": "z" * 43, "transaction_id": "x" * 32}

    assert client.get("/postback", unknown, REMOTE_ADDR="192.0.2.1").json()["reason"] == (
        "ip_not_allowed"
    )
    assert client.get("/postback", unknown, REMOTE_ADDR="203.0.113.1").json()["reason"] == (
        "unknown_transaction"
    )
    assert client.get("/postback", bad_token, REMOTE_ADDR="192.0.2.1").json()["reason"] == (
        "invalid_secure"
    )


def test_the_proxys_entry_of_x_forwarded_for_is_the_client(client, advertiser, settings):
    settings.USE_X_FORWARDED_FOR = True
    first, second = ClickFactory.create_batch(2, offer__advertiser=advertiser)

    # A client writing a listed address in front of its own does not pass.
    spoofed = conversion_from(
        client, first, "10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9, 192.0.2.1"
    )
    proxied = conversion_from(
        client, second, "10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.9"
    )

    assert (spoofed.status_code, proxied.status_code) == (403, 200)


def test_an_edit_to_the_list_counts_from_the_next_postback(client, advertiser):
    first, second = ClickFactory.create_batch(2, offer__advertiser=advertiser)
    assert conversion_from(client, first, "192.0.2.1").status_code == 403

    Advertiser.objects.filter(pk=advertiser.pk).update(allowed_ips=["192.0.2.0/24"])

    assert conversion_from(client, first, "192.0.2.1").status_code == 200
    assert conversion_from(client, second, "203.0.113.9").status_code == 403


def test_the_one_statement_path_refuses_an_address_the_list_does_not_hold(client, advertiser):
    # The first postbacks fill this process's cache, so the next ones are tried in one
    # statement (on PostgreSQL): the list must refuse there exactly as on the ordinary path.
    warm = ClickFactory(offer__advertiser=advertiser)
    refused, accepted = ClickFactory.create_batch(2, offer=warm.offer)
    assert conversion_from(client, warm, "203.0.113.9").status_code == 200
    offer_id = str(warm.offer_id)

    def send(click, ip: str):  # noqa: ANN001, ANN202
        token = advertiser.postback_token
        params = {"secure": token, "transaction_id": click.transaction_id, "offer_id": offer_id}
        return client.get("/postback", params, REMOTE_ADDR=ip)

    first = send(refused, "192.0.2.1")
    with CaptureQueriesContext(connection) as captured:
        second = send(accepted, "2001:db8::1")
    answers = [first, second]

    if connection.vendor == "postgresql":  # the accepted one was indeed one statement
        assert len([q for q in captured if "SAVEPOINT" not in q["sql"]]) == 1
    assert [a.status_code for a in answers] == [403, 200]
    assert set(Conversion.objects.values_list("click_id", flat=True)) == {warm.pk, accepted.pk}


def test_status_postbacks_are_checked_too(client, advertiser):
    conversion = ConversionFactory(click__offer__advertiser=advertiser)
    params = {
        "secure": advertiser.postback_token,
        "transaction_id": conversion.click.transaction_id,
        "status": "rejected",
    }

    refused = client.get("/postback/status", params, REMOTE_ADDR="192.0.2.1")
    updated = client.get("/postback/status", params, REMOTE_ADDR="203.0.113.1")

    assert (refused.status_code, refused.json()["reason"]) == (403, "ip_not_allowed")
    assert PostbackLog.objects.filter(reason="ip_not_allowed", type="status").exists()
    assert updated.json()["reason"] == "updated"
