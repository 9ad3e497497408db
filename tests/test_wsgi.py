"""config.wsgi sends the tracking hits through a lean handler and the rest through the full one."""

import io

import pytest
from django.urls import resolve

from config.hits import HIT_PATHS, hit_views
from config.wsgi import application, full_application, hit_application


def call(
    path: str, query: str = "", host: str = "testserver", *, close: bool = False
) -> tuple[str, dict, bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
    }
    answer = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"], answer["headers"] = status, dict(headers)

    response = application(environ, start_response)
    body = b"".join(response)
    if close:  # as a WSGI server does (not inside a test's transaction: it ends requests)
        response.close()
    return answer["status"], answer["headers"], body


@pytest.mark.django_db(transaction=True)
def test_a_postback_through_the_lean_handler_answers_json_with_security_headers():
    status, headers, body = call("/postback", "secure=x&transaction_id=y")

    assert status.startswith("403")
    assert headers["Content-Type"] == "application/json"
    assert "X-Content-Type-Options" in headers  # SecurityMiddleware ran
    assert "Set-Cookie" not in headers and "Cookie" not in headers.get("Vary", "")
    assert "X-Frame-Options" not in headers  # the full stack's middleware did not run
    assert b"invalid_secure" in body


def test_the_hit_paths_are_exactly_the_tracking_endpoints():
    assert {
        "/postback",
        "/postback/",
        "/postback/status",
        "/postback/status/",
        "/click",
        "/healthz",
    } == HIT_PATHS
    assert hit_application is not full_application


def test_each_hit_path_is_answered_by_the_view_the_urls_route_it_to():
    for path in HIT_PATHS:
        assert hit_views()[path] is resolve(path).func


@pytest.mark.django_db(transaction=True)
def test_other_paths_keep_the_full_stack():
    status, headers, _ = call("/admin/login/")

    assert status.startswith("200")
    assert "csrftoken" in headers.get("Set-Cookie", "")
    assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.django_db
def test_a_hit_with_a_host_outside_allowed_hosts_is_refused(settings):
    settings.ALLOWED_HOSTS = ["track.example.com"]

    status, _, _ = call("/healthz", host="evil.example.net")

    assert status.startswith("400")


@pytest.mark.django_db(transaction=True)
def test_a_hit_sends_djangos_request_signals_so_connections_are_looked_after():
    from django.core import signals

    seen = []

    def started(**kwargs) -> None:  # noqa: ANN003
        seen.append("started")

    def finished(**kwargs) -> None:  # noqa: ANN003
        seen.append("finished")

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    try:
        status, _, _ = call("/healthz", close=True)
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)

    assert status.startswith("200")
    assert seen == ["started", "finished"]


@pytest.mark.django_db
def test_serving_a_hit_leaves_the_settings_as_they_are(settings):
    configured = list(settings.MIDDLEWARE)

    call("/healthz")

    assert list(settings.MIDDLEWARE) == configured


@pytest.mark.django_db(transaction=True)
def test_a_host_once_accepted_is_refused_once_allowed_hosts_no_longer_hold_it(settings):
    settings.ALLOWED_HOSTS = ["track.example.com", "old.example.com"]
    accepted, _, _ = call("/healthz", host="old.example.com")

    settings.ALLOWED_HOSTS = ["track.example.com"]
    refused, _, _ = call("/healthz", host="old.example.com")
    still, _, _ = call("/healthz", host="track.example.com")

    assert (accepted[:3], refused[:3], still[:3]) == ("200", "400", "200")
