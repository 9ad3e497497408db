"""Checks 1 and 2 of SPEC "Postback endpoint": missing and malformed parameters."""

import pytest

from offers.models import MoneyType
from tests.factories import ClickFactory, ConversionFactory, EventFactory, OfferFactory
from tracking.models import Conversion, EventRecord, PostbackLog

pytestmark = pytest.mark.django_db


def valid_params(click, **extra: str) -> dict[str, str]:
    return {
        "secure": click.offer.advertiser.postback_token,
        "transaction_id": click.transaction_id,
        **extra,
    }


@pytest.mark.parametrize(
    "drop",
    [
        {"secure": None},
        {"transaction_id": None},
        {"secure": ""},
        {"transaction_id": ""},
        {"secure": None, "transaction_id": None},
    ],
)
def test_missing_or_empty_secure_or_transaction_id_is_400(client, drop):
    click = ClickFactory()
    params = valid_params(click)
    for name, value in drop.items():
        if value is None:
            params.pop(name)
        else:
            params[name] = value

    response = client.get("/postback", params)

    assert response.status_code == 400
    body = response.json()
    assert (body["status"], body["reason"]) == ("rejected", "missing_parameter")
    for name in drop:
        assert name in body["message"]
    assert not Conversion.objects.exists()


def test_nothing_at_all_is_400_missing_parameter(client):
    response = client.get("/postback")

    assert response.status_code == 400
    assert response.json()["reason"] == "missing_parameter"
    assert PostbackLog.objects.get().reason == "missing_parameter"


MALFORMED = [
    ("event_id", "abc"),
    ("event_id", "0"),
    ("event_id", "-1"),
    ("event_id", "+1"),
    ("event_id", "1.0"),
    ("event_id", " 1"),
    ("event_id", "1 "),
    ("event_id", "٣"),  # an Arabic-Indic digit: a digit, but not ASCII
    ("event_id", "0x1f"),
    ("offer_id", "one"),
    ("offer_id", "0"),
    ("offer_id", "-5"),
    ("offer_id", "1e3"),
    ("amount", "NaN"),
    ("amount", "nan"),
    ("amount", "inf"),
    ("amount", "Infinity"),
    ("amount", "1e3"),
    ("amount", "1,5"),
    ("amount", "-1"),
    ("amount", "+1"),
    ("amount", ".5"),
    ("amount", "5."),
    ("amount", "1.23456"),
    ("amount", "12345678901"),
    ("amount", "1 000"),
    ("amount", "١٢"),
    ("amount", "19.99\n"),
    ("amount", "$10"),
    ("currency", "US"),
    ("currency", "USDD"),
    ("currency", "U$D"),
    ("currency", "ÜSD"),
    ("currency", "12A"),
    ("adv_sub", "x" * 256),
    ("event_name", "n" * 256),
    ("secure", "s" * 256),
    ("transaction_id", "t" * 256),
    ("adv_sub2", "with\x00nul"),
    ("adv_sub5", "tab\there"),
    ("event_name", "line\nbreak"),
    ("adv_sub3", "del\x7f"),
    ("adv_sub4", "c1\x85control"),
]


@pytest.mark.parametrize(("name", "value"), MALFORMED)
def test_malformed_parameter_is_400_invalid_parameter(client, name, value):
    click = ClickFactory()

    response = client.get("/postback", valid_params(click, **{name: value}))

    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_parameter"
    assert name in response.json()["message"]
    assert not Conversion.objects.exists()
    log = PostbackLog.objects.get()
    assert (log.reason, log.status_code) == ("invalid_parameter", 400)


@pytest.mark.parametrize(("name", "value"), MALFORMED[:6])
def test_malformed_parameter_in_a_post_body_is_400(client, name, value):
    click = ClickFactory()

    response = client.post("/postback", valid_params(click, **{name: value}))

    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_parameter"


def test_a_value_of_exactly_255_characters_is_fine(client):
    click = ClickFactory()

    response = client.get("/postback", valid_params(click, adv_sub="x" * 255))

    assert response.status_code == 200
    assert Conversion.objects.get().adv_sub == "x" * 255


