"""Tests for rotator.auth0_rules: Auth0's refusals, the PATCH body and its verification."""

from __future__ import annotations

from typing import Any

import pytest
from auth0_env import SERVICES_ID, EmulatedTenant
from fakes import FakeTenant

from rotator.auth0_rules import SCOPES, body, missing_scopes, refuse, secret_in
from rotator.errors import RefusedError, VerificationError
from rotator.modes import Mode
from rotator.seams import Connection

SID = "com.example.webapp"
OPTIONS = {"client_id": SID, "client_secret": "old", "scope": "name email", "flag": False}


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
        refuse(conn(**changes), SID)
    refuse(conn(), SID)


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
