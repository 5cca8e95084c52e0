"""Tests for rotator.outcome: the one health predicate, and a report's counts and verdict; and
the predicate in a whole `status` run, which exits, counts and reports health alike."""

from __future__ import annotations

import json

import pytest
from auth0_env import EmulatedTenant
from conftest import named, run_cli

from rotator.emulator import Fault
from rotator.modes import Mode
from rotator.outcome import Outcome, Report, Step, trouble

NOW = 1_000_000.0


def outcome(mode: Mode | None = None, **facts: object) -> Outcome:
    """A checked outcome of a live, accepted secret far from expiry, with ``facts`` changed."""
    base: dict[str, object] = {"checked": True, "live": True, "apple": "accepted",
                               "exp": int(NOW) + 100 * 86400}
    return Outcome(connection="apple", tenant="t.example", mode=mode or Mode.rotating(),
                   **(base | facts))  # type: ignore[arg-type]


@pytest.mark.parametrize(("facts", "why"), [
    ({}, None),
    ({"error": "boom", "step": Step.READ}, "failed at read"),
    ({"abandoned": True}, "was stopped by a signal before it finished"),
    ({"apple": "refused", "error": "x", "step": Step.APPLE_CHECK},
     "cannot sign users in: Apple refuses the live secret"),
    ({"apple": "unknown"}, "has a live secret Apple could not be asked about"),
    ({"apple": "unknown", "live": False, "exp": None}, None),  # nothing to ask about
    ({"apple": "off"}, None),
    ({"hook_failed": True}, None),  # the connection is fine; the run is not (below)
    ({"missing_scopes": ["update:connections"]}, "has a token lacking update:connections"),
])
def test_trouble_names_what_is_wrong_in_any_mode(facts: dict[str, object], why: str | None) -> None:
    """Failures, signals, Apple's refusal or silence and missing scopes are trouble everywhere."""
    for mode in (Mode.rotating(), Mode.rotating(force=True), Mode.check(), Mode.online()):
        if mode.judges_live_secret and facts.get("exp", 1) is None:
            continue  # status judges a missing secret on its own (next test)
        assert trouble(outcome(mode, **facts), NOW) == why


def test_status_judges_the_live_secret_itself() -> None:
    """Only a read-only check takes a missing, expired or soon-expiring live secret as trouble."""
    check, warn = Mode.check(), Mode.check(warn_within=10 * 86400)
    assert trouble(outcome(check, live=False, exp=None, apple="unknown"), NOW) == \
        "has no live secret"
    assert trouble(outcome(check, exp=int(NOW)), NOW) == "has a live secret that has expired"
    assert trouble(outcome(warn, exp=int(NOW) + 86400), NOW) == \
        "has a live secret expiring within --warn-within"
    assert trouble(outcome(warn, exp=int(NOW) + 11 * 86400), NOW) is None
    for mode in (Mode.online(), Mode.rotating(dry_run=True)):
        assert trouble(outcome(mode, live=False, exp=None, apple="unknown"), NOW) is None


def test_counts_and_the_verdict_come_from_the_predicate() -> None:
    """run.finished's failed count is the unhealthy outcomes; a failed hook fails the run alone."""
    report = Report([outcome(), outcome(apple="unknown"), outcome(hook_failed=True, rotated=True)],
                    at=NOW)
    assert report.counts() == {"checked": 3, "rotated": 1, "failed": 1, "hook_failed": 1,
                               "abandoned": 0}
    assert not report.succeeded
    assert Report([outcome(), outcome(hook_failed=True)], at=NOW).failed == []
    assert not Report([outcome(hook_failed=True)], at=NOW).succeeded
    assert Report([outcome()], at=NOW).succeeded


def test_step_names_are_their_logged_spelling() -> None:
    """A Step is the string logs, hooks and outcomes carry; write, verify, hook follow a write."""
    assert str(Step.APPLE_CHECK) == "apple_check"
    assert Step("apple_check") is Step.APPLE_CHECK
    assert f"{Step.UNKNOWN}" == "unknown"
    assert [s for s in Step if s.after_write] == [Step.WRITE, Step.VERIFY, Step.HOOK]


# -- the predicate in a whole run: status with Apple failing --------------------------------


def test_status_with_apple_failing_counts_the_failure_it_exits_on(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """status, Apple not answering usably: exit 1, run.finished failed=1, healthy false."""
    tenant.add(client_secret=tenant.mint())
    tenant.emu.inject(Fault(path="/auth/token", status=418, times=None))  # not retried
    code, out, err = run_cli("status", "--json", "--config", str(tenant.write_config()),
                             capsys=capsys)
    [row] = json.loads(out)
    [finished] = named(err, "run.finished")
    assert (code, row["apple"], row["healthy"]) == (1, "unknown", False), err
    assert finished["failed"] == 1
