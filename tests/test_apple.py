"""Apple's verdict comes only from Apple's documented answer: HTTP 400 with a JSON ``error``.

Odd answers (a 200, a redirect, a 401, a 429, a 5xx carrying Apple's error
words) come from the emulator's raw-body faults over real TLS: whatever their
body says, they are "could not ask", so nothing is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from auth0_env import Tenant

from rotator import cli
from rotator.emulator import Fault


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main([*args, "--log-format", "json"])
    out, err = capsys.readouterr()
    return code, out, err


def named(stderr: str, event: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(x) for x in stderr.splitlines() if x.startswith("{"))
            if e["event"] == event]


def _odd_apple(tenant: Tenant, tmp_path: Path, status: int, error: str) -> Path:
    """Apple's token endpoint answering ``status`` with ``{"error": error}``, every time.

    ``Retry-After: 0`` lets the retries of a 429 or 5xx run out at once, so the
    last answer is judged rather than the deadline cutting in first.
    """
    body = json.dumps({"error": error}).encode()
    tenant.emu.inject(Fault(path="/auth/token", status=status, body=body, times=None,
                            retry_after=0))
    return tenant.write_config(extra='[schedule]\ndeadline = "30s"\n')


@pytest.mark.parametrize("status", [200, 302, 401, 429, 500, 503])
def test_invalid_grant_under_any_status_but_400_is_no_verdict_and_nothing_is_written(
    status: int, tenant: Tenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``invalid_grant`` with a status other than 400 is "could not ask": no PATCH, exit 1."""
    conn = tenant.add(client_secret=None)
    config = _odd_apple(tenant, tmp_path, status, "invalid_grant")
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 1, err
    assert tenant.patches() == []
    assert "client_secret" not in tenant.stored(conn["id"])["options"]
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "apple_check", failed
    assert "could not ask Apple about the new secret" in failed["error"]


@pytest.mark.parametrize("status", [401, 429, 503])
def test_invalid_client_under_any_status_but_400_is_unknown_not_refused(
    status: int, tenant: Tenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``invalid_client`` with a status other than 400 is "unknown", not Apple's refusal."""
    tenant.add()
    config = _odd_apple(tenant, tmp_path, status, "invalid_client")
    code, out, err = run_cli("status", "--json", "--config", str(config), capsys=capsys)
    [row] = json.loads(out)
    assert (code, row["apple"]) == (1, "unknown"), err


def test_400_with_a_non_json_body_is_unknown(
    tenant: Tenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 400 whose body is not JSON carries no verdict either."""
    tenant.add()
    tenant.emu.inject(Fault(path="/auth/token", status=400, body=b"invalid_grant", times=None))
    config = tenant.write_config(extra='[schedule]\ndeadline = "30s"\n')
    _, out, _ = run_cli("status", "--json", "--config", str(config), capsys=capsys)
    assert json.loads(out)[0]["apple"] == "unknown"


def test_apples_real_answers_are_still_verdicts(
    tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """The emulator's own 400 ``invalid_grant`` is "accepted" (the fix refuses no real answer)."""
    tenant.add()
    _, out, _ = run_cli("status", "--json", "--config", str(tenant.write_config()),
                        capsys=capsys)
    assert json.loads(out)[0]["apple"] == "accepted"
