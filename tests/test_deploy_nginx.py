"""deploy/: the production front server, run for real (issue #19, 5).

Debian's nginx with deploy/nginx/clicktrail.conf (only its paths and ports changed, in a
temporary prefix) in front of a real gunicorn with the production config file: 50 clients
that send their headers one byte every few seconds leave /healthz answering at once, and a
postback through nginx is logged with the client's own address.
"""

import contextlib
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from django.db import connection

from tests.factories import ClickFactory
from tests.servers import ROOT, free_port, gunicorn, postgres_url
from tracking.models import Conversion, PostbackLog

NGINX = Path("/usr/sbin/nginx")
SITE = ROOT / "deploy" / "nginx" / "clicktrail.conf"
SLOW_CLIENTS = 50

pytestmark = pytest.mark.skipif(
    not NGINX.exists(), reason="needs Debian's nginx (/usr/sbin/nginx; .ci/run installs it)"
)


def site_config(*, port: int, upstream: str, logs: Path) -> str:
    """The shipped site file with this test's port, upstream and paths, and nothing else."""
    text = SITE.read_text()
    replacements = [
        (r"listen 80;", f"listen 127.0.0.1:{port};"),
        (r"listen \[::\]:80;\n", ""),
        (r"server 127\.0\.0\.1:8000;", f"server {upstream};"),
        (r"/var/log/nginx/", f"{logs}/"),
        (r"alias /srv/clicktrail/staticfiles/;", f"alias {ROOT / 'static'}/;"),
    ]
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text)
        assert count >= 1, f"deploy/nginx/clicktrail.conf no longer has {pattern!r}"
    return text


@contextmanager
def nginx(upstream: str, prefix: Path) -> Iterator[str]:
    """Debian's nginx, own prefix and configuration, on a free port of this suite's range."""
    port = free_port()
    logs = prefix / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / temp).mkdir(exist_ok=True)
    user = "user root root;" if os.geteuid() == 0 else ""  # its workers may read /work
    (prefix / "nginx.conf").write_text(
        f"""
daemon off;
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {logs}/main.error.log info;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{site_config(port=port, upstream=upstream, logs=logs)}
}}
"""
    )
    command = [
        str(NGINX),
        "-p",
        str(prefix),
        "-c",
        str(prefix / "nginx.conf"),
        "-e",
        str(logs / "main.error.log"),
    ]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=2)
                break
            except requests.RequestException:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((logs / "main.error.log").read_text()) from None
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def front_prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nginx")


@pytest.fixture(scope="module")
def front(front_servers) -> Iterator[str]:  # noqa: ANN001
    """nginx in front of gunicorn: sync workers, two of them, as the production default."""
    yield front_servers[1]


@pytest.fixture(scope="module")
def front_app(front_servers) -> str:  # noqa: ANN001
    """The gunicorn behind ``front``, reached directly."""
    return front_servers[0]


@pytest.fixture(scope="module")
def front_servers(django_db_setup, django_db_blocker, front_prefix) -> Iterator[tuple[str, str]]:  # noqa: ANN001, E501
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://…")
    with (
        gunicorn(
            postgres_url(),
            front_prefix / "gunicorn.log",
            workers=2,
            threads=1,
            USE_X_FORWARDED_FOR="True",
        ) as app,
        nginx(app.removeprefix("http://"), front_prefix) as base,
    ):
        yield app, base


def healthz_time(base: str) -> float:
    started = time.perf_counter()
    response = requests.get(f"{base}/healthz", timeout=5, headers={"Connection": "close"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    return elapsed


@contextmanager
def slow_clients(base: str, count: int = SLOW_CLIENTS) -> Iterator[None]:
    """``count`` clients sending a /healthz request one header byte every 2 s each: alone,
    any one of them holds a sync worker for as long as it takes."""
    host, port = base.removeprefix("http://").split(":")
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nUser-Agent: slow\r\n\r\n".encode()
    stop = threading.Event()
    sockets = [socket.create_connection((host, int(port)), timeout=10) for _ in range(count)]

    def trickle() -> None:
        for byte in request:
            for sock in sockets:
                # nginx may drop one (client_header_timeout): that is its job.
                with contextlib.suppress(OSError):
                    sock.send(bytes([byte]))
            if stop.wait(2):
                return

    sender = threading.Thread(target=trickle, daemon=True)
    sender.start()
    try:
        time.sleep(2.5)  # every slow client has sent its first bytes, and waits
        yield
    finally:
        stop.set()
        sender.join(timeout=5)
        for sock in sockets:
            sock.close()


def test_fifty_slow_clients_leave_healthz_answering_within_100_ms(front):
    with slow_clients(front):
        times = []
        for _ in range(10):
            times.append(healthz_time(front))
            time.sleep(0.3)

    assert max(times) < 0.100, [f"{t * 1000:.0f} ms" for t in times]


def test_without_nginx_a_few_slow_clients_take_gunicorn_offline(front_app):
    # The control: the same clients straight at gunicorn's two sync workers.
    with slow_clients(front_app, count=4), pytest.raises(requests.Timeout):
        requests.get(f"{front_app}/healthz", timeout=1)


def raw_from(source: str, base: str, request: bytes) -> bytes:
    """A raw request sent from the local address ``source`` (127.0.0.0/8 is all loopback)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection(
        (host, int(port)), timeout=30, source_address=(source, 0)
    ) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.django_db(transaction=True)
def test_a_postback_through_nginx_is_logged_with_the_clients_address(front):
    click = ClickFactory()
    token = click.offer.advertiser.postback_token
    body = f"secure={token}&transaction_id={click.transaction_id}".encode()

    # Chunked, with a forged X-Forwarded-For: nginx reads the body whole, and writes the
    # address it saw over whatever the client claimed.
    answer = raw_from(
        "127.0.0.2",
        front,
        b"POST /postback HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"X-Forwarded-For: 203.0.113.9\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n"
        % (len(body), body),
    )

    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert Conversion.objects.filter(click=click).exists()
    log = PostbackLog.objects.get(click=click)
    assert (log.reason, log.ip) == ("accepted", "127.0.0.2")


@pytest.mark.django_db(transaction=True)
def test_a_body_over_64_kib_through_nginx_is_the_applications_logged_413(front):
    response = requests.post(
        f"{front}/postback?secure=abc&transaction_id=big",
        data={"pad": "z" * 70_000},
        timeout=10,
    )

    assert response.status_code == 413
    assert response.json()["reason"] == "request_too_large"
    assert PostbackLog.objects.get(transaction_id="big").reason == "request_too_large"


def test_bodies_nginx_will_not_read_get_the_same_json_413(front):
    response = requests.post(f"{front}/postback", data=b"z" * 2_000_000, timeout=10)

    assert response.status_code == 413
    assert response.json()["reason"] == "request_too_large"


def test_nginx_serves_static_files_itself_and_logs_no_query_string(front, front_prefix):
    static = requests.get(f"{front}/static/offers/admin.css", timeout=5)
    requests.get(f"{front}/postback?secure=SecretInTheLog123&transaction_id=x", timeout=5)

    assert static.status_code == 200
    assert "Server" in static.headers and "gunicorn" not in static.headers["Server"]
    access = (front_prefix / "logs" / "clicktrail.access.log").read_text()
    assert '"GET /postback HTTP/1.1" 403' in access
    assert "SecretInTheLog123" not in access
