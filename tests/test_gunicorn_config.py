"""config/gunicorn.py: the production server's settings, as gunicorn itself reads them."""

import socket

import pytest
from gunicorn.config import Config
from gunicorn.http import message

from tests.servers import ROOT
from tracking.models import PostbackLog


def production_config(**environ: str) -> Config:
    """The settings gunicorn derives from config/gunicorn.py with ``environ`` set."""
    namespace: dict = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environ.items():
            patch.setenv(name, value)
        exec((ROOT / "config" / "gunicorn.py").read_text(), namespace)  # noqa: S102
    config = Config()
    for name, value in namespace.items():
        if name in config.settings:
            config.set(name, value)
    return config


def test_the_server_parses_requests_with_the_c_parser():
    config = production_config()

    assert config.http_parser == "fast"
    assert message._check_fast_parser(config) is True


def test_the_pure_python_parser_stays_one_setting_away():
    config = production_config(GUNICORN_HTTP_PARSER="python")

    assert message._check_fast_parser(config) is False


def raw_request(base: str, request: bytes) -> bytes:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.django_db(transaction=True)
def test_a_live_server_reads_a_percent_encoded_postback_and_refuses_a_broken_request(servers):
    base = servers[0]

    answer = raw_request(
        base,
        b"GET /postback?secure=no%20such%20token&transaction_id=a%2Bb HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    broken = raw_request(base, b"GET /healthz HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n")

    assert answer.startswith(b"HTTP/1.1 403 ")
    assert b'"reason": "invalid_secure"' in answer
    logged = PostbackLog.objects.get(transaction_id="a+b")  # %2B decoded, as Django would
    assert logged.reason == "invalid_secure"
    assert logged.params["transaction_id"] == "a+b"
    assert broken.startswith(b"HTTP/1.1 400 ")
