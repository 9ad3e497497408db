"""Sending one publisher postback request, safely (SPEC "Publisher postbacks (outbound)").

"Never a weapon": a publisher postback URL is typed by a person, and its host name is
resolved by whoever controls that name's DNS. So the address is checked where it is used:
the host name is resolved here, *every* address it resolves to must be global
(``ipaddress``'s ``is_global``; an IPv4-mapped IPv6 address is judged as the IPv4 address
it carries), and the connection is made to that checked address, with the ``Host`` header
and TLS SNI (and certificate check) still naming the host. A second resolution by the
HTTP client, which could answer differently (DNS rebinding), never happens.
``OUTBOUND_ALLOW_PRIVATE_NETWORKS`` lifts the address check (tests, a receiver on the LAN).

One attempt has ``ATTEMPT_SECONDS`` in all, resolution included; redirects are not
followed; at most ``BODY_LIMIT`` bytes of the answer are read.
"""

import asyncio
import functools
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import certifi
import httpx
from django.conf import settings

ATTEMPT_SECONDS = 5.0
BODY_LIMIT = 1024
USER_AGENT = "Clicktrail-Postback/1.0"


class RefusedAddress(Exception):
    """The URL may not be requested at all (scheme, or an address that is not global)."""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one request came to. ``status_code`` is None when no answer arrived."""

    status_code: int | None
    duration_ms: int
    body: str = ""
    error: str = ""
    # No retry can help: the URL or its address is refused.
    refused: bool = False


def address_allowed(address: str) -> bool:
    """Whether a connection to ``address`` (an IP address) is allowed."""
    if getattr(settings, "OUTBOUND_ALLOW_PRIVATE_NETWORKS", False):
        return True
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve_checked(host: str, port: int) -> str:
    """The address to connect to for ``host``: resolved once, every address checked."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise OSError(f"cannot resolve {host}: {error.strerror}") from error
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OSError(f"cannot resolve {host}")
    refused = [address for address in addresses if not address_allowed(address)]
    if refused:
        raise RefusedAddress(
            f"{host} resolves to {', '.join(refused)}, which is not a public address"
        )
    return addresses[0]


def _target(url: str) -> tuple[httpx.URL, str, int]:
    """The URL parsed and checked for scheme and host: (url, host, port)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise RefusedAddress(f"the scheme {scheme or '(none)'} is not allowed: http or https only")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        raise RefusedAddress(f"not a valid URL: {error}") from error
    if not parsed.host:
        raise RefusedAddress("the URL has no host")
    return parsed, parsed.host, parsed.port or (443 if scheme == "https" else 80)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client: loading the CA certificates costs ~75 ms of CPU,
    which a context per client would pay again and again."""
    return ssl.create_default_context(cafile=certifi.where())


def make_client(*, max_connections: int = 1) -> httpx.AsyncClient:
    """An HTTP client for attempts: no redirects, no environment proxies (a proxy would
    connect to an address this module never checked), certificates verified."""
    return httpx.AsyncClient(
        verify=_tls_context(),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(ATTEMPT_SECONDS),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        headers={"User-Agent": USER_AGENT},
    )


class Lane:
    """One request at a time, on a kept-alive connection when the next request goes where
    the last one went.

    The worker keeps one lane per request in flight: a pool of single-connection clients
    rather than one client with a big pool, whose bookkeeping (httpcore scans every
    connection on every request) cost more CPU than the requests themselves at 100 in
    flight (docs/publisher-postbacks.md). A connection is only reused for the same scheme,
    host name, checked address and port: a TLS connection verified for one host never
    carries a request for another.
    """

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._identity: tuple | None = None

    async def client_for(self, identity: tuple) -> httpx.AsyncClient:
        if self._client is None or self._identity != identity:
            await self.aclose()
            self._client, self._identity = make_client(), identity
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client, self._identity = self._client, None, None
            await client.aclose()

    async def __aenter__(self) -> "Lane":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def send(lane: Lane, url: str, *, timeout: float = ATTEMPT_SECONDS) -> AttemptResult:
    """One ``GET`` of ``url``, within ``timeout`` seconds in all. Never raises for what the
    network or the publisher does: the result says."""
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        async with asyncio.timeout(timeout):
            return await _send(lane, url, elapsed)
    except RefusedAddress as error:
        return AttemptResult(None, elapsed(), error=f"refused: {error}"[:500], refused=True)
    except TimeoutError:
        return AttemptResult(None, elapsed(), error=f"timed out after {timeout:g} s")
    except httpx.TimeoutException:
        return AttemptResult(None, elapsed(), error=f"timed out after {timeout:g} s")
    except (httpx.HTTPError, OSError) as error:
        message = str(error) or type(error).__name__
        return AttemptResult(None, elapsed(), error=f"connection error: {message}"[:500])


async def _send(lane: Lane, url: str, elapsed) -> AttemptResult:  # noqa: ANN001
    parsed, host, port = _target(url)
    address = await resolve_checked(host, port)
    client = await lane.client_for((parsed.scheme, host, address, port))
    # Connect to the checked address; the Host header and SNI name the host.
    request_url = parsed.copy_with(host=address)
    headers = {"Host": parsed.netloc.decode("ascii")}
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    request = client.build_request("GET", request_url, headers=headers, extensions=extensions)
    response = await client.send(request, stream=True)
    try:
        body = b""
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) >= BODY_LIMIT:
                break
    finally:
        await response.aclose()
    text = body[:BODY_LIMIT].decode("utf-8", "replace")
    return AttemptResult(response.status_code, elapsed(), body=text)
