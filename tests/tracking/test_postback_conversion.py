"""Conversion postbacks through the real endpoint: checks 1–9 of docs/postbacks.md."""

from decimal import Decimal

import pytest
from django.db import connection

from offers.models import MoneyType, Offer
from tests.factories import AdvertiserFactory, ClickFactory, ConversionFactory, OfferFactory
from tracking.models import Conversion, PostbackLog
from tracking.postback import postback_process

pytestmark = pytest.mark.django_db


def conversion_params(click, **extra: str) -> dict[str, str]:
    return {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
        **extra,
    }


def test_conversion_is_accepted_recorded_and_answered_in_json(client):
    click = ClickFactory()

    response = client.get("/postback", conversion_params(click))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    conversion = Conversion.objects.get()
    assert response.json() == {
        "status": "accepted",
        "reason": "accepted",
        "type": "conversion",
        "id": conversion.pk,
        "transaction_id": click.transaction_id,
        "offer_id": click.offer_id,
        "revenue": "5.00",
        "payout": "3.00",
        "currency": "USD",
        "record_status": "approved",
        "record_status_reason": "",
    }
    assert (conversion.click, conversion.offer, conversion.publisher) == (
        click,
        click.offer,
        click.publisher,
    )
    assert (conversion.revenue, conversion.payout) == (Decimal("5.00"), Decimal("3.00"))
    assert conversion.amount is None
    log = PostbackLog.objects.get()
    assert (log.reason, log.status_code, log.conversion_id) == ("accepted", 200, conversion.pk)


def test_postback_answers_at_postback_with_slash_and_at_the_site_root(client):
    clicks = ClickFactory.create_batch(3)

    answers = [
        client.get(path, conversion_params(click))
        for path, click in zip(["/postback", "/postback/", "/"], clicks, strict=True)
    ]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert Conversion.objects.count() == 3


def test_site_root_without_postback_parameters_leads_to_the_admin(client):
    response = client.get("/", {"utm_source": "x"})

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert not PostbackLog.objects.exists()


def test_site_root_with_only_secure_is_a_postback(client):
    response = client.get("/", {"secure": "whatever"})

    assert response.status_code == 400
    assert response.json()["reason"] == "missing_parameter"


def test_form_encoded_post_is_accepted(client):
    click = ClickFactory()

    response = client.post("/postback", conversion_params(click, adv_sub="order-1"))

    assert response.status_code == 200
    assert Conversion.objects.get().adv_sub == "order-1"
    assert PostbackLog.objects.get().method == "POST"


def test_post_body_wins_over_the_query_string(client):
    click = ClickFactory()

    response = client.post(
        "/postback?secure=wrong&transaction_id=nope&adv_sub=query&currency=usd",
        conversion_params(click, adv_sub="body"),
    )

    assert response.status_code == 200, response.json()
    conversion = Conversion.objects.get()
    assert (conversion.adv_sub, conversion.currency) == ("body", "USD")


def test_a_repeated_parameter_counts_with_its_last_value(client):
    click = ClickFactory()
    token = click.offer.advertiser.postback_token

    response = client.get(
        f"/postback?secure=wrong&secure={token}&transaction_id={click.transaction_id}"
        "&adv_sub=first&adv_sub=last"
    )

    assert response.status_code == 200, response.json()
    assert Conversion.objects.get().adv_sub == "last"


def test_other_methods_are_refused_in_json_without_recording(client):
    click = ClickFactory()

    for method in (client.put, client.delete, client.patch, client.head, client.options):
        response = method(
            f"/postback?secure={click.offer.advertiser.postback_token}"
            f"&transaction_id={click.transaction_id}"
        )
        assert response.status_code == 405
        assert response["Allow"] == "GET, POST"
    assert client.put("/postback").json()["reason"] == "method_not_allowed"
    assert not Conversion.objects.exists()


def test_unknown_token_is_403_invalid_secure(client):
    click = ClickFactory()

    response = client.get("/postback", {"secure": "x" * 43, "transaction_id": click.transaction_id})

    assert response.status_code == 403
    assert response.json() == {
        "status": "rejected",
        "reason": "invalid_secure",
        "message": response.json()["message"],
    }
    assert not Conversion.objects.exists()


def test_token_of_another_advertiser_is_403_invalid_secure(client):
    click = ClickFactory()
    other = AdvertiserFactory()

    response = client.get(
        "/postback", {"secure": other.postback_token, "transaction_id": click.transaction_id}
    )

    assert response.status_code == 403
    assert response.json()["reason"] == "invalid_secure"
    assert "another advertiser" in response.json()["message"]
    assert not Conversion.objects.exists()


def test_a_token_differing_only_in_case_is_refused(client):
    click = ClickFactory()
    token = click.offer.advertiser.postback_token

    response = client.get(
        "/postback", {"secure": token.swapcase(), "transaction_id": click.transaction_id}
    )

    assert response.status_code == 403


