"""Waits reported as they really are: the wait a server asked for, not the cap rotator applies."""

from __future__ import annotations

import json
from typing import Any

import pytest
from auth0_env import EmulatedTenant

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
