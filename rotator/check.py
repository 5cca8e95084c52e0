"""One check of one connection: read it, refuse what is unsafe, judge its live secret.

Shared by every command that looks at a connection: ``status``,
``check-config --online``, and the first half of every rotation (``run-once``,
``run-now``, each check of ``start``). It writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from rotator import due, logs, words
from rotator.outcome import Outcome
from rotator.seams import AppleAnswer, AppleSide, Connection, Destination
from rotator.settings import ConnectionSettings, Schedule


@dataclass(frozen=True)
class Checked:
    """A connection as read, the due rule's verdict, and Apple's word on the live secret."""

    connection: Connection
    live: str | None
    verdict: due.Verdict
    apple: AppleAnswer


def expected(conn: ConnectionSettings) -> due.Expected:
    """What a secret published for ``conn`` must look like."""
    return due.Expected(
        team_id=conn.apple.team_id,
        key_id=conn.apple.key_id,
        services_id=conn.client_id,
        public_key=conn.apple.key.public_key,
        key_source=conn.apple.key.source,
    )


def read_checked(conn: ConnectionSettings, side: Destination) -> Connection:
    """Step 1: read the connection; the destination refuses what rotator must not write."""
    return side.fetch(conn.connection, conn.client_id)


def check(
    conn: ConnectionSettings,
    side: Destination,
    apple: AppleSide | None,
    schedule: Schedule,
    *,
    now: int,
) -> Checked:
    """Read ``conn``, ask Apple about its live secret (unless ``apple`` is None: off), judge it."""
    found = read_checked(conn, side)
    live = side.live_secret(found)
    with logs.secret(live):
        answer = ask(apple, live, conn.client_id)
        verdict = due.assess(live, expected(conn), schedule, now=now, apple=answer.verdict)
    return Checked(found, live, verdict, answer)


def ask(apple: AppleSide | None, secret: str | None, services_id: str) -> AppleAnswer:
    """Apple's verdict on ``secret``: off when not asked, unknown when there is none."""
    if apple is None:
        return AppleAnswer("off", "apple.check is off: Apple is not asked")
    if secret is None:
        return AppleAnswer("unknown", "there is no secret to ask about")
    return apple.ask(secret, services_id)


def record(outcome: Outcome, checked: Checked) -> None:
    """Copy what a check found into ``outcome``."""
    verdict, info = checked.verdict, checked.verdict.live
    outcome.checked = True
    outcome.live = checked.live is not None
    outcome.due, outcome.reason, outcome.why = verdict.due, verdict.reason, verdict.explanation
    outcome.due_at = verdict.due_at
    outcome.apple, outcome.apple_detail = checked.apple.verdict, checked.apple.detail
    if info is not None:
        outcome.kid, outcome.sub = info.kid, info.sub
        outcome.iat, outcome.exp, outcome.fingerprint = info.iat, info.exp, info.fingerprint


def log_checked(log: logs.Logger, checked: Checked, forced: bool) -> None:
    """The ``rotation.checked`` event."""
    verdict, info = checked.verdict, checked.verdict.live
    # A live secret Apple refuses means Apple logins fail now: an error, not news.
    refused = checked.apple.verdict == "refused" and checked.live is not None
    emit = log.error if refused else log.info
    emit(
        "rotation.checked",
        due=verdict.due,
        reason=verdict.reason,
        why=verdict.explanation,
        expires_at=words.iso(info.exp if info else None),
        due_at=words.iso(verdict.due_at),
        apple=checked.apple.verdict,
        forced=forced and not verdict.due,
    )
    if checked.apple.verdict != "off" and checked.live is not None:
        emit("apple.checked", which="live", verdict=checked.apple.verdict,
             detail=checked.apple.detail, fingerprint=info.fingerprint if info else None)


#: Reasons that compare the live secret with the configuration.
_COMPARED = (due.KID_CHANGED, due.ISS_CHANGED, due.SUB_CHANGED, due.BAD_SIGNATURE)


def evidence(checked: Checked) -> str:
    """When Apple accepts a live secret that differs from the configuration, say so.

    Then a refusal of the secret minted from the configuration points at the
    configured value, not at the five things a refusal can mean.
    """
    if checked.verdict.reason in _COMPARED and checked.apple.verdict == "accepted":
        return (f"Apple accepts the live secret, and {checked.verdict.explanation}: "
                "the configured value looks wrong")
    return ""


def apple_problem(checked: Checked, services_id: str) -> str | None:
    """Why the live secret's Apple check fails the check (refused or not askable), if it does."""
    if checked.live is None:  # nothing to ask about: the rotation publishes one
        return None
    return words.apple_problem(checked.apple, "live", services_id)

