"""Request bodies of the hit endpoints (issue #19, 3 and 6): every legal encoding read and
logged, every other one a logged JSON 4xx, chunked bodies read, big bodies refused."""

import pytest

from tests.factories import ClickFactory
from tests.test_gunicorn_config import raw_request
from tracking.http import BODY_LIMIT, text_charset
from tracking.models import Conversion, PostbackLog

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("name", "readable"),
    [
        ("utf-8", True),
        ("UTF8", True),
        ("iso-8859-1", True),
        ("latin1", True),
        ("windows-1252", True),
        ("koi8-r", True),
        ("shift_jis", True),
        ("rot13", False),
        ("base64", False),
        ("hex", False),
        ("utf-16", False),
        ("utf-32-le", False),
        ("utf-7", False),
        ("cp037", False),
        ("no-such-charset", False),
        ("", False),
    ],
)
def test_only_ascii_compatible_text_encodings_are_read(name, readable):
    assert (text_charset(name) is not None) is readable


def latin1_postback(click, **extra: str) -> bytes:  # noqa: ANN001
    token = click.offer.advertiser.postback_token
    return (
        f"secure={token}&transaction_id={click.transaction_id}&adv_sub=caf%E9&adv_sub2=na\xefve"
    ).encode("iso-8859-1")


@pytest.mark.django_db
@pytest.mark.parametrize("cookie", [None, "csrftoken"], ids=["no-cookie", "csrftoken-cookie"])
@pytest.mark.parametrize("path", ["/postback", "/postback/", "/"])
def test_an_iso_8859_1_form_body_is_decoded_recorded_and_logged(client, path, cookie):
    click = ClickFactory()
    if cookie:
        client.cookies[cookie] = "x" * 32

    response = client.generic(
        "POST", path, latin1_postback(click), content_type=f"{FORM}; charset=ISO-8859-1"
    )

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    conversion = Conversion.objects.get()
    assert (conversion.adv_sub, conversion.adv_sub2) == ("café", "naïve")
    log = PostbackLog.objects.get()
    assert (log.reason, log.params["adv_sub"]) == ("accepted", "café")


@pytest.mark.django_db
@pytest.mark.parametrize("cookie", [None, "csrftoken"], ids=["no-cookie", "csrftoken-cookie"])
def test_bytes_that_do_not_decode_in_the_declared_charset_are_a_logged_400(client, cookie):
    if cookie:
        client.cookies[cookie] = "x" * 32

    response = client.generic(
        "POST",
        "/postback",
        b"secure=abc&transaction_id=caf%E9",
        content_type=f"{FORM}; charset=utf-8",
    )

    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_parameter"
    assert PostbackLog.objects.get().reason == "invalid_parameter"


MULTIPART_ROT13 = (
    b"--b\r\nContent-Disposition: form-data; name=secure\r\n\r\nabc\r\n"
    b"--b\r\nContent-Disposition: form-data; name=transaction_id\r\n\r\nxyz\r\n--b--\r\n"
)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/postback", "/"])
@pytest.mark.parametrize("charset", ["rot13", "utf-16", "nonsense"])
def test_a_multipart_body_in_an_unknown_charset_is_a_logged_json_400(client, path, charset):
    client.cookies["csrftoken"] = "x" * 32

    response = client.generic(
        "POST",
        path,
        MULTIPART_ROT13,
        content_type=f"multipart/form-data; boundary=b; charset={charset}",
    )

    assert response.status_code == 400
    assert response.json()["reason"] == "invalid_parameter"
    assert PostbackLog.objects.get().reason == "invalid_parameter"


@pytest.mark.django_db
def test_the_admin_login_answers_an_unknown_charset_with_400(client):
    client.cookies["csrftoken"] = "x" * 32

    response = client.generic(
        "POST",
        "/admin/login/",
        MULTIPART_ROT13,
        content_type="multipart/form-data; boundary=b; charset=rot13",
    )
    api = client.get("/api/v1/offers/", CONTENT_TYPE="text/plain; charset=rot13")

    assert response.status_code == 400
    assert api.status_code == 400
    assert "detail" in api.json()


