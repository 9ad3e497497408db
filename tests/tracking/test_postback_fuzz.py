"""Property-based: whatever arrives, the endpoint answers a 4xx/200 in JSON and logs it.

Hypothesis throws arbitrary query strings, parameter dicts and form bodies at the real
endpoint, some with a valid token and transaction_id so the later checks (events, amounts,
duplicates) are reached too. The test client re-raises any exception a view lets escape,
so a would-be 500 fails the test as loudly as an assertion.
"""

from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offers.models import MoneyType
from tests.factories import ConversionFactory, EventFactory
from tracking.models import PostbackLog, Reason
from tracking.postback import PARAMETERS, postback_process

pytestmark = pytest.mark.django_db

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
POSTBACK_STATUSES = {200, 400, 403, 404, 409, 422}

names = st.one_of(st.sampled_from(PARAMETERS), st.text(max_size=20))
# Any text, control characters included; sometimes very long; often number-like.
values = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="0123456789.-+eE,x ", max_size=14),
    st.sampled_from(["", "0", "1", "NaN", "inf", "1e3", "-1", "19.99", "usd", "purchase"]),
    st.text(min_size=250, max_size=300),
)
param_dicts = st.dictionaries(names, values, max_size=8)
# Raw query strings and bodies, not produced by a well-behaved encoder.
raw_queries = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyz_=&%+;#?/.0123456789 \\\x00é中"),
    max_size=120,
)


@pytest.fixture
def world():
    """A converted click on a CPS offer with a single and a multiple event."""
    conversion = ConversionFactory(
        click__offer__revenue_type=MoneyType.CPS, click__offer__revenue_value=10
    )
    EventFactory(offer=conversion.offer, name="purchase", revenue_type=MoneyType.CPS)
    EventFactory(offer=conversion.offer, name="level", allow_multiple=True)
    return {
        "secure": conversion.offer.advertiser.postback_token,
        "transaction_id": conversion.click.transaction_id,
    }


def assert_answered_and_logged(response, logs_before: int) -> None:
    assert response.status_code in POSTBACK_STATUSES, response.content
    body = response.json()
    assert body["reason"] in Reason.values
    assert body["status"] == ("accepted" if response.status_code == 200 else "rejected")
    assert PostbackLog.objects.count() == logs_before + 1


@FUZZ
@given(params=param_dicts)
def test_any_parameters_get_a_json_answer_and_a_log_row(params):
    logs_before = PostbackLog.objects.count()

    response = Client().get("/postback", params)

    assert_answered_and_logged(response, logs_before)


@FUZZ
@given(params=param_dicts, base=st.booleans())
def test_any_extra_parameters_on_a_real_click_get_an_answer_and_a_log_row(world, params, base):
    # Valid secure and transaction_id first, so the fuzz reaches the event and money checks.
    logs_before = PostbackLog.objects.count()
    merged = {**world, **params} if base else {**params, **world}

    response = Client().get("/postback", merged)

    assert_answered_and_logged(response, logs_before)


@FUZZ
@given(query=raw_queries)
def test_any_raw_query_string_gets_an_answer_and_a_log_row(query):
    logs_before = PostbackLog.objects.count()

    response = Client().get("/postback?" + quote(query, safe="=&%+;/?"))

    assert_answered_and_logged(response, logs_before)


@FUZZ
@given(params=param_dicts, query=param_dicts)
def test_any_form_body_gets_an_answer_and_a_log_row(world, params, query):
    logs_before = PostbackLog.objects.count()
    body = {**world, **params}

    response = Client().post(
        "/postback?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in query.items()), body
    )

    assert_answered_and_logged(response, logs_before)


@FUZZ
@given(body=st.binary(max_size=200))
def test_any_raw_form_body_bytes_get_an_answer_and_a_log_row(body):
    logs_before = PostbackLog.objects.count()

    response = Client().generic(
        "POST", "/postback", body, content_type="application/x-www-form-urlencoded"
    )

    assert_answered_and_logged(response, logs_before)


@FUZZ
@given(query=raw_queries)
def test_the_site_root_redirects_or_answers_a_postback(query):
    logs_before = PostbackLog.objects.count()

    response = Client().get("/?" + quote(query, safe="=&%+;/?"))

    if response.status_code == 302:
        assert response["Location"] == "/admin/"
        assert PostbackLog.objects.count() == logs_before
    else:
        assert_answered_and_logged(response, logs_before)


# Text HTTP cannot carry (lone surrogates) still reaches the service from Python callers.
any_text = st.text(st.characters(exclude_categories=()), max_size=30)


@FUZZ
@given(params=st.dictionaries(st.one_of(st.sampled_from(PARAMETERS), any_text), any_text))
def test_the_service_decides_any_text_and_logs_it(world, params):
    logs_before = PostbackLog.objects.count()

    outcome = postback_process(params={**world, **params}, user_agent="\ud800agent\x00")

    assert outcome.status_code in POSTBACK_STATUSES
    assert outcome.log is not None
    assert PostbackLog.objects.count() == logs_before + 1