@pytest.mark.parametrize(
    "amount", ["0", "100", "0.5", "19.99", "0007", "1.2345", "9999999999.9999"]
)
def test_plain_decimal_amounts_are_accepted(client, amount):
    click = ClickFactory(offer=OfferFactory(revenue_type=MoneyType.CPS, revenue_value=10))

    response = client.get("/postback", valid_params(click, amount=amount))

    assert response.status_code == 200, response.json()


def test_a_missing_parameter_is_reported_before_a_malformed_one(client):
    response = client.get("/postback", {"transaction_id": "x", "amount": "NaN"})

    assert response.json()["reason"] == "missing_parameter"


def test_a_malformed_parameter_is_reported_before_an_invalid_token(client):
    click = ClickFactory()

    response = client.get(
        "/postback", {"secure": "wrong", "transaction_id": click.transaction_id, "amount": "1e3"}
    )

    assert response.json()["reason"] == "invalid_parameter"


def test_empty_optional_parameters_count_as_absent(client):
    click = ClickFactory(offer=OfferFactory(currency="EUR"))
    optional = ("event_id", "event_name", "offer_id", "amount", "currency", "adv_sub")
    empties = dict.fromkeys(optional, "")

    response = client.get("/postback", valid_params(click, **empties))

    assert response.status_code == 200, response.json()
    assert response.json()["type"] == "conversion"
    assert response.json()["currency"] == "EUR"
    conversion = Conversion.objects.get()
    assert (conversion.amount, conversion.adv_sub) == (None, "")
    assert PostbackLog.objects.get().type == "conversion"


def test_empty_event_id_beside_an_event_name_is_an_event_by_name(client):
    conversion = ConversionFactory()
    EventFactory(offer=conversion.offer, name="purchase")

    response = client.get(
        "/postback", valid_params(conversion.click, event_id="", event_name="purchase")
    )

    assert response.status_code == 200
    assert EventRecord.objects.count() == 1


def test_an_empty_amount_for_a_cps_offer_is_amount_required(client):
    click = ClickFactory(offer=OfferFactory(payout_type=MoneyType.CPS, payout_value=10))

    response = client.get("/postback", valid_params(click, amount=""))

    assert response.json()["reason"] == "amount_required"


def test_unknown_parameters_are_ignored_even_when_odd(client):
    click = ClickFactory()

    response = client.get(
        "/postback",
        valid_params(click, clickid="{clickid}", weird="a\x00b", long="z" * 5000),
    )

    assert response.status_code == 200, response.json()


def test_too_many_fields_is_a_logged_400_not_a_crash(client):
    query = "&".join(f"f{n}=1" for n in range(1200))

    response = client.get(f"/postback?secure=x&transaction_id=y&{query}")

    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_parameter"
    assert PostbackLog.objects.get().reason == "invalid_parameter"


def test_too_many_fields_at_the_root_is_a_postback_answer(client):
    query = "&".join(f"f{n}=1" for n in range(1200))

    response = client.get(f"/?{query}")

    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_parameter"


def test_a_broken_multipart_body_is_a_logged_400(client):
    response = client.generic(
        "POST",
        "/postback?secure=x&transaction_id=y",
        b"--nope\r\nbroken",
        content_type="multipart/form-data; boundary=",
    )

    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_parameter"
    assert PostbackLog.objects.count() == 1


def test_a_json_body_is_not_read_and_the_query_string_decides(client):
    click = ClickFactory()

    response = client.post(
        f"/postback?secure={click.offer.advertiser.postback_token}"
        f"&transaction_id={click.transaction_id}",
        {"amount": "NaN"},
        content_type="application/json",
    )

    assert response.status_code == 200


def test_invalid_utf8_in_the_query_string_is_not_a_crash(client):
    click = ClickFactory()

    response = client.get(
        f"/postback?secure={click.offer.advertiser.postback_token}"
        f"&transaction_id={click.transaction_id}&event_name=%ff%fe"
    )

    assert response.status_code == 404
    assert response.json()["reason"] == "unknown_event"


def test_a_body_over_the_upload_limit_is_a_logged_400(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = client.post("/postback?secure=x", {"transaction_id": "y", "adv_sub": "z" * 5000})

    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_parameter"
    log = PostbackLog.objects.get()
    assert (log.method, log.reason) == ("POST", "invalid_parameter")
    assert log.params == {"secure": "•"}