def test_a_rotated_token_stops_working(client):
    from offers.services import advertiser_rotate_token

    click = ClickFactory()
    old = click.offer.advertiser.postback_token
    advertiser_rotate_token(advertiser=click.offer.advertiser)

    response = client.get("/postback", {"secure": old, "transaction_id": click.transaction_id})

    assert response.status_code == 403


def test_unknown_transaction_is_404(client):
    click = ClickFactory()

    for transaction_id in ("A" * 32, "short", "not a/valid id", "x" * 255):
        response = client.get(
            "/postback",
            {"secure": click.offer.advertiser.postback_token, "transaction_id": transaction_id},
        )
        assert response.status_code == 404
        assert response.json()["reason"] == "unknown_transaction"


def test_an_invalid_token_is_reported_before_an_unknown_transaction(client):
    response = client.get("/postback", {"secure": "nobody", "transaction_id": "A" * 32})

    assert response.status_code == 403
    assert response.json()["reason"] == "invalid_secure"


def test_offer_id_must_be_the_clicks_offer(client):
    click = ClickFactory()
    other_offer = OfferFactory(advertiser=click.offer.advertiser)

    response = client.get("/postback", conversion_params(click, offer_id=str(other_offer.pk)))

    assert response.status_code == 422
    assert response.json()["reason"] == "offer_mismatch"
    assert not Conversion.objects.exists()


def test_offer_id_of_the_click_is_accepted(client):
    click = ClickFactory()

    response = client.get("/postback", conversion_params(click, offer_id=str(click.offer_id)))

    assert response.status_code == 200


def test_offer_id_beyond_any_id_is_a_mismatch_not_an_error(client):
    click = ClickFactory()

    response = client.get("/postback", conversion_params(click, offer_id="9" * 40))

    assert response.status_code == 422
    assert response.json()["reason"] == "offer_mismatch"


def test_second_conversion_for_a_click_is_409_and_changes_nothing(client):
    click = ClickFactory()
    first = client.get("/postback", conversion_params(click, adv_sub="a"))

    second = client.get("/postback", conversion_params(click, adv_sub="b"))

    assert first.status_code == 200
    assert second.status_code == 409
    assert second.json() == {
        "status": "rejected",
        "reason": "duplicate_conversion",
        "message": "A conversion is already recorded for this transaction_id; it is counted once.",
    }
    assert list(Conversion.objects.values_list("adv_sub", flat=True)) == ["a"]


def test_offer_mismatch_is_reported_before_a_duplicate(client):
    conversion = ConversionFactory()
    other_offer = OfferFactory(advertiser=conversion.offer.advertiser)

    response = client.get(
        "/postback", conversion_params(conversion.click, offer_id=str(other_offer.pk))
    )

    assert response.json()["reason"] == "offer_mismatch"


@pytest.mark.parametrize(
    ("revenue_type", "payout_type"),
    [(MoneyType.CPS, MoneyType.CPA), (MoneyType.CPA, MoneyType.CPS)],
)
def test_cps_offer_without_amount_is_422_amount_required(client, revenue_type, payout_type):
    click = ClickFactory(
        offer=OfferFactory(
            revenue_type=revenue_type,
            revenue_value=Decimal("10"),
            payout_type=payout_type,
            payout_value=Decimal("5"),
        )
    )

    response = client.get("/postback", conversion_params(click))
    empty = client.get("/postback", conversion_params(click, amount=""))

    assert (response.status_code, empty.status_code) == (422, 422)
    assert response.json()["reason"] == "amount_required"
    assert not Conversion.objects.exists()


def test_a_duplicate_is_reported_before_a_missing_amount(client):
    conversion = ConversionFactory(click__offer__revenue_type=MoneyType.CPS)

    response = client.get("/postback", conversion_params(conversion.click))

    assert response.status_code == 409
    assert response.json()["reason"] == "duplicate_conversion"


@pytest.mark.parametrize(
    ("money_type", "value", "amount", "expected"),
    [
        (MoneyType.CPA, "4.50", None, "4.50"),
        (MoneyType.CPL, "1.25", "80", "1.25"),
        (MoneyType.FIXED, "7.00", None, "7.00"),
        (MoneyType.CPS, "10", "19.99", "2.00"),  # 1.999 rounds up
        (MoneyType.CPS, "12.5", "0.04", "0.01"),  # 0.005: half-up, not half-even
        (MoneyType.CPS, "15", "0.1", "0.02"),  # 0.015: half-up
        (MoneyType.CPS, "100", "9999999999.9999", "10000000000.00"),
        (MoneyType.CPS, "33.33", "0", "0.00"),
    ],
)
def test_conversion_money_follows_the_spec_table(client, money_type, value, amount, expected):
    click = ClickFactory(
        offer=OfferFactory(
            revenue_type=money_type,
            revenue_value=Decimal(value),
            payout_type=MoneyType.FIXED,
            payout_value=Decimal("0.50"),
        )
    )
    extra = {"amount": amount} if amount is not None else {}

    response = client.get("/postback", conversion_params(click, **extra))

    assert response.status_code == 200, response.json()
    assert response.json()["revenue"] == expected
    assert response.json()["payout"] == "0.50"
    conversion = Conversion.objects.get()
    assert conversion.revenue == Decimal(expected)
    assert conversion.amount == (Decimal(amount) if amount is not None else None)


