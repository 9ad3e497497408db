"""The delivery worker against real publisher servers on loopback, with its clock moved by
the test: retries with the SPEC's backoff, failures, auto-disable, resend, refusals."""

import socket
import time
from datetime import timedelta

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from offers.models import PublisherPostback
from tests.factories import ConversionFactory
from tests.tracking.deliveries_helpers import Clock, run_worker
from tracking.deliveries import deliveries_create, delivery_resend
from tracking.models import Delivery

pytestmark = pytest.mark.django_db(transaction=True)


def queued(
    url: str, *, count: int = 1, postback: PublisherPostback | None = None
) -> list[Delivery]:
    """``count`` conversions of one publisher, each with its delivery to ``url``."""
    if postback is None:
        first = ConversionFactory()
        postback = PublisherPostback.objects.create(
            publisher=first.publisher, trigger="conversion", url=url
        )
    else:
        first = ConversionFactory(click__publisher=postback.publisher)
    conversions = [first] + [
        ConversionFactory(click__publisher=first.publisher, click__offer=first.offer)
        for _ in range(count - 1)
    ]
    return [deliveries_create(record=c)[0] for c in conversions]


def sequence(*codes: int):  # noqa: ANN201
    """A handler answering with these status codes in turn (the last one from then on)."""
    answers = list(codes)

    def handle(request: Request) -> Response:
        code = answers.pop(0) if len(answers) > 1 else answers[0]
        return Response(f"answer {code}", status=code)

    return handle


def test_a_503_is_retried_with_the_backoff_until_the_publisher_answers(httpserver: HTTPServer):
    httpserver.expect_request("/pb").respond_with_handler(sequence(503, 503, 500, 429, 200))
    (delivery,) = queued(httpserver.url_for("/pb") + "?d={delivery_id}")
    clock = Clock()
    waits = []

    for _ in range(4):
        assert run_worker(clock) == 1
        delivery.refresh_from_db()
        assert delivery.outcome == "retrying"
        waits.append((delivery.next_attempt_at - clock.now).total_seconds())
        # Not due before its time: a worker run now sends nothing.
        clock.now = delivery.next_attempt_at - timedelta(seconds=1)
        assert run_worker(clock) == 0
        clock.now = delivery.next_attempt_at
    assert run_worker(clock) == 1

    delivery.refresh_from_db()
    assert (delivery.outcome, delivery.attempt_count, delivery.last_status_code) == (
        "delivered",
        5,
        200,
    )
    for wait, base in zip(waits, (60, 300, 1800, 7200), strict=True):
        assert base * 0.9 <= wait <= base * 1.1
    assert [a.status_code for a in delivery.attempts.all()] == [503, 503, 500, 429, 200]
    # The same delivery_id every time: publishers deduplicate on it.
    assert {r.args["d"] for r, _ in httpserver.log} == {str(delivery.pk)}


def test_after_seven_failed_attempts_the_delivery_fails(httpserver: HTTPServer):
    httpserver.expect_request("/pb").respond_with_data("down", status=503)
    (delivery,) = queued(httpserver.url_for("/pb"))
    clock = Clock()

    for _ in range(7):
        assert run_worker(clock) == 1
        delivery.refresh_from_db()
        if delivery.next_attempt_at:
            clock.now = delivery.next_attempt_at
    clock.advance(days=30)

    assert run_worker(clock) == 0
    delivery.refresh_from_db()
    assert (delivery.outcome, delivery.attempt_count, delivery.next_attempt_at) == (
        "failed",
        7,
        None,
    )
    assert delivery.attempts.count() == 7


def test_a_404_fails_at_once_without_retries(httpserver: HTTPServer):
    httpserver.expect_request("/pb").respond_with_data("no such page " + "x" * 3000, status=404)
    (delivery,) = queued(httpserver.url_for("/pb"))
    clock = Clock()

    assert run_worker(clock) == 1
    clock.advance(days=2)
    assert run_worker(clock) == 0

    delivery.refresh_from_db()
    assert (delivery.outcome, delivery.attempt_count, delivery.next_attempt_at) == (
        "failed",
        1,
        None,
    )
    (attempt,) = delivery.attempts.all()
    assert attempt.status_code == 404
    assert attempt.response.startswith("no such page") and len(attempt.response) == 1024


