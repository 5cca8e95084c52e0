"""Tests for rotator.net: HTTPS for every call.

Waits reported as they really are (the wait a server asked for, not the cap rotator
applies), retries in whole runs against the emulator, TLS trust (ca_bundle, SSL_CERT_FILE)
and TLS, transport and proxy failures called what they are.
"""

from __future__ import annotations

import socketserver
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from auth0_env import EmulatedTenant
from conftest import named, run_cli

from rotator.emulator import Fault
from rotator.net import describe, ssl_context
from rotator.settings import Trust


def failed_errors(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[Any]]:
    run = run_cli(*args, capsys=capsys)
    return run.code, [e["error"] for e in named(run.stderr, "rotation.failed")]


@pytest.mark.parametrize("path", ["/api/v2/", "/auth/token", "/oauth/token"])
def test_a_retry_after_of_an_hour_is_reported_as_an_hour(
    path: str, tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """``Retry-After: 3600`` (Management API, Apple, token): "asked to wait 3600 s", never 60 s."""
    tenant.add(client_secret=None)
    tenant.emu.inject(Fault(path=path, status=429 if path != "/auth/token" else 503,
                            retry_after=3600, times=None))
    config = tenant.write_config(extra='[schedule]\ndeadline = "5s"\n')
    code, [error] = failed_errors(capsys, "run-now", "--config", str(config))
    assert code == 1
    assert "asked to wait 3600 s" in error, error
    assert "deadline of 5 s" in error
    assert "wait 60 s" not in error


def test_a_certificate_for_another_host_name_is_called_that(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server whose certificate names another host: said so, not 'untrusted CA'."""
    import socket
    import ssl

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("somewhere-else.example").configure_cert(context)
    bundle = tmp_path / "other-ca.pem"
    bundle.write_bytes(ca.cert_pem.bytes())
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                context.wrap_socket(conn, server_side=True).close()
            except (OSError, ssl.SSLError):
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        text = tenant.write_config(extra='[schedule]\ndeadline = "3s"\n').read_text()
        text = (text.replace(tenant.emu.domain, f"localhost:{port}")
                .replace(tenant.emu.ca_pem_path, str(bundle)))
        config = tmp_path / "wrong-name.toml"
        config.write_text(text)
        code, _, err = run_cli("run-once", "--config", str(config), capsys=capsys)
    finally:
        listener.close()
    assert code == 1
    [failed] = named(err, "rotation.failed")
    assert "is for another host name" in failed["error"]
    assert "check auth0.domain" in failed["error"]


# -- retries and TLS trust in whole runs against the emulator ---------------------------------


@pytest.mark.slow
def test_rate_limited_twice_then_rotates(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two 429 answers to the read are waited out (Retry-After) and the rotation succeeds."""
    conn = tenant.add(client_secret=None)
    tenant.emu.inject(Fault(method="GET", path="/api/v2/connections", status=429, times=2,
                            retry_after=1))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    statuses = [r.status for r in tenant.emu.journal if r.method == "GET"]
    assert statuses == [429, 429, 200]
    assert "client_secret" in tenant.stored(conn["id"])["options"]


@pytest.mark.slow
def test_patch_always_failing_gives_up_in_bounded_time(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PATCH answering 500 forever fails the run (exit 1) in bounded time; old secret stays."""
    old = tenant.mint(age=40 * 86400)
    conn = tenant.add(client_secret=old)
    tenant.emu.inject(Fault(method="PATCH", status=500, times=None))
    started = time.monotonic()
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 60
    assert len(tenant.patches()) == 4  # the first try and three retries
    assert tenant.stored(conn["id"])["options"]["client_secret"] == old
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "write"
    assert "500" in failed["error"]


def test_dropped_connection_is_retried(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PATCH whose connection drops without an answer is retried and succeeds."""
    conn = tenant.add(client_secret=None)
    tenant.emu.inject(Fault(method="PATCH", drop=True))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    assert [r.status for r in tenant.patches()] == [0, 200]
    assert "client_secret" in tenant.stored(conn["id"])["options"]


def test_untrusted_certificate_fails_with_a_clear_message(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the emulator's CA, TLS verification fails and says how to add a CA."""
    tenant.add(client_secret=None)
    config = tenant.write_config()
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if not line.startswith("ca_bundle")))
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 1
    [failed] = named(err, "rotation.failed")
    assert "not trusted" in failed["error"]
    assert tenant.patches() == []


def test_ssl_cert_file_is_trusted(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSL_CERT_FILE is trusted for every call, the token request included."""
    tenant.add(client_secret=None)
    config = tenant.write_config()
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if not line.startswith("ca_bundle")))
    monkeypatch.setenv("SSL_CERT_FILE", tenant.emu.ca_pem_path)
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 0, err


# -- TLS trust and transport errors in words ------------------------------------------------


def test_ca_bundle_is_trusted_on_top_of_the_system_store(tmp_path: Path) -> None:
    """ssl_context adds ca_bundle's certificates to what the system store trusts."""
    import trustme

    ca = trustme.CA()
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_bytes(ca.cert_pem.bytes())
    plain = ssl_context(Trust())
    extended = ssl_context(Trust(bundle))
    assert extended.verify_mode == ssl.CERT_REQUIRED
    assert extended.check_hostname
    assert len(extended.get_ca_certs()) == len(plain.get_ca_certs()) + 1


def test_transport_errors_are_described_without_details() -> None:
    """Transport failures become short, secret-free phrases an operator can act on."""
    request = httpx.Request("GET", "https://t.example/")
    verify = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] ...", request=request)
    url = "https://t.example/"
    assert "ca_bundle" in describe(verify, url, "auth0.domain")
    timeout = describe(httpx.ReadTimeout("slow", request=request), url, "auth0.domain")
    assert timeout == "t.example timed out (ReadTimeout)"
    assert "closed the connection" in describe(
        httpx.RemoteProtocolError("Server disconnected", request=request), url, "auth0.domain"
    )


def test_ssl_cert_file_adds_to_the_system_store(tmp_path: Path, monkeypatch: Any) -> None:
    """SSL_CERT_FILE adds its CA; the system's CAs stay trusted (OpenSSL alone would drop them)."""
    import trustme

    plain = len(ssl_context(Trust()).get_ca_certs())
    bundle = tmp_path / "extra.pem"
    bundle.write_bytes(trustme.CA().cert_pem.bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert len(ssl_context(Trust()).get_ca_certs()) == plain + 1


# -- network failures in words, in whole runs: names, ports, proxies --------------------------


class _Refusing(socketserver.BaseRequestHandler):
    """A proxy that wants credentials: answers every CONNECT with 407."""

    def handle(self) -> None:
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"proxy\"\r\n"
                             b"Content-Length: 0\r\n\r\n")


@pytest.fixture
def proxy_407() -> Iterator[str]:
    """The URL of a running proxy that answers 407."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Refusing)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _fails_with(tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str], config_text: str,
                tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "net.toml"
    path.write_text(config_text)
    code, _, err = run_cli("run-once", "--config", str(path), capsys=capsys)
    assert code == 1, err
    [failed] = named(err, "rotation.failed")
    return failed


@pytest.mark.slow
def test_network_failures_name_what_failed_and_the_setting_to_check(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, proxy_407: str, refused_port: int,
) -> None:
    """Unresolvable domain, refused port, proxy asking 407, unreachable proxy: each said plainly."""
    tenant.add(client_secret=None)
    base = tenant.write_config(extra='[schedule]\ndeadline = "2s"\n').read_text()
    domain = tenant.emu.domain

    failed = _fails_with(tenant, capsys, base.replace(domain, "nonexistent-tenant.invalid"),
                         tmp_path)
    assert "cannot resolve the host name nonexistent-tenant.invalid" in failed["error"]
    assert "check auth0.domain" in failed["error"]

    failed = _fails_with(tenant, capsys, base.replace(domain, f"127.0.0.1:{refused_port}"),
                         tmp_path)
    assert "connection refused" in failed["error"]
    assert "check auth0.domain" in failed["error"]

    monkeypatch.setenv("HTTPS_PROXY", proxy_407)
    failed = _fails_with(tenant, capsys, base, tmp_path)
    assert "answered 407" in failed["error"]
    assert "HTTPS_PROXY" in failed["error"]

    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{refused_port}")
    failed = _fails_with(tenant, capsys, base, tmp_path)
    assert "cannot reach the proxy" in failed["error"]
    assert "HTTPS_PROXY" in failed["error"]

    monkeypatch.setenv("NO_PROXY", "localhost")
    code, _, err = run_cli("run-once", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
