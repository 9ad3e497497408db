import logging
from collections.abc import Iterator

import pytest
from django.db import connection

from config.logging import MaskSecureFilter, mask_secure
from tests.factories import AdvertiserFactory
from tests.servers import gunicorn, postgres_url
from tests.test_gunicorn_config import raw_request


def test_secure_values_are_masked_in_request_lines():
    line = '"GET /postback?transaction_id=abc&secure=Zx81longsecrettoken-_ HTTP/1.1" 200 12'

    masked = mask_secure(line)

    assert "longsecrettoken" not in masked
    assert "secure=Zx81••••••••" in masked
    assert "transaction_id=abc" in masked


def test_the_logging_filter_masks_formatted_messages():
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s', ("GET /?SECURE=abcdefgh", 200), None
    )

    assert MaskSecureFilter().filter(record) is True
    assert record.getMessage() == '"GET /?SECURE=abcd••••••••" 200'


def test_the_console_handler_carries_the_filter():
    handlers = logging.getLogger("django.server").handlers

    assert any(isinstance(f, MaskSecureFilter) for h in handlers for f in h.filters)


def test_secret_parameters_of_any_common_name_are_masked():
    line = "GET /p?Secure=abcdefgh&secret=ijklmnop&api_key=qrstuvwx&monkey=keep HTTP/1.1"

    masked = mask_secure(line)

    assert masked == (
        "GET /p?Secure=abcd••••••••&secret=ijkl••••••••&api_key=qrst••••••••&monkey=keep HTTP/1.1"
    )


def test_a_disallowed_host_is_one_warning_line_without_a_traceback(client, settings, caplog):
    settings.ALLOWED_HOSTS = ["testserver"]
    caplog.set_level(logging.DEBUG)

    for path in ("/postback", "/admin/", "/healthz"):
        response = client.get(path, HTTP_HOST="evil.example")
        assert response.status_code == 400

    records = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert len(records) == 3
    for record in records:
        assert (record.levelname, record.exc_info, record.exc_text) == ("WARNING", None, None)
        formatted = logging.getLogger("django.server").handlers[0].format(record)
        assert "\n" not in formatted and "evil.example" in formatted


# --- gunicorn's own logs, from a real server ------------------------------------------------

TOKEN = "Gq7" + "t" * 37 + "x_Z"  # 43 characters, as generated


@pytest.fixture
def server_database(django_db_setup) -> None:  # noqa: ANN001
    """The test database, for a real server (which needs PostgreSQL to share it)."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://…")


@pytest.fixture
def live_token(server_database, django_db_blocker) -> Iterator[str]:  # noqa: ANN001
    """An advertiser with ``TOKEN``, committed, so a server started afterwards knows it."""
    with django_db_blocker.unblock():
        advertiser = AdvertiserFactory(postback_token=TOKEN)
        yield TOKEN
        advertiser.delete()


@pytest.mark.parametrize("parser", ["python", "fast"])
def test_gunicorns_logs_never_carry_a_whole_token(live_token, tmp_path, parser):
    log = tmp_path / "gunicorn.log"
    malformed = [
        # A doubled space, a space in the path: the python parser logs the request line.
        f"GET  /postback?secure={TOKEN}&transaction_id=x HTTP/1.1",
        f"GET /post back?Secure={TOKEN} HTTP/1.1",
        f"GET  /postback?partner_key_2={TOKEN} HTTP/1.1",
        f"GET /postback?x={TOKEN} HTTP/1.1 junk",
    ]

    with gunicorn(
        postgres_url(), log, workers=1, GUNICORN_HTTP_PARSER=parser, GUNICORN_ACCESSLOG="-"
    ) as base:
        for line in malformed:
            # (The C parser reads some of these as requests; all are answered.)
            answer = raw_request(
                base, f"{line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            assert answer.startswith(b"HTTP/1.1 4"), answer[:100]
        # A well-formed one, in the access log, the token under a name of the partner's own.
        raw_request(
            base,
            f"GET /postback?cb={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"User-Agent: ua {TOKEN}\r\n\r\n".encode(),
        )

    text = log.read_text()
    assert "Invalid request from ip=127.0.0.1" in text
    assert "GET /postback?cb=" in text  # the access log was on
    assert TOKEN not in text
    assert TOKEN[:8] not in text
    if parser == "python":
        assert "Invalid HTTP request line: 'GET  /postback?secure=Gq7t••••••••" in text


def test_a_real_server_logs_a_disallowed_host_as_one_line(server_database, tmp_path):
    log = tmp_path / "gunicorn.log"

    with gunicorn(
        postgres_url(),
        log,
        workers=1,
        settings="config.settings.production",
        SECRET_KEY="k" * 64,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="False",
    ) as base:
        for path in ("/postback?secure=x", "/admin/", "/healthz"):
            answer = raw_request(
                base,
                f"GET {path} HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n".encode(),
            )
            assert answer.startswith(b"HTTP/1.1 400 ")

    lines = [line for line in log.read_text().splitlines() if "evil.example" in line]
    assert len(lines) == 3, log.read_text()
    assert all("WARNING django.security.DisallowedHost" in line for line in lines)
    assert "Traceback" not in log.read_text()
