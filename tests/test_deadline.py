"""Tests for rotator.deadline: one wall-clock deadline per run and per request (enforced in
rotator.net): no trickle nor Retry-After outlives it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from auth0_env import EmulatedTenant
from conftest import SERVICES_ID, named, run_cli

from rotator.apple import Apple
from rotator.deadline import Deadline
from rotator.emulator import Fault
from rotator.settings import Trust

#: Seconds between two bytes of a trickled answer: each read is well within its timeout.
TRICKLE = 0.2


@pytest.mark.slow
def test_apple_answer_trickling_bytes_ends_at_the_deadline(tenant: EmulatedTenant) -> None:
    """An Apple answer sent a byte every 0.2 s is cut off at the 2 s deadline, not read out."""
    tenant.emu.inject(Fault(path="/auth/token", trickle=TRICKLE, times=None))
    apple = Apple(tenant.emu.apple_token_url, Trust(Path(tenant.emu.ca_pem_path)), Deadline(2.0))
    began = time.monotonic()
    try:
        answer = apple.ask("not-a-secret", SERVICES_ID)
    finally:
        apple.close()
    took = time.monotonic() - began
    assert took < 6.0, f"the trickled answer held the request {took:.1f} s (deadline 2 s)"
    assert answer.verdict == "unknown"
    assert "deadline" in answer.detail


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/oauth/token", "/api/v2/connections"])
def test_auth0_answer_trickling_bytes_ends_at_the_deadline(
    tenant: EmulatedTenant, path: str
) -> None:
    """A token or Management API answer trickled byte by byte fails at the deadline."""
    from rotator import config
    from rotator.auth0 import Tenant as Auth0Tenant
    from rotator.errors import RotatorError

    tenant.add(client_secret=None)
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    auth0 = settings.connections[0].auth0
    assert auth0 is not None
    side = Auth0Tenant(auth0)
    if path != "/oauth/token":
        side.serve(Deadline(30.0))
        side.granted_scopes()  # a token first, so only the read trickles
    tenant.emu.inject(Fault(path=path, trickle=TRICKLE, times=None))
    side.serve(Deadline(2.0))
    began = time.monotonic()
    try:
        with pytest.raises(RotatorError, match="deadline"):
            side.read("apple")
    finally:
        side.close()
    took = time.monotonic() - began
    assert took < 6.0, f"the trickled answer held the request {took:.1f} s (deadline 2 s)"


@pytest.mark.parametrize("fault", [
    pytest.param(Fault(method="GET", path="/api/v2/", status=429, retry_after=3600),
                 id="retry-after-3600"),
    pytest.param(Fault(method="GET", path="/api/v2/", trickle=0.5), id="trickling-answer"),
])
@pytest.mark.slow
def test_the_run_ends_by_its_deadline(
    tenant: EmulatedTenant, fault: Fault, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Retry-After of an hour, or an answer a byte at a time: the run ends at its deadline."""
    tenant.add(client_secret=None)
    tenant.emu.inject(fault)
    config = tenant.write_config(extra='[schedule]\ndeadline = "3s"\n')
    began = time.monotonic()
    code, _, err = run_cli("run-once", "--config", str(config), capsys=capsys)
    assert time.monotonic() - began < 6
    assert code == 1
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "read"
    assert "deadline of 3 s" in failed["error"]
    assert tenant.patches() == []