def test_a_time_out_is_retried(httpserver: HTTPServer):
    def slow(request: Request) -> Response:
        time.sleep(1.5)
        return Response("late")

    httpserver.expect_request("/pb").respond_with_handler(slow)
    (delivery,) = queued(httpserver.url_for("/pb"))

    assert run_worker(attempt_seconds=0.3) == 1

    delivery.refresh_from_db()
    (attempt,) = delivery.attempts.all()
    assert delivery.outcome == "retrying"
    assert attempt.status_code is None and "timed out" in attempt.error
    assert attempt.duration_ms < 1500
    # Let the slow answer finish here, not in the next test's server log.
    deadline = time.monotonic() + 5
    while not httpserver.log and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_refused_connection_is_retried():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (delivery,) = queued(f"http://127.0.0.1:{port}/pb")

    assert run_worker() == 1

    delivery.refresh_from_db()
    (attempt,) = delivery.attempts.all()
    assert delivery.outcome == "retrying"
    assert attempt.status_code is None and "connection error" in attempt.error


def test_a_redirect_is_not_followed_and_fails(httpserver: HTTPServer):
    httpserver.expect_request("/pb").respond_with_data("", status=302, headers={"Location": "/x"})
    (delivery,) = queued(httpserver.url_for("/pb"))

    run_worker()

    delivery.refresh_from_db()
    assert (delivery.outcome, delivery.last_status_code) == ("failed", 302)
    assert len(httpserver.log) == 1


def test_a_postback_whose_last_ten_deliveries_failed_is_disabled(httpserver: HTTPServer):
    httpserver.expect_request("/pb").respond_with_data("gone", status=410)
    deliveries = queued(httpserver.url_for("/pb"), count=9)
    postback = PublisherPostback.objects.get()

    run_worker()
    postback.refresh_from_db()
    assert postback.enabled  # nine failures are not ten

    queued(httpserver.url_for("/pb"), postback=postback)
    run_worker()
    postback.refresh_from_db()
    assert not postback.enabled
    assert "last 10 deliveries all failed" in postback.disabled_reason
    assert all(d.outcome == "failed" for d in Delivery.objects.all())
    assert len(deliveries) == 9


def test_one_delivered_among_the_last_ten_keeps_the_postback_enabled(httpserver: HTTPServer):
    httpserver.expect_request("/pb").respond_with_handler(sequence(200, 410))
    queued(httpserver.url_for("/pb"), count=10)

    run_worker()

    assert (
        sorted(Delivery.objects.values_list("outcome", flat=True)) == ["delivered"] + ["failed"] * 9
    )
    assert PublisherPostback.objects.get().enabled


def test_resend_queues_the_same_delivery_with_the_same_delivery_id(httpserver: HTTPServer):
    httpserver.expect_request("/pb").respond_with_handler(sequence(404, 200))
    (delivery,) = queued(httpserver.url_for("/pb") + "?d={delivery_id}")
    run_worker()
    delivery.refresh_from_db()
    assert delivery.outcome == "failed"

    delivery_resend(delivery_id=delivery.pk)
    run_worker()

    delivery.refresh_from_db()
    assert delivery.outcome == "delivered"
    assert Delivery.objects.count() == 1
    assert [r.args["d"] for r, _ in httpserver.log] == [str(delivery.pk)] * 2
    assert [a.status_code for a in delivery.attempts.all()] == [404, 200]


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:{port}/pb",  # a host name that resolves to 127.0.0.1
        "http://127.0.0.1:{port}/pb",
        "http://[::ffff:127.0.0.1]:{port}/pb",
        "http://[::1]:{port}/pb",
        "http://10.0.0.1:{port}/pb",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:{port}/pb",
        "ftp://127.0.0.1:{port}/pb",
        "file:///etc/passwd",
    ],
)
def test_without_the_setting_non_public_addresses_and_schemes_are_refused_at_once(
    settings, httpserver: HTTPServer, url
):
    settings.OUTBOUND_ALLOW_PRIVATE_NETWORKS = False
    httpserver.expect_request("/pb").respond_with_data("reached")
    # Stored as a delivery directly: the check on save is not what is tested here.
    (delivery,) = queued("https://publisher.example/pb")
    Delivery.objects.filter(pk=delivery.pk).update(url=url.format(port=httpserver.port))

    assert run_worker() == 1

    delivery.refresh_from_db()
    (attempt,) = delivery.attempts.all()
    assert (delivery.outcome, delivery.next_attempt_at) == ("failed", None)
    assert attempt.error.startswith("refused:")
    assert httpserver.log == []
