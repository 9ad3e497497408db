"""Tokens are masked by value in the postback log, wherever they were sent (issue #19, 2).

An analyst reads the log in the admin, its CSV export and ``/api/v1/postbacks/``: none of
them may ever show a whole token, under whatever name, in whichever column it arrived.
"""

import json

import pytest
from django.core import serializers

from offers.tokens import mask_token
from tests.conftest import admin_client_for, token_client
from tests.factories import AdvertiserFactory, ClickFactory, EventFactory, analyst
from tracking.masking import TokenMask
from tracking.models import PostbackLog

TOKEN = "Zq3v_" + "k" * 33 + "-9Xy1"  # 43 characters, as generated

# --- The mask itself, without a database ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ""),
        ("short", "short"),
        (TOKEN, mask_token(TOKEN)),
        (f"Mozilla/5.0 ({TOKEN})", f"Mozilla/5.0 ({mask_token(TOKEN)})"),
        (f"x{TOKEN}y", f"x{mask_token(TOKEN)}y"),
        (f"{TOKEN}{TOKEN}", mask_token(TOKEN) * 2),
        (f"{TOKEN},{TOKEN}", f"{mask_token(TOKEN)},{mask_token(TOKEN)}"),
        (TOKEN[:-1], TOKEN[:-1]),
        ("a" * 500, "a" * 500),
    ],
)
def test_the_mask_replaces_every_occurrence_of_a_token(text, expected):
    assert TokenMask([TOKEN, "other-token-" + "q" * 31])(text) == expected


def test_tokens_outside_the_url_safe_alphabet_are_found_too():
    mask = TokenMask(["tok en+1"])

    assert mask("a tok en+1 b") == "a •••••••• b"


def test_without_tokens_nothing_is_masked():
    assert TokenMask([])(TOKEN) == TOKEN
    assert not TokenMask([""])


# --- Over HTTP, stored, and read back as an analyst ----------------------------------------


def stored_text() -> str:
    return serializers.serialize("json", PostbackLog.objects.all())


@pytest.fixture
def click(db):  # noqa: ANN001, ANN201
    click = ClickFactory(offer__advertiser__postback_token=TOKEN)
    return click


@pytest.mark.django_db
@pytest.mark.parametrize(
    "params",
    [
        {"Secure": TOKEN, "transaction_id": "a" * 32},
        {"secret": TOKEN, "transaction_id": "a" * 32},
        {"secure": "wrong", "transaction_id": TOKEN},
        {"secure": TOKEN, "transaction_id": TOKEN},
        {"transaction_id": TOKEN},
        {"secure": TOKEN, "transaction_id": "a" * 32, "event_name": TOKEN},
        {"secure": TOKEN, "transaction_id": "a" * 32, TOKEN: "1"},
        {"secure": TOKEN, "transaction_id": "a" * 32, "adv_sub": f"order {TOKEN}"},
    ],
    ids=[
        "Secure",
        "secret",
        "transaction_id",
        "secure-and-transaction_id",
        "transaction_id-alone",
        "event_name",
        "as-a-name",
        "inside-a-value",
    ],
)
def test_a_token_is_never_stored_whole_whatever_it_was_sent_as(client, click, params):
    response = client.get("/postback", params, HTTP_USER_AGENT=f"partner/1 {TOKEN}")

    assert response.status_code >= 400
    log = PostbackLog.objects.get()
    assert TOKEN not in stored_text()
    assert TOKEN not in log.transaction_id
    assert TOKEN not in log.user_agent and mask_token(TOKEN) in log.user_agent
    assert TOKEN not in log.message
    assert mask_token(TOKEN) in json.dumps(log.params, ensure_ascii=False) or (
        "transaction_id" in params and mask_token(TOKEN) in log.transaction_id
    )


@pytest.mark.django_db
def test_an_event_name_holding_a_token_is_masked_in_the_message(client, click):
    EventFactory(offer=click.offer)

    response = client.get(
        "/postback",
        {"secure": TOKEN, "transaction_id": click.transaction_id, "event_name": TOKEN},
    )

    assert response.json()["reason"] == "unknown_event"
    log = PostbackLog.objects.get()
    assert mask_token(TOKEN) in log.message
    assert TOKEN not in stored_text()


@pytest.mark.django_db
def test_an_accepted_postback_masks_a_token_repeated_under_another_name(client, click):
    response = client.post(
        "/postback",
        {"secure": TOKEN, "transaction_id": click.transaction_id, "secret": TOKEN},
    )

    assert response.status_code == 200, response.json()
    log = PostbackLog.objects.get()
    assert log.params["secret"] == mask_token(TOKEN)
    assert TOKEN not in stored_text()


@pytest.mark.django_db
def test_another_advertisers_token_is_masked_too(client, click):
    other = AdvertiserFactory()

    client.get(
        "/postback",
        {"secure": TOKEN, "transaction_id": click.transaction_id, "x": other.postback_token},
    )

    assert other.postback_token not in stored_text()


@pytest.mark.django_db
def test_a_rotated_token_is_masked_from_the_next_request_on(client, click):
    advertiser = click.offer.advertiser
    new_token = "N" * 43
    client.get("/postback", {"transaction_id": "a" * 32})  # the old tokens are cached now
    advertiser.set_postback_token(new_token)
    advertiser.save()

    client.get("/postback", {"Secure": new_token, "transaction_id": "a" * 32})

    assert new_token not in stored_text()


@pytest.mark.django_db
def test_analysts_find_no_whole_token_in_the_admin_the_csv_or_the_api(client, click):
    for params in (
        {"Secure": TOKEN, "transaction_id": "b" * 32},
        {"secure": TOKEN, "transaction_id": TOKEN},
        {"secure": TOKEN, "transaction_id": click.transaction_id, "secret": TOKEN},
    ):
        client.get("/postback", params, HTTP_USER_AGENT=TOKEN)
    user = analyst()
    browser = admin_client_for(user)
    api = token_client(user)

    changelist = browser.get("/admin/tracking/postbacklog/")
    pages = [
        browser.get(f"/admin/tracking/postbacklog/{pk}/change/")
        for pk in PostbackLog.objects.values_list("pk", flat=True)
    ]
    export = browser.get("/admin/tracking/postbacklog/export.csv")
    listed = api.get("/api/v1/postbacks/")

    assert changelist.status_code == listed.status_code == export.status_code == 200
    assert all(page.status_code == 200 for page in pages)
    texts = [changelist.content.decode(), listed.content.decode()]
    texts += [page.content.decode() for page in pages]
    texts.append(b"".join(export.streaming_content).decode())
    for text in texts:
        assert TOKEN not in text
    assert mask_token(TOKEN) in listed.content.decode()
