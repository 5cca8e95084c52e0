"""Tests for rotator.auth0_rules: Auth0's refusals, the PATCH body and its verification.

Directly, then in whole runs (the CLI or the runner) against the emulator or the fakes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest
from auth0_env import EmulatedTenant
from conftest import SERVICES_ID, named, run_cli, run_rotator
from fakes import AlteringTenant, FakeTenant

from rotator import secret
from rotator.auth0_rules import SCOPES, body, missing_scopes, refuse, secret_in
from rotator.emulator import Emulator
from rotator.errors import RefusedError, VerificationError
from rotator.modes import Mode
from rotator.seams import Connection

OPTIONS = {"client_id": SERVICES_ID, "client_secret": "old", "scope": "name email", "flag": False}


def conn(**changes: object) -> Connection:
    fields: dict[str, object] = {"id": "con_1", "name": "apple", "strategy": "oauth2",
                                 "display_name": "Apple", "options": dict(OPTIONS)}
    return Connection(**(fields | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "words"), [
    ({"strategy": "apple"}, "a native Apple connection makes its own secret"),
    ({"strategy": "google-oauth2"}, r"strategy oauth2\) only"),
    ({"options": None}, "the token lacks read:connections_options"),
    ({"options": {**OPTIONS, "client_id": "com.other"}}, "not the configured Services ID"),
])
def test_refuses_what_must_not_be_written(changes: dict[str, object], words: str) -> None:
    """Another strategy, hidden options or another Services ID: RefusedError saying why."""
    with pytest.raises(RefusedError, match=words):
        refuse(conn(**changes), SERVICES_ID)
    refuse(conn(), SERVICES_ID)


def test_the_body_is_the_options_read_with_the_secret_replaced() -> None:
    """Every option kept (types too), client_secret replaced, display_name carried; nothing else."""
    assert body(conn(), "new") == {"options": {**OPTIONS, "client_secret": "new"},
                                   "display_name": "Apple"}
    assert body(conn(display_name=None), "new") == {"options": {**OPTIONS,
                                                                "client_secret": "new"}}
    assert (secret_in(conn()), secret_in(conn(options={}))) == ("old", None)


def test_verify_fails_on_a_changed_type_or_display_name_and_reports_added_options() -> None:
    """False stored as 0 or a changed display_name fail; an option Auth0 added is returned."""
    side, found = FakeTenant(), conn()
    sent = body(found, "new")["options"]
    assert side.verify(found, conn(options={**sent, "extra": 1}), "new") == ["extra"]
    with pytest.raises(VerificationError, match="options differing: flag"):
        side.verify(found, conn(options={**sent, "flag": 0}), "new")
    with pytest.raises(VerificationError, match="display_name changed"):
        side.verify(found, conn(options=sent, display_name="apple"), "new")


def test_missing_scopes_in_the_order_they_are_listed() -> None:
    """The four scopes rotator needs, minus those granted."""
    assert missing_scopes(frozenset(SCOPES)) == []
    assert missing_scopes(frozenset({"read:connections"})) == list(SCOPES[1:])


@pytest.mark.parametrize(
    ("stored_as", "sent"),
    [(0, False), (False, 0), (1, True), (True, 1), ("1", 1), (None, "")],
    ids=["0-for-false", "false-for-0", "1-for-true", "true-for-1", "string-for-number",
         "null-for-empty"],
)
def test_verification_sees_a_changed_json_type(
    tenant: EmulatedTenant, stored_as: Any, sent: Any
) -> None:
    """An option stored back with another JSON type than sent fails verification."""

    from fakes import AlteringTenant

    from rotator import config, runner

    side = AlteringTenant(lambda options: {**options, "flag": stored_as},
                          {"client_id": SERVICES_ID, "flag": sent})
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    report = runner.run(settings, runner.Options(mode=Mode.rotating(force=True)),
                        runner.Pool(auth0=lambda _: side))
    [outcome] = report.outcomes
    assert (outcome.rotated, outcome.step) == (False, "verify")
    assert "flag" in (outcome.error or "")


# -- the rules in whole runs against the emulator: the PATCH body, the refusals, verification ----


def test_run_now_keeps_every_option_and_display_name(
    tenant: EmulatedTenant, public_key: Any
) -> None:
    """run-now writes only the secret: every other option and display_name survive."""
    conn = tenant.add(client_secret=tenant.mint(age=86400))
    config = tenant.write_config()

    result = run_rotator("run-now", "--config", str(config), "--log-format", "json",
                         process=True)

    assert result.code == 0, result.stderr
    stored = tenant.stored(conn["id"])
    new = stored["options"]["client_secret"]
    assert new != conn["options"]["client_secret"]
    assert {k: v for k, v in stored["options"].items() if k != "client_secret"} == (
        tenant.other_options(conn)
    )
    assert stored["display_name"] == conn["display_name"]
    [patch] = tenant.patches()
    assert set(patch.body) == {"options", "display_name"}
    claims = jwt.decode(new, public_key, algorithms=["ES256"], audience="https://appleid.apple.com")
    assert claims["sub"] == SERVICES_ID
    [rotated] = named(result.stderr, "secret.rotated")
    assert rotated["fingerprint"] == secret.fingerprint(new)
    assert rotated["connection"] == "apple"
    assert rotated["tenant"] == tenant.emu.domain


def test_connection_without_display_name_is_patched_with_options_only(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A connection with no display_name gets a PATCH of options alone."""
    conn = tenant.emu.add_connection({
        "name": "apple", "strategy": "oauth2",
        "options": {"client_id": SERVICES_ID, "scope": "name email"},
    })
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    [patch] = tenant.patches()
    assert set(patch.body) == {"options"}
    assert tenant.stored(conn["id"])["options"]["scope"] == "name email"


