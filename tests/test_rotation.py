"""Tests for rotator.rotation: the steps end to end, rotator's real Auth0 client against the
emulator over TLS (or the fakes): a dry run, an unexpected error, a refused write's error
redacted, and the truth about a write whose answer is lost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from auth0_env import EmulatedTenant
from conftest import SERVICES_ID, dump_hook, named, pieces, run_cli
from fakes import AlteringTenant, FakeTenant

from rotator import cli, secret
from rotator.emulator import Fault
from rotator.modes import Mode
from rotator.seams import Connection


def test_dry_run_reads_and_mints_but_writes_nothing(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run reports what it would write and sends no PATCH."""
    conn = tenant.add(client_secret=None)
    code, _, err = run_cli("run-now", "--dry-run", "--config", str(tenant.write_config()),
                           capsys=capsys)
    assert code == 0
    assert tenant.patches() == []
    [dry] = named(err, "rotation.dry_run")
    assert dry["would_write"] == ["options", "display_name"]
    assert "client_secret" not in tenant.stored(conn["id"])["options"]


class _CrashingTenant(FakeTenant):
    """The shared fake, whose read fails with an error rotator does not know."""

    def read(self, ref: str) -> Connection:
        raise RuntimeError("unexpected internal failure")


@pytest.mark.parametrize(("level", "traceback_logged"), [("info", False), ("debug", True)])
def test_unexpected_error_fails_one_connection_with_traceback_only_at_debug(
    tenant: EmulatedTenant, level: str, traceback_logged: bool
) -> None:
    """An unknown exception fails its connection (exit 1); its traceback is logged at debug only."""
    import io

    from rotator import config, logs, runner

    stream = io.StringIO()
    logs.configure("json", level, stream)
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    report = runner.run(settings, pool=runner.Pool(auth0=lambda _: _CrashingTenant()))
    assert cli.exit_code(report) == 1
    assert report.outcomes[0].error == "unexpected error: RuntimeError"
    logged = named(stream.getvalue(), "rotation.failed")
    assert [e["step"] for e in logged] == ["read"]
    assert ("Traceback" in stream.getvalue()) is traceback_logged


class _EchoingTenant(AlteringTenant):
    """A tenant refusing the PATCH with an error quoting the body's client_secret, cut off,
    in escaped JSON (as a payload validation error might)."""

    def __init__(self) -> None:
        super().__init__(lambda options: options, {"client_id": SERVICES_ID})
        self.sent: list[str] = []

    def write(self, conn_id: str, body: Any) -> Connection:
        from rotator.errors import Auth0WriteError

        new = str(body["options"]["client_secret"])
        self.sent.append(new)
        quoted = json.dumps(json.dumps({"client_secret": new[:60]}))[1:-1]
        raise Auth0WriteError(f"writing connection {conn_id}: 400 Payload validation: {quoted}")


def test_a_write_error_quoting_the_new_secret_is_redacted_after_the_secret_is_forgotten(
    tenant: EmulatedTenant,
) -> None:
    """The step's error is redacted while the new secret is known: rotation.failed, the
    outcome and the on_failure hook's view carry no 16-character piece of it."""
    import io

    from rotator import config, logs, runner

    stream = io.StringIO()
    logs.configure("json", "info", stream)
    seen: list[str] = []
    side = _EchoingTenant()
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    report = runner.run(settings, runner.Options(
        mode=Mode.rotating(force=True),
        on_failure=lambda conn, outcome: seen.append(outcome.error or "")),
        runner.Pool(auth0=lambda _: side))
    [new] = side.sent
    [outcome] = report.outcomes
    [failed] = named(stream.getvalue(), "rotation.failed")
    assert "Payload validation" in failed["error"]
    for text in (failed["error"], outcome.error or "", *seen):
        assert not [p for p in pieces(new, 16) if p in text], text


# -- the truth about a write ---------------------------------------------------------


@pytest.mark.slow
def test_a_write_whose_answer_is_lost_every_time_but_landed_is_a_rotation(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PATCH applied, answer dropped on every try: exit 0, secret.rotated, the hook gets it."""
    conn = tenant.add(client_secret=tenant.mint(age=40 * 86400))
    got = tmp_path / "got"
    hook = dump_hook(tmp_path, f'cat > "{got}"\n')
    tenant.emu.inject(Fault(method="PATCH", answer_dropped=True, times=None))
    config = tenant.write_config(extra=f'[hooks]\npost_rotate = ["{hook}"]\n')
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 0, err
    stored = tenant.stored(conn["id"])["options"]["client_secret"]
    [rotated] = named(err, "secret.rotated")
    assert rotated["fingerprint"] == secret.fingerprint(stored)
    assert named(err, "write.answer_lost")
    assert got.read_text().strip() == stored
    assert all(r.status == 0 for r in tenant.patches())


def test_a_write_that_did_not_land_is_reported_with_the_old_secret_in_place(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PATCH refused outright (403): step write, and the check after says the old one stays."""
    old = tenant.mint(age=40 * 86400)
    conn = tenant.add(client_secret=old)
    tenant.emu.inject(Fault(method="PATCH", status=403, times=None))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "write"
    assert "the old secret is still in place" in failed["error"]
    assert tenant.stored(conn["id"])["options"]["client_secret"] == old
