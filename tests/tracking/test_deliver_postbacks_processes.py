"""Worker processes for real (PostgreSQL, shared by processes): killed with SIGKILL mid-batch
nothing is lost and at most that batch is sent again; two workers never send one delivery
at the same time; SIGTERM lets the attempts in flight finish and be recorded."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from django.utils import timezone
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from offers.models import PublisherPostback
from tests.factories import ConversionFactory
from tests.markers import requires_postgresql
from tests.servers import ROOT, postgres_url
from tracking.deliveries import deliveries_create
from tracking.models import Delivery, DeliveryAttempt

pytestmark = [pytest.mark.django_db(transaction=True), requires_postgresql]


class Receiver:
    """A publisher server that answers after ``delay`` seconds and notes every request's
    delivery_id with when it started and ended."""

    def __init__(self, server: HTTPServer, delay: float) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.started: list[tuple[str, float]] = []
        self.spans: list[tuple[str, float, float]] = []
        server.expect_request("/pb").respond_with_handler(self.handle)
        self.url = server.url_for("/pb") + "?d={delivery_id}"

    def handle(self, request: Request) -> Response:
        delivery_id, start = request.args["d"], time.monotonic()
        with self.lock:
            self.started.append((delivery_id, start))
        time.sleep(self.delay)
        with self.lock:
            self.spans.append((delivery_id, start, time.monotonic()))
        return Response("ok")

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.started) < count:
            assert time.monotonic() < deadline, f"only {len(self.started)} requests arrived"
            time.sleep(0.02)


@pytest.fixture
def threaded_server() -> Iterator[HTTPServer]:
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    if server.is_running():
        server.stop()


def queue(url: str, count: int) -> list[int]:
    first = ConversionFactory()
    postback = PublisherPostback.objects.create(
        publisher=first.publisher, trigger="conversion", url=url
    )
    conversions = [first] + [
        ConversionFactory(click__publisher=first.publisher, click__offer=first.offer)
        for _ in range(count - 1)
    ]
    ids = [deliveries_create(record=c)[0].pk for c in conversions]
    assert postback.deliveries.count() == count
    return ids


def worker(*args: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": postgres_url(),
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "deliver_postbacks", "--poll", "0.1", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish(process: subprocess.Popen, timeout: float = 60) -> str:
    output, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, output.decode()
    return output.decode()


def test_a_worker_killed_mid_batch_loses_nothing_and_resends_at_most_that_batch(
    threaded_server,
):
    receiver = Receiver(threaded_server, delay=2.0)
    ids = queue(receiver.url, 30)

    first = worker("--concurrency", "10", "--lease", "3")
    receiver.wait_for(10)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    killed_batch = {delivery_id for delivery_id, _ in receiver.started}
    assert len(killed_batch) == 10
    assert not DeliveryAttempt.objects.exists()  # killed before recording anything

    time.sleep(3.5)  # the killed worker's lease runs out
    finish(worker("--concurrency", "10", "--lease", "3", "--until-idle"))

    assert set(Delivery.objects.values_list("outcome", flat=True)) == {"delivered"}
    sent = Counter(delivery_id for delivery_id, _ in receiver.started)
    assert set(sent) == {str(i) for i in ids}
    resent = {delivery_id for delivery_id, times in sent.items() if times > 1}
    assert resent <= killed_batch
    assert sum(sent.values()) <= len(ids) + len(killed_batch)
    assert DeliveryAttempt.objects.count() == len(ids)  # what was recorded: one each


def test_two_workers_share_the_queue_and_never_send_one_delivery_at_once(threaded_server):
    receiver = Receiver(threaded_server, delay=0.2)
    ids = queue(receiver.url, 150)

    workers = [worker("--concurrency", "20", "--until-idle") for _ in range(2)]
    outputs = [finish(process) for process in workers]

    sent = Counter(delivery_id for delivery_id, _ in receiver.started)
    assert sent == Counter({str(i): 1 for i in ids})
    by_delivery: dict[str, list[tuple[float, float]]] = {}
    for delivery_id, start, end in receiver.spans:
        by_delivery.setdefault(delivery_id, []).append((start, end))
    for spans in by_delivery.values():
        spans.sort()
        assert all(
            a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)
        )
    assert set(Delivery.objects.values_list("outcome", flat=True)) == {"delivered"}
    # Each says how many attempts it made: together, one per delivery.
    made = [int(out.strip().rsplit("after ", 1)[1].split()[0]) for out in outputs]
    assert sum(made) == len(ids)


def test_sigterm_lets_the_attempts_in_flight_finish_and_records_them(threaded_server):
    receiver = Receiver(threaded_server, delay=1.0)
    queue(receiver.url, 30)

    process = worker("--concurrency", "10")
    receiver.wait_for(10)
    process.send_signal(signal.SIGTERM)
    output = finish(process, timeout=15)

    assert "Stopped after 10 attempts" in output
    outcomes = Counter(Delivery.objects.values_list("outcome", flat=True))
    assert outcomes == {"delivered": 10, "queued": 20}
    assert len(receiver.started) == 10
    assert DeliveryAttempt.objects.filter(status_code=200).count() == 10
    # The rest were never claimed: due now for the next worker, not held by a lease.
    assert not Delivery.objects.filter(
        outcome="queued", next_attempt_at__gt=timezone.now()
    ).exists()
