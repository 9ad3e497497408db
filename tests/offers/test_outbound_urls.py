"""Publisher postback URLs: the check on save, the macros' encoding, the log's masking.
Pure functions, table-driven, no database."""

import pytest
from django.core.exceptions import ValidationError

from offers.outbound_urls import MACROS, fill_url, mask_url, validate_postback_url


@pytest.mark.parametrize(
    "url",
    [
        "https://pub.example.com/pb?click={transaction_id}&payout={payout}",
        "http://pub.example.com:8080/{offer_id}/{event_name}?d={delivery_id}",
        "https://pub.example.com/pb",
        "https://[2001:db8::1]:8443/pb?t={timestamp}",
        "HTTPS://pub.example.com/pb?sub={aff_sub5}#frag",
        "https://pub.example.com/pb?" + "&".join(f"{name}={{{name}}}" for name in MACROS),
    ],
)
def test_a_well_formed_url_with_known_macros_is_accepted(url):
    validate_postback_url(url)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "Enter"),
        ("https://pub.example.com/pb?r={revenue}", "Unknown macro {revenue}"),
        ("https://pub.example.com/pb?a={adv_sub}", "Unknown macro {adv_sub}"),
        ("https://pub.example.com/pb?x={}", "Unknown macro {}"),
        ("https://pub.example.com/pb?x={payout", "brace"),
        ("https://pub.example.com/pb?x=}", "brace"),
        ("ftp://pub.example.com/pb", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("gopher://pub.example.com/", "http:// or https://"),
        ("pub.example.com/pb", "http:// or https://"),
        ("{source}://pub.example.com/pb", "not in the scheme, host or port"),
        ("https://{aff_sub}.example.com/pb", "not in the scheme, host or port"),
        ("https://{aff_sub}/pb", "not in the scheme, host or port"),
        ("https://pub.example.com:{aff_sub}/pb", "not in the scheme, host or port"),
        ("https://user:{aff_sub}@pub.example.com/pb", "not in the scheme, host or port"),
        ("https://pub.example.com:99999/pb", "port"),
        ("https:///pb", "host"),
        ("https://user:pw@pub.example.com/pb", "user name or password"),
        ("https://pub.example.com/p b", "spaces"),
        ("https://pub.example.com/\npb", "control"),
    ],
)
def test_a_url_that_could_not_be_sent_as_written_is_refused_with_a_reason(url, message):
    with pytest.raises(ValidationError) as error:
        validate_postback_url(url)

    assert message in " ".join(error.value.messages)


def test_macros_are_replaced_by_their_url_encoded_values():
    url = fill_url(
        "https://pub.example.com/pb/{event_name}?sub={aff_sub}&p={payout}&e={event_id}",
        {"event_name": "first purchase/ü", "aff_sub": "a&b=c d+{x}#", "payout": "1.50"},
    )

    assert url == (
        "https://pub.example.com/pb/first%20purchase%2F%C3%BC"
        "?sub=a%26b%3Dc%20d%2B%7Bx%7D%23&p=1.50&e="
    )


def test_macros_named_to_keep_stay_for_a_later_fill():
    url = fill_url(
        "https://pub.example.com/pb?r={record_id}&d={delivery_id}&t={transaction_id}",
        {"transaction_id": "abc_123-XYZ"},
        keep=("record_id", "delivery_id"),
    )

    assert url == "https://pub.example.com/pb?r={record_id}&d={delivery_id}&t=abc_123-XYZ"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://p.example/pb?secure=abc&x=1", "https://p.example/pb?secure=***&x=1"),
        (
            "https://p.example/pb?token=t&key=k&API_KEY=a&secret=s&password=p&signature=g&sig=z",
            "https://p.example/pb?token=***&key=***&API_KEY=***&secret=***&password=***"
            "&signature=***&sig=***",
        ),
        ("https://p.example/pb?monkey=1&keys=2", "https://p.example/pb?monkey=1&keys=2"),
        ("https://p.example/pb?sig=", "https://p.example/pb?sig="),
        ("https://p.example/pb", "https://p.example/pb"),
    ],
)
def test_the_log_masks_the_values_of_secret_looking_parameters(url, masked):
    assert mask_url(url) == masked
