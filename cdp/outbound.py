"""The one outbound HTTP client: guarded against server-side request forgery.

Every call the platform makes to a URL that a user configured or an event templated (workflow
actions, destinations) goes through `outbound_request`. It resolves the host, refuses targets
inside the machine or the private network (loopback, private, link-local, multicast, reserved,
unspecified, and IPv6 forms that embed such an IPv4 address), connects to the address it checked
(so a DNS answer that changes between the check and the connection cannot redirect it), never
follows redirects, bounds the time spent and reads at most `max_bytes` of the answer.

Internal targets are reached only on purpose: hosts and networks listed in the setting
CDP_OUTBOUND_ALLOW, or a caller passing `allow_internal=True` (a resource an admin marked
internal).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_TIMEOUT = 10.0
DEFAULT_CONNECT_TIMEOUT = 3.0
DEFAULT_MAX_BYTES = 1024 * 1024

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")


class OutboundError(Exception):
    """An outbound request did not produce an HTTP response."""


class OutboundBlocked(OutboundError):
    """The target is refused by the policy (an internal address, a bad URL): not retryable."""


class OutboundTimeout(OutboundError):
    """Connecting, reading or the whole request took longer than allowed: retryable."""


class OutboundConnectionError(OutboundError):
    """The host did not resolve or the connection failed: retryable."""


@dataclass(frozen=True)
class OutboundResponse:
    """An answer, with at most `max_bytes` of its body (`truncated` when more was sent)."""

    status_code: int
    headers: Mapping[str, str]
    content: bytes
    truncated: bool = False
    url: str = ""
    elapsed: float = 0.0
    address: str = field(default="", repr=False)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def body(self) -> Any:
        """The body as JSON when it says it is JSON and parses, else as text."""
        if "json" in self.headers.get("content-type", "") and not self.truncated:
            try:
                return orjson.loads(self.content)
            except orjson.JSONDecodeError:
                pass
        return self.text


def _allow_list() -> tuple[set[str], list[ipaddress.IPv4Network | ipaddress.IPv6Network]]:
    hosts: set[str] = set()
    networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for entry in getattr(settings, "CDP_OUTBOUND_ALLOW", []) or []:
        entry = str(entry).strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            hosts.add(entry)
    return hosts, networks


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or address in _NAT64_LOCAL:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    # IPv4-compatible (deprecated ::a.b.c.d).
    if int(address) >> 32 == 0 and int(address) > 1:
        return ipaddress.IPv4Address(int(address))
    return None


def address_is_internal(address: IPAddress) -> bool:
    """Whether an address points inside the machine or a private network (or is not routable
    on the internet): such targets need an explicit allowance."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv6 form that carries an IPv4 address reaches that address: it decides.
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_is_internal(embedded)
    return bool(
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def _parse_url(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise OutboundBlocked(f"{url!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise OutboundBlocked(f"{url!r}: only http:// and https:// URLs are allowed")
    if not parsed.host:
        raise OutboundBlocked(f"{url!r} has no host")
    return parsed


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise OutboundConnectionError(f"{host}: does not resolve ({exc})") from None
    addresses: list[IPAddress] = []
    for info in infos:
        # Zone ids (fe80::1%eth0) are link-local anyway; drop them before parsing.
        text = str(info[4][0]).split("%", 1)[0]
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OutboundConnectionError(f"{host}: does not resolve")
    return addresses


def resolve_checked(url: str, *, allow_internal: bool = False) -> tuple[httpx.URL, IPAddress]:
    """The parsed URL and the address to connect to, or OutboundBlocked when the policy refuses
    the target. Every address the host resolves to is checked: one internal answer is enough
    to refuse, so that a name cannot mix a public and an internal address."""
    parsed = _parse_url(url)
    host = parsed.host.lower()
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = _resolve(host, port)
    if allow_internal:
        return parsed, addresses[0]
    allowed_hosts, allowed_networks = _allow_list()
    if host in allowed_hosts:
        return parsed, addresses[0]
    for address in addresses:
        if any(address in network for network in allowed_networks):
            continue
        if address_is_internal(address):
            raise OutboundBlocked(
                f"{parsed.host} resolves to {address}, an internal address: outbound requests "
                "to loopback, private, link-local and reserved addresses are refused (an "
                "operator can allow a host or network with CDP_OUTBOUND_ALLOW)"
            )
    return parsed, addresses[0]


def check_url(url: str, *, allow_internal: bool = False) -> None:
    """Raise OutboundBlocked when `url` may not be called (for validating configuration)."""
    resolve_checked(url, allow_internal=allow_internal)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process (certificate checks on, httpx's CA bundle): building it
    loads the whole CA bundle, which made up most of a webhook delivery's time when each
    request built its own client."""
    return httpx.create_ssl_context()


def _pinned(parsed: httpx.URL, address: IPAddress) -> httpx.URL:
    host = f"[{address}]" if address.version == 6 else str(address)
    return parsed.copy_with(host=host)


def outbound_request(
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    content: bytes | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    allow_internal: bool = False,
) -> OutboundResponse:
    """Send one request and return its answer (never following a redirect: a 3xx comes back
    as it is). `timeout` bounds the whole request, `connect_timeout` the connection (default:
    the smaller of 3 s and `timeout`). Raises OutboundBlocked, OutboundTimeout or
    OutboundConnectionError (all OutboundError)."""
    started = time.monotonic()
    parsed, address = resolve_checked(url, allow_internal=allow_internal)
    connect = min(connect_timeout or DEFAULT_CONNECT_TIMEOUT, timeout)
    request_headers = {str(k): str(v) for k, v in (headers or {}).items()}
    # Connect to the checked address, while the server sees the name it was asked for (Host
    # header, TLS server name and certificate check).
    for name in list(request_headers):
        if name.lower() == "host":
            del request_headers[name]
    default_port = 443 if parsed.scheme == "https" else 80
    request_headers["Host"] = (
        parsed.host if parsed.port in (None, default_port) else f"{parsed.host}:{parsed.port}"
    )
    extensions = {"sni_hostname": parsed.host} if parsed.scheme == "https" else {}
    limits = httpx.Timeout(timeout, connect=connect)
    deadline = started + timeout
    try:
        with (
            httpx.Client(
                follow_redirects=False, trust_env=False, timeout=limits, verify=_tls_context()
            ) as client,
            client.stream(
                method,
                _pinned(parsed, address),
                headers=request_headers,
                content=content,
                extensions=extensions,
            ) as response,
        ):
            chunks: list[bytes] = []
            size = 0
            truncated = False
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    truncated = True
                    break
                if time.monotonic() > deadline:
                    raise OutboundTimeout(f"{method} {url}: took longer than {timeout:g} s")
            body = b"".join(chunks)[:max_bytes]
            return OutboundResponse(
                status_code=response.status_code,
                headers=dict(response.headers.items()),
                content=body,
                truncated=truncated,
                url=url,
                elapsed=time.monotonic() - started,
                address=str(address),
            )
    except httpx.TimeoutException as exc:
        raise OutboundTimeout(f"{method} {url}: timed out ({type(exc).__name__})") from exc
    except httpx.HTTPError as exc:
        raise OutboundConnectionError(f"{method} {url}: {exc}") from exc
