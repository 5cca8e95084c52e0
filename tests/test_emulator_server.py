"""Tests for rotator.emulator.server: keep-alive, concurrency, a prompt stop, auth0-python's
client against it, and a light import."""

from __future__ import annotations

import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from conftest import ROOT
from emulator_helpers import (
    OPTIONS,
    bearer,
    get_token,
    sample_emu,
    sample_http,
)

from rotator.emulator import Emulator

FIXTURES = (sample_emu, sample_http)  # the `emu` and `http` fixtures, used here by those names


# -- transport ------------------------------------------------------------------------------------


def test_keep_alive_and_concurrency(http: httpx.Client, emu: Emulator) -> None:
    """Many requests over pooled keep-alive connections, from several threads, all succeed."""
    headers = bearer(get_token(http, emu))
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            status = http.get("/api/v2/connections", headers=headers).status_code
            with lock:
                results.append(status)

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [200] * 50


def test_stop_is_prompt_with_idle_keep_alive() -> None:
    """stop() takes under a second with an idle keep-alive connection open; CA file gone."""
    emulator = Emulator().start()
    ca_path = Path(emulator.ca_pem_path)
    client = httpx.Client(verify=ssl.create_default_context(cafile=str(ca_path)))
    try:
        assert client.get(f"{emulator.base_url}/nowhere").status_code == 404
        started = time.monotonic()
        emulator.stop()
        assert time.monotonic() - started < 1.0
        assert not ca_path.exists()
        with pytest.raises(httpx.TransportError):
            client.get(f"{emulator.base_url}/nowhere")
    finally:
        client.close()
        emulator.stop()


def test_auth0_python_compatibility(http: httpx.Client, emu: Emulator) -> None:
    """auth0-python's ManagementClient lists, gets and updates connections against the emulator."""
    from auth0.management import ManagementClient

    token = get_token(http, emu)
    context = ssl.create_default_context(cafile=emu.ca_pem_path)
    with httpx.Client(verify=context) as client:
        api = ManagementClient(domain=emu.domain, token=token, httpx_client=client)
        listed = list(api.connections.list(name="apple", strategy=["oauth2"]))
        assert [c.name for c in listed] == ["apple"]
        ident = listed[0].id
        assert ident is not None
        got = api.connections.get(ident)
        assert got.options is not None
        options = dict(got.options) | {"client_secret": "rotated"}
        updated = api.connections.update(ident, options=cast(Any, options), display_name="Apple")
        assert updated.display_name == "Apple"
    stored = emu.connection("apple")
    assert stored["options"] == OPTIONS | {"client_secret": "rotated"}
    assert stored["display_name"] == "Apple"
    listing = [r for r in emu.journal if r.method == "GET" and r.path == "/api/v2/connections"]
    assert listing[0].query["take"] == ["50"]


def test_import_is_light() -> None:
    """Importing rotator.emulator loads no auth0, APScheduler, prometheus_client or trustme."""
    code = (
        "import sys, rotator.emulator; "
        "heavy = ('auth0', 'apscheduler', 'prometheus_client', 'trustme'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == ""
