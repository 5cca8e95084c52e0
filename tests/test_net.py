"""Tests for rotator.net: waits reported as they really are (the wait a server asked for, not
the cap rotator applies), and TLS failures called what they are."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import trustme
from auth0_env import EmulatedTenant
from conftest import named, run_cli

from rotator import cli
from rotator.emulator import Fault


def failed_errors(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[Any]]:
    code = cli.main([*args, "--log-format", "json"])
    _, err = capsys.readouterr()
    events = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    return code, [e["error"] for e in events if e["event"] == "rotation.failed"]


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
