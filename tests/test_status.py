"""Tests for rotator.status, `rotator status`: the table, the JSON, and `--warn-within` as a
monitoring check.

The CLI runs in this process (``cli.main``, the console script's code path)
against the emulator over TLS; the live secrets are real ones minted with the
test key, so Apple (the emulator) accepts them.
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from auth0_env import EmulatedTenant, tenants_on_emulators, two_tenants
from conftest import DAY, KEY_ID, SERVICES_ID, Run, assert_refused, run_cli

from rotator.emulator import Fault

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def status(*args: str, capsys: pytest.CaptureFixture[str]) -> Run:
    """`rotator status` in this process, output captured."""
    return run_cli("status", *args, capsys=capsys)


def rows(run: Run) -> dict[str, dict[str, Any]]:
    """The --json output, by connection."""
    return {row["connection"]: row for row in json.loads(run.stdout)}


def table_line(run: Run, connection: str) -> str:
    (line,) = [ln for ln in run.stdout.splitlines() if ln.startswith(f"{connection} ")]
    return line


@pytest.fixture
def two(tenant: EmulatedTenant) -> str:
    """A tenant with `apple` expiring in 10 days and `apple-ios` in about 180; its config."""
    tenant.add("apple", client_secret=tenant.mint(lifetime=10 * DAY))
    tenant.add("apple-ios", services_id="com.example.ios")
    return str(tenant.write_config([("apple", SERVICES_ID),
                                    ("apple-ios", "com.example.ios")]))


def test_without_warn_within_a_secret_ten_days_from_expiry_is_healthy(
    two: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Readable, unexpired and accepted by Apple: exit 0, nothing marked WARN."""
    run = status("--config", two, capsys=capsys)

    assert run.code == 0, run.output
    assert "WARN" not in run.stdout


