"""The outbound HTTP client: internal targets refused in every spelling, no redirects followed,
the checked address is the one connected to, answers capped, the allow list lets a host in."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cdp import outbound
from cdp.outbound import (
    OutboundBlocked,
    OutboundConnectionError,
    OutboundTimeout,
    address_is_internal,
    outbound_request,
)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        server: Server = self.server  # type: ignore[assignment]
        server.hits.append({"path": self.path, "host": self.headers.get("Host")})
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", server.redirect_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            try:
                for _ in range(1000):
                    self.wfile.write(b"x" * 65536)
            except OSError:
                pass  # the client stopped reading, as it should
            return
        if self.path == "/slow":
            time.sleep(2)
        data = b'{"secret": "internal"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = do_GET


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str) -> None:
        super().__init__((host, 0), _Handler)
        self.hits: list[dict[str, Any]] = []
        self.redirect_to = ""

    def handle_error(self, request: Any, client_address: Any) -> None:
        return

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def _serve(host: str) -> Iterator[Server]:
    server = Server(host)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def victim(settings: Any) -> Iterator[Server]:
    """A server on loopback that must never be reached (nothing is allowed)."""
    settings.CDP_OUTBOUND_ALLOW = []
    yield from _serve("127.0.0.1")


@pytest.fixture
def partner() -> Iterator[Server]:
    """A server on another loopback address, standing for an allowed external service."""
    yield from _serve("127.0.0.2")


LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f000001",
    "0177.0.0.1",
    "0.0.0.0",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "localhost",
    "LOCALHOST",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
def test_loopback_in_any_spelling_is_refused_and_never_reached(host: str, victim: Server) -> None:
    with pytest.raises(OutboundBlocked, match=r"internal address|not a valid URL"):
        outbound_request("GET", f"http://{host}:{victim.port}/")
    assert victim.hits == []


@pytest.mark.parametrize(
    "address",
    [
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata address
        "100.64.0.1",  # carrier-grade NAT
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "0.0.0.0",
        "::",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "2002:a9fe:a9fe::1",  # 6to4 around 169.254.169.254
        "64:ff9b::a9fe:a9fe",  # NAT64 around 169.254.169.254
        "64:ff9b::7f00:1",
    ],
)
def test_internal_addresses_are_recognised(address: str) -> None:
    assert address_is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_not_internal(address: str) -> None:
    assert not address_is_internal(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://127.0.0.1/", "http:///x"]
)
def test_only_http_urls_with_a_host(url: str) -> None:
    with pytest.raises(OutboundBlocked):
        outbound_request("GET", url)


def test_the_allow_list_lets_a_listed_network_through(settings: Any, partner: Server) -> None:
    settings.CDP_OUTBOUND_ALLOW = ["127.0.0.2/32"]
    response = outbound_request("GET", f"http://127.0.0.2:{partner.port}/ok")
    assert response.status_code == 200
    assert response.body() == {"secret": "internal"}
    assert partner.hits == [{"path": "/ok", "host": f"127.0.0.2:{partner.port}"}]


def test_the_allow_list_by_host_name_keeps_the_host_header(settings: Any, victim: Server) -> None:
    settings.CDP_OUTBOUND_ALLOW = ["localhost"]
    response = outbound_request("GET", f"http://localhost:{victim.port}/ok")
    assert response.status_code == 200
    assert victim.hits[0]["host"] == f"localhost:{victim.port}"
    # Another loopback name is still refused.
    with pytest.raises(OutboundBlocked):
        outbound_request("GET", f"http://127.0.0.1:{victim.port}/ok")
    assert len(victim.hits) == 1


def test_allow_internal_argument_lets_one_call_through(victim: Server) -> None:
    response = outbound_request("GET", f"http://127.0.0.1:{victim.port}/x", allow_internal=True)
    assert response.status_code == 200


def test_a_redirect_to_loopback_is_not_followed(
    settings: Any, partner: Server, victim: Server
) -> None:
    settings.CDP_OUTBOUND_ALLOW = ["127.0.0.2"]
    partner.redirect_to = f"http://127.0.0.1:{victim.port}/latest/meta-data/"
    response = outbound_request("GET", f"http://127.0.0.2:{partner.port}/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == partner.redirect_to
    assert victim.hits == []


def test_the_checked_address_is_the_one_connected_to(
    settings: Any, monkeypatch: pytest.MonkeyPatch, partner: Server, victim: Server
) -> None:
    """DNS rebinding: the name first resolves to an allowed address, then to loopback. The
    client connects to the address it checked, once, and sends the name as Host."""
    settings.CDP_OUTBOUND_ALLOW = ["127.0.0.2"]
    real = socket.getaddrinfo
    answers = iter(["127.0.0.2"])

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "shop.example":
            return real(next(answers, "127.0.0.1"), port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    response = outbound_request("GET", f"http://shop.example:{partner.port}/hook")
    assert response.status_code == 200
    assert partner.hits == [{"path": "/hook", "host": f"shop.example:{partner.port}"}]
    assert victim.hits == []


def test_a_name_resolving_to_a_metadata_address_is_refused(
    victim: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def metadata(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "evil.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", metadata)
    with pytest.raises(OutboundBlocked, match=r"169\.254\.169\.254"):
        outbound_request("GET", "http://evil.example/latest/meta-data/")


def test_the_answer_is_capped_and_reading_stops(settings: Any, partner: Server) -> None:
    settings.CDP_OUTBOUND_ALLOW = ["127.0.0.2"]
    response = outbound_request(
        "GET", f"http://127.0.0.2:{partner.port}/big", max_bytes=100_000, timeout=5
    )
    assert response.truncated
    assert len(response.content) == 100_000


def test_a_slow_answer_times_out(settings: Any, partner: Server) -> None:
    settings.CDP_OUTBOUND_ALLOW = ["127.0.0.2"]
    with pytest.raises(OutboundTimeout):
        outbound_request("GET", f"http://127.0.0.2:{partner.port}/slow", timeout=0.3)


def test_a_name_that_does_not_resolve_is_a_connection_error() -> None:
    with pytest.raises(OutboundConnectionError):
        outbound_request("GET", "http://does-not-exist.invalid/")


def test_the_module_is_the_one_client() -> None:
    # The workflow action goes through it (so destinations can rely on one policy).
    from apps.workflows.actions import builtins

    assert builtins.outbound_request is outbound.outbound_request


def _self_signed(tmp_path: Any) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by nobody a client trusts, and its key (PEM files)."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_certificates_are_checked_on_every_request(settings: Any, tmp_path: Any) -> None:
    """The TLS context is built once per process and shared by every request: it keeps
    checking certificates, so an untrusted one is refused each time, never remembered."""
    import ssl

    cert, key = _self_signed(tmp_path)
    server = Server("127.0.0.1")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.CDP_OUTBOUND_ALLOW = ["127.0.0.1"]
    try:
        for _ in range(2):
            with pytest.raises(OutboundConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                outbound_request("GET", f"https://127.0.0.1:{server.port}/", timeout=5)
        assert server.hits == []
    finally:
        server.shutdown()
        server.server_close()