@pytest.mark.django_db
def test_a_multipart_body_in_a_legal_charset_is_read(client):
    click = ClickFactory()
    token = click.offer.advertiser.postback_token
    body = (
        f"--b\r\nContent-Disposition: form-data; name=secure\r\n\r\n{token}\r\n"
        f"--b\r\nContent-Disposition: form-data; name=transaction_id\r\n\r\n"
        f"{click.transaction_id}\r\n--b--\r\n"
    ).encode()

    response = client.generic(
        "POST", "/postback", body, content_type="multipart/form-data; boundary=b; charset=latin1"
    )

    assert response.status_code == 200, response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/postback", "/"])
def test_a_body_over_64_kib_is_a_logged_413_decided_by_content_length(client, path):
    response = client.post(
        f"{path}?secure=abc&transaction_id=xyz",
        {"adv_sub": "z" * BODY_LIMIT},
    )

    assert response.status_code == 413
    assert response.json()["reason"] == "request_too_large"
    log = PostbackLog.objects.get()
    assert (log.status_code, log.reason, log.method) == (413, "request_too_large", "POST")
    assert log.params == {"secure": "•••", "transaction_id": "xyz"}


@pytest.mark.django_db
def test_a_body_of_exactly_64_kib_is_read(client):
    body = "secure=abc&transaction_id=xyz&pad="
    body += "z" * (BODY_LIMIT - len(body))

    response = client.generic("POST", "/postback", body.encode(), content_type=FORM)

    assert response.json()["reason"] == "invalid_secure"  # read, and judged
    assert PostbackLog.objects.get().params["pad"] == "z" * 255


@pytest.mark.django_db
def test_head_healthz_answers_200_for_load_balancers(client):
    response = client.head("/healthz")

    assert response.status_code == 200
    assert response.content == b""


# --- Over HTTP, through gunicorn: what Django's test client cannot send -------------------


def chunked(body: bytes, size: int = 7) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def post_chunked(base: str, path: str, body: bytes, content_type: str = FORM) -> bytes:
    return raw_request(
        base,
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
        + chunked(body),
    )


@pytest.mark.django_db(transaction=True)
def test_a_chunked_post_is_read_and_accepted(servers):
    click = ClickFactory()
    body = (
        f"secure={click.offer.advertiser.postback_token}&transaction_id={click.transaction_id}"
        "&adv_sub=caf%E9"
    ).encode()

    answer = post_chunked(servers[0], "/postback", body, f"{FORM}; charset=iso-8859-1")

    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert Conversion.objects.get().adv_sub == "café"
    assert PostbackLog.objects.get().reason == "accepted"


@pytest.mark.django_db(transaction=True)
def test_a_chunked_body_over_64_kib_is_a_logged_413_decided_by_the_bytes_read(servers):
    body = b"secure=abc&transaction_id=xyz&pad=" + b"z" * BODY_LIMIT

    try:
        answer = post_chunked(servers[0], "/postback?secure=abc", body)
    except (TimeoutError, ConnectionResetError, BrokenPipeError) as exc:  # pragma: no cover
        pytest.fail(f"the server hung up instead of answering: {exc}")

    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b'"reason": "request_too_large"' in answer
    log = PostbackLog.objects.get()
    assert (log.status_code, log.reason, log.params) == (
        413,
        "request_too_large",
        {"secure": "•••"},
    )


@pytest.mark.django_db(transaction=True)
def test_head_healthz_answers_200_over_http(servers):
    answer = raw_request(
        servers[0], b"HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )

    assert answer.startswith(b"HTTP/1.1 200 ")


def post_rot13(base: str, path: str) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Cookie: csrftoken={'x' * 32}\r\n"
        "Content-Type: multipart/form-data; boundary=b; charset=rot13\r\n"
        f"Content-Length: {len(MULTIPART_ROT13)}\r\n\r\n"
    )
    return raw_request(base, head.encode() + MULTIPART_ROT13)


@pytest.mark.django_db(transaction=True)
def test_a_rot13_multipart_body_is_a_400_on_every_entry_over_http(servers):
    postback = post_rot13(servers[0], "/postback?secure=abc")
    root = post_rot13(servers[0], "/?secure=abc")
    login = post_rot13(servers[0], "/admin/login/?next=/admin/")

    for answer in (postback, root):
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
        assert b'"reason": "invalid_parameter"' in answer
    assert login.startswith(b"HTTP/1.1 400 "), login[:300]
    logged = list(PostbackLog.objects.values_list("reason", "params"))
    assert logged == [("invalid_parameter", {"secure": "•••"})] * 2