def test_currency_defaults_to_the_offers_and_is_stored_upper_case(client):
    eur_click = ClickFactory(offer=OfferFactory(currency="EUR"))
    gbp_click = ClickFactory()

    default = client.get("/postback", conversion_params(eur_click))
    sent = client.get("/postback", conversion_params(gbp_click, currency="gbp"))

    assert default.json()["currency"] == "EUR"
    assert sent.json()["currency"] == "GBP"
    assert sorted(Conversion.objects.values_list("currency", flat=True)) == ["EUR", "GBP"]


def test_every_adv_sub_is_stored(client):
    click = ClickFactory()
    subs = {name: f"value of {name}" for name in ("adv_sub", "adv_sub2", "adv_sub3", "adv_sub4")}
    subs["adv_sub5"] = "ünïcödé & more"

    client.get("/postback", conversion_params(click, **subs))

    conversion = Conversion.objects.get()
    assert {name: getattr(conversion, name) for name in subs} == subs


def test_a_conversion_keeps_its_money_when_the_offer_changes_later(client):
    click = ClickFactory()
    client.get("/postback", conversion_params(click))

    Offer.objects.filter(pk=click.offer_id).update(revenue_value=Decimal("99.00"))

    assert Conversion.objects.get().revenue == Decimal("5.00")


def test_clicks_of_a_paused_offer_still_convert(client):
    click = ClickFactory(offer=OfferFactory(status=Offer.Status.PAUSED))

    response = client.get("/postback", conversion_params(click))

    assert response.status_code == 200


def test_dry_run_decides_but_writes_nothing():
    click = ClickFactory()

    outcome = postback_process(params=conversion_params(click), dry_run=True)

    assert outcome.status_code == 200
    assert outcome.body["id"] is None
    assert outcome.body["revenue"] == "5.00"
    assert (outcome.log, outcome.record) == (None, None)
    assert not Conversion.objects.exists()
    assert not PostbackLog.objects.exists()


def test_dry_run_sees_a_duplicate_and_writes_nothing():
    conversion = ConversionFactory()

    outcome = postback_process(params=conversion_params(conversion.click), dry_run=True)

    assert (outcome.status_code, outcome.reason) == (409, "duplicate_conversion")
    assert not PostbackLog.objects.exists()


def test_the_service_returns_the_record_and_log_it_wrote():
    click = ClickFactory()

    outcome = postback_process(
        params=conversion_params(click), method="POST", ip="203.0.113.5", user_agent="Admin"
    )

    assert outcome.record == Conversion.objects.get()
    assert outcome.log == PostbackLog.objects.get()
    assert outcome.log.conversion_id == outcome.record.pk
    assert (outcome.log.method, outcome.log.ip, outcome.log.user_agent) == (
        "POST",
        "203.0.113.5",
        "Admin",
    )


def recorded_just_before_the_write(record):  # noqa: ANN001, ANN201
    """An execute wrapper that runs ``record()`` (as a concurrent request would, between
    the read of the facts and the write) just before the postback's write begins: its
    savepoint, which a test's transaction puts around every write of the service."""
    fired = []

    def wrapper(execute, sql, params, many, context):  # noqa: ANN001, ANN202
        if not fired and sql.startswith("SAVEPOINT"):
            fired.append(sql)
            record()
        return execute(sql, params, many, context)

    return wrapper


@pytest.mark.parametrize("offer_id", [True, False], ids=["offer URL", "global URL"])
def test_a_conversion_recorded_between_the_read_and_the_write_is_the_duplicate_answer(
    client, offer_id
):
    click = ClickFactory()
    params = conversion_params(click, **({"offer_id": str(click.offer_id)} if offer_id else {}))
    race = recorded_just_before_the_write(lambda: ConversionFactory(click=click))

    with connection.execute_wrapper(race):
        response = client.get("/postback", params)

    assert (response.status_code, response.json()["reason"]) == (409, "duplicate_conversion")
    assert Conversion.objects.count() == 1
    log = PostbackLog.objects.get()
    assert (log.reason, log.conversion_id) == ("duplicate_conversion", None)