def test_native_apple_connection_is_refused(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A native `apple` strategy connection is refused: no PATCH, exit 1, and why."""
    tenant.emu.add_connection({"name": "apple", "strategy": "apple",
                               "options": {"client_id": SERVICES_ID}})
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    assert tenant.patches() == []
    [failed] = named(err, "rotation.failed")
    assert "strategy 'apple'" in failed["error"]
    assert "makes its own secret" in failed["error"]


def test_options_hidden_by_missing_scope_is_refused(
    emu: Emulator, tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without read:connections_options the options are absent: refuse rather than wipe them."""
    narrow = EmulatedTenant(
        emu, tmp_path, key_path,
        scopes=("read:connections", "update:connections", "update:connections_options"))
    narrow.add(client_secret=None)
    code, _, err = run_cli("run-now", "--config", str(narrow.write_config()), capsys=capsys)
    assert code == 1
    assert narrow.patches() == []
    [failed] = named(err, "rotation.failed")
    assert "read:connections_options" in failed["error"]
    assert failed["step"] == "read"


def test_foreign_services_id_is_refused(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """options.client_id other than the configured Services ID: refuse, no PATCH."""
    tenant.add(client_secret=None, services_id="com.example.someone-else")
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    assert tenant.patches() == []
    [failed] = named(err, "rotation.failed")
    assert "com.example.someone-else" in failed["error"]
    assert SERVICES_ID in failed["error"]


@pytest.mark.parametrize(
    ("alter", "rotated", "event"),
    [
        (lambda o: o, True, "secret.rotated"),
        (lambda o: {**o, "server_default": True}, True, "verify.options_added"),
        (lambda o: {k: v for k, v in o.items() if k != "scope"}, False, "rotation.failed"),
        (lambda o: {**o, "scope": "email"}, False, "rotation.failed"),
    ],
    ids=["exact", "option-added-by-auth0", "option-lost", "option-changed"],
)
def test_verification_fails_on_any_lost_or_changed_option(
    tenant: EmulatedTenant, alter: Any, rotated: bool, event: str
) -> None:
    """A stored option lost or changed fails verification; one Auth0 adds is only logged."""
    import io

    from rotator import config, logs, runner

    stream = io.StringIO()
    logs.configure("json", "info", stream)
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    side = AlteringTenant(alter, {"client_id": SERVICES_ID, "scope": "name email"})
    report = runner.run(settings, runner.Options(mode=Mode.rotating(force=True)),
                        runner.Pool(auth0=lambda _: side))
    assert report.outcomes[0].rotated is rotated
    assert named(stream.getvalue(), event)
    if not rotated:
        [failed] = named(stream.getvalue(), "rotation.failed")
        assert failed["step"] == "verify"
        assert "scope" in failed["error"]
