"""Tests for rotator.emulator.loopback: the Emulator's life (start, stop, twice, as a context),
its addresses, its throwaway CA and the admin file it writes."""

from __future__ import annotations

import json
import ssl
import stat
import threading
import time
from pathlib import Path

import httpx
import pytest
from conftest import wait_for
from emulator_helpers import client_for, sample_emu

from rotator.emulator import Emulator, Fault

FIXTURES = (sample_emu,)  # the `emu` fixture, used here by that name


# -- trust ------------------------------------------------------------------------------------


def test_tls_requires_the_ca(emu: Emulator) -> None:
    """A client that does not load the emulator's CA fails certificate verification."""
    with (
        httpx.Client(verify=ssl.create_default_context()) as client,
        pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        client.get(f"{emu.base_url}/api/v2/connections")


def test_certificate_valid_for_ip(emu: Emulator) -> None:
    """The certificate also covers 127.0.0.1, and client_ssl_context() trusts it."""
    with httpx.Client(verify=emu.client_ssl_context()) as client:
        response = client.get(f"https://127.0.0.1:{emu.port}/api/v2/connections")
    assert response.status_code == 401


def test_each_emulator_has_a_ca_of_its_own() -> None:
    """A client that trusts one emulator's CA does not trust another's."""
    with Emulator() as first, Emulator() as second:
        assert first.ca_pem != second.ca_pem
        with httpx.Client(verify=first.client_ssl_context()) as client:
            assert client.get(f"{first.base_url}/nowhere").status_code == 404
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                client.get(f"{second.base_url}/nowhere")


def test_the_ca_file_holds_the_ca(emu: Emulator) -> None:
    """ca_pem_path is a PEM file of ca_pem, for clients that take a path."""
    assert Path(emu.ca_pem_path).read_bytes() == emu.ca_pem
    assert emu.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")


# -- addresses ----------------------------------------------------------------------------------


def test_addresses_name_the_port_it_bound(emu: Emulator) -> None:
    """Port 0 binds a free port; domain, base_url and apple_token_url are built on it."""
    assert emu.port > 0
    assert emu.domain == f"localhost:{emu.port}"
    assert emu.base_url == f"https://localhost:{emu.port}"
    assert emu.apple_token_url == f"https://localhost:{emu.port}/auth/token"


def test_default_audience_is_the_emulator_address(emu: Emulator) -> None:
    """Without audience, the Management API identifier is https://localhost:PORT/api/v2/."""
    assert emu.audience == f"https://localhost:{emu.port}/api/v2/"


def test_a_custom_audience_is_kept() -> None:
    """audience= replaces the default identifier (to emulate a custom domain)."""
    custom = "https://tenant.example.com/api/v2/"
    with Emulator(audience=custom) as emu:
        assert emu.audience == custom


# -- life ----------------------------------------------------------------------------------------


def test_before_start_nothing_has_an_address() -> None:
    """Before start(), every address and file says the emulator is not started."""
    emu = Emulator()
    for name in ("port", "domain", "base_url", "ca_pem", "ca_pem_path", "admin_file"):
        with pytest.raises(RuntimeError, match="emulator not started"):
            getattr(emu, name)
    emu.stop()  # harmless


def test_start_returns_it_and_a_second_start_is_refused() -> None:
    """start() returns the emulator itself; starting it again raises."""
    emu = Emulator()
    try:
        assert emu.start() is emu
        with pytest.raises(RuntimeError, match="already started"):
            emu.start()
    finally:
        emu.stop()


def test_the_admin_file_is_written_at_start_and_removed_at_stop() -> None:
    """Mode 600, naming the address, the CA file and the admin token; gone with the CA."""
    with Emulator() as emu:
        path = emu.admin_file
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert json.loads(path.read_text()) == {
            "url": emu.base_url, "ca": emu.ca_pem_path, "token": emu.admin_token}
        ca = Path(emu.ca_pem_path)
    assert not path.exists()
    assert not ca.exists()
    assert not ca.parent.exists()


def test_stop_twice_is_harmless_and_a_context_stops_on_error() -> None:
    """stop() is idempotent; leaving the with block by an exception stops it too."""
    started: list[Emulator] = []

    def fail_inside() -> None:
        with Emulator() as emu:
            started.append(emu)
            raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        fail_inside()
    (emu,) = started
    with pytest.raises(RuntimeError, match="not started"):
        _ = emu.ca_pem_path  # its folder is gone
    emu.stop()


def test_stop_cuts_a_delayed_request_short() -> None:
    """A request held by a long delay fault is abandoned, unanswered, as soon as stop() runs."""
    emu = Emulator().start()
    emu.inject(Fault(delay=30))
    failures: list[Exception] = []

    def ask() -> None:
        with client_for(emu) as http:
            try:
                http.get("/nowhere")
            except httpx.TransportError as exc:
                failures.append(exc)

    asking = threading.Thread(target=ask)
    asking.start()
    wait_for(lambda: emu.in_flight() == [("GET", "/nowhere")], 10, "the request in flight")
    started = time.monotonic()
    emu.stop()
    asking.join(timeout=5)
    assert time.monotonic() - started < 1.0
    assert len(failures) == 1
    assert [r.status for r in emu.journal] == [0]