def test_table_marks_a_secret_inside_the_window_and_exits_1(
    two: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--warn-within 14d: the 10-day secret is marked WARN with a note, and status exits 1."""
    run = status("--config", two, "--warn-within", "14d", capsys=capsys)

    assert run.code == 1, run.output
    assert "WARN" in table_line(run, "apple")
    assert "WARN" not in table_line(run, "apple-ios")
    assert "apple: expires within the --warn-within window" in run.stdout.splitlines()
    assert "apple-ios: expires within" not in run.stdout


def test_table_with_every_secret_outside_the_window_exits_0(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """--warn-within 14d with a fresh 180-day secret: no WARN, exit 0."""
    tenant.add()
    run = status("--config", str(tenant.write_config()), "--warn-within", "14d", capsys=capsys)

    assert run.code == 0, run.output
    assert "WARN" not in run.stdout


def test_json_marks_a_secret_inside_the_window_and_exits_1(
    two: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json --warn-within 14d: expires_within_warning and healthy say which one, exit 1."""
    run = status("--config", two, "--json", "--warn-within", "14d", capsys=capsys)

    assert run.code == 1, run.output
    found = rows(run)
    assert found["apple"]["expires_within_warning"] is True
    assert found["apple"]["healthy"] is False
    assert found["apple"]["apple"] == "accepted"
    assert found["apple-ios"]["expires_within_warning"] is False
    assert found["apple-ios"]["healthy"] is True


@pytest.mark.parametrize(("window", "code"), [("9d", 0), ("11d", 1)])
def test_json_window_edges(
    window: str, code: int, two: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 10-day secret is outside a 9-day window and inside an 11-day one."""
    run = status("--config", two, "--json", "--warn-within", window, capsys=capsys)

    assert run.code == code, run.output
    assert rows(run)["apple"]["expires_within_warning"] is bool(code)


def test_json_without_warn_within_warns_about_nothing(
    two: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --warn-within, expires_within_warning is false for every connection."""
    run = status("--config", two, "--json", capsys=capsys)

    assert run.code == 0, run.output
    assert {r["expires_within_warning"] for r in rows(run).values()} == {False}


def test_json_carries_iso_8601_utc_beside_each_epoch(
    two: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """issued_at, expires_at and due_at each come with an *_utc twin naming the same second."""
    run = status("--config", two, "--json", capsys=capsys)

    assert run.code == 0, run.output
    for row in rows(run).values():
        for field in ("issued_at", "expires_at", "due_at"):
            epoch, text = row[field], row[f"{field}_utc"]
            assert isinstance(epoch, int), (field, epoch)
            assert ISO_UTC.match(text), (field, text)
            assert datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) == (
                datetime.fromtimestamp(epoch, UTC)
            )


def test_json_times_are_null_without_a_secret(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """No secret yet: issued and expiry times are null in both forms, due now; exit 1."""
    tenant.add(client_secret=None)
    run = status("--config", str(tenant.write_config()), "--json", "--warn-within", "14d",
                 capsys=capsys)

    assert run.code == 1, run.output
    (row,) = rows(run).values()
    for field in ("issued_at", "expires_at"):
        assert row[field] is None
        assert row[f"{field}_utc"] is None
    assert row["due"] is True
    assert ISO_UTC.match(row["due_at_utc"])
    assert row["expires_within_warning"] is False


@pytest.mark.parametrize("value", ["soon", "0s", "-3d", "14 days", "400d"])
def test_bad_warn_within_exits_2_naming_it(
    value: str, tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --warn-within that is no duration, zero or too long: exit 2 naming it, nothing asked."""
    tenant.add()
    run = status("--config", str(tenant.write_config()), f"--warn-within={value}", capsys=capsys)

    assert_refused(run, "--warn-within")
    assert tenant.emu.journal == []


def _table_of(*names: str) -> list[str]:
    from rotator.outcome import Outcome, Report
    from rotator.status import to_table

    now = 1_800_000_000
    outcomes = [Outcome(connection=name, tenant="t.example.com", checked=True, due=False,
                        why="not due", apple="accepted", kid="ABC123DEFG", sub="com.x",
                        iat=now - DAY, exp=now + 100 * DAY, due_at=now + 29 * DAY)
                for name in names]
    return to_table(Report(outcomes, at=now)).split("\n\n")[0].splitlines()


def _columns(text: str) -> int:
    """Terminal columns, counted here independently: East Asian wide 2, combining 0."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else
               0 if unicodedata.combining(c) else 1 for c in text)


def test_the_table_stays_aligned_with_wide_characters() -> None:
    """A name with wide (CJK) characters moves no column: TENANT starts at one display column."""
    lines = _table_of("apple", "アップル接続", "e\u0301clair")
    starts = {_columns(line[:line.index("t.example.com" if i else "TENANT")])
              for i, line in enumerate(lines)}
    assert len(starts) == 1, lines


def test_a_name_holding_a_newline_is_shown_escaped_on_one_line() -> None:
    """A connection name with a newline or an escape character never breaks the table."""
    lines = _table_of("evil\nname", "bell\x1b[2J")
    assert len(lines) == 3, lines
    assert lines[1].startswith("evil\\nname ")
    assert lines[2].startswith("bell\\x1b[2J ")


def test_a_connection_without_a_secret_shows_no_secret_not_unknown(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """No secret: APPLE is "no secret" in the table and its note, "no_secret" in the JSON."""
    tenant.add(client_secret=None)
    config = str(tenant.write_config())
    table = status("--config", config, capsys=capsys)
    data = status("--config", config, "--json", capsys=capsys)

    assert table_line(table, "apple").endswith("yes  no secret")
    assert "apple: no secret to show Apple; run-once or run-now publishes one" in (
        table.stdout.splitlines())
    assert "unknown" not in table.stdout
    assert rows(data)["apple"]["apple"] == "no_secret"


@pytest.mark.slow
def test_apple_out_of_reach_names_the_apple_check_switch(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Apple answering 503 until the deadline: the note says unknown and names apple.check."""
    tenant.add()
    tenant.emu.inject(Fault(path="/auth/token", status=503, times=None))
    run = status("--config", str(tenant.write_config()), "--deadline", "4s", capsys=capsys)

    assert run.code == 1, run.output
    assert table_line(run, "apple").endswith("unknown")
    [note] = [ln for ln in run.stdout.splitlines() if ln.startswith("apple: Apple could not")]
    assert "set apple.check = false (APPLE_CHECK=false)" in note


def test_with_two_tenants_each_note_names_the_tenant(
    tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`apple` on two tenants, one broken: every note starts TENANT/apple."""
    with ExitStack() as stack:
        tenants = tenants_on_emulators(stack, tmp_path, key_path)
        tenants[0].add()  # the second tenant has no connection named apple
        run = status("--config", str(two_tenants(tmp_path, tenants)), capsys=capsys)

    assert run.code == 1, run.output
    first, second = (t.emu.domain for t in tenants)
    notes = run.stdout.split("\n\n", 1)[1].splitlines()
    assert f"{first}/apple: not due yet" in notes
    assert any(n.startswith(f"{second}/apple: ") and "no connection named 'apple'" in n
               for n in notes), notes
    assert all(n.startswith((f"{first}/apple: ", f"{second}/apple: ")) for n in notes), notes


def test_status_json_reports_the_live_secret(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """status --json shows kid, sub, issued/expiry, days left and the due verdict."""
    live = tenant.mint(age=10 * 86400)
    tenant.add(client_secret=live)
    code, out, _ = run_cli("status", "--json", "--config", str(tenant.write_config()),
                           capsys=capsys)
    assert code == 0
    [row] = json.loads(out)
    claims = jwt.decode(live, options={"verify_signature": False})
    assert row["kid"] == KEY_ID
    assert row["sub"] == SERVICES_ID
    assert (row["issued_at"], row["expires_at"]) == (claims["iat"], claims["exp"])
    assert row["due"] is False
    assert 169 < row["days_left"] < 171
    assert row["due_at"] == claims["iat"] + 30 * 86400
    assert tenant.patches() == []


def test_status_exits_1_for_an_expired_secret(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """An expired live secret makes status exit 1, and the table says it is due."""
    tenant.add(client_secret=tenant.mint(age=3 * 86400, lifetime=2 * 86400))
    code, out, _ = run_cli("status", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    assert "apple" in out
    assert "yes" in out
