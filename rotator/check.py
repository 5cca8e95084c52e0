"""One check of one connection: read it, refuse what is unsafe, judge its live secret.

Shared by every command that looks at a connection: ``status``,
``check-config --online``, and the first half of every rotation (``run-once``,
``run-now``, each check of ``start``). It writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from rotator import due, logs, words
from rotator.errors import RefusedError
from rotator.outcome import Outcome
from rotator.seams import AppleAnswer, AppleSide, Auth0Side, Connection
from rotator.settings import ConnectionSettings, Schedule


@dataclass(frozen=True)
class Checked:
    """A connection as read, the due rule's verdict, and Apple's word on the live secret."""

    connection: Connection
    live: str | None
    verdict: due.Verdict
    apple: AppleAnswer

    @property
    def options(self) -> dict[str, object]:
        assert self.connection.options is not None  # read_checked refused otherwise
        return self.connection.options


def expected(conn: ConnectionSettings) -> due.Expected:
    """What a secret published for ``conn`` must look like."""
    return due.Expected(
        team_id=conn.apple.team_id,
        key_id=conn.apple.key_id,
        services_id=conn.client_id,
        public_key=conn.apple.key.public_key,
    )


def read_checked(conn: ConnectionSettings, side: Auth0Side) -> Connection:
    """Step 1: read the connection and refuse what rotator must not write."""
    found = side.read(conn.connection)
    if found.strategy != "oauth2":
        hint = (
            "a native Apple connection makes its own secret from the key you upload to Auth0; "
            "rotator manages custom social connections (strategy oauth2)"
            if found.strategy == "apple"
            else "rotator manages custom social connections (strategy oauth2) only"
        )
        raise RefusedError(
            f"connection {found.name!r} has strategy {found.strategy!r}: {hint}; "
            "point connection at the custom social connection that signs in with Apple"
        )
    if found.options is None:
        raise RefusedError(
            f"connection {found.name!r} came back without options: the token lacks "
            "read:connections_options, and writing now would wipe every option; grant "
            "read:connections_options and update:connections_options to the M2M application"
        )
    if found.options.get("client_id") != conn.client_id:
        raise RefusedError(
            f"connection {found.name!r} has options.client_id "
            f"{found.options.get('client_id')!r}, not the configured Services ID "
            f"{conn.client_id!r}; fix client_id in the configuration (or the connection)"
        )
    return found


def check(
    conn: ConnectionSettings,
    side: Auth0Side,
    apple: AppleSide | None,
    schedule: Schedule,
    *,
    now: int,
) -> Checked:
    """Read ``conn``, ask Apple about its live secret (unless ``apple`` is None: off), judge it."""
    found = read_checked(conn, side)
    live = found.options.get("client_secret") if found.options else None
    live = live if isinstance(live, str) and live else None
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
    log.info(
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
        log.info("apple.checked", which="live", verdict=checked.apple.verdict,
                 detail=checked.apple.detail, fingerprint=info.fingerprint if info else None)


def apple_problem(checked: Checked, services_id: str) -> str | None:
    """Why the live secret's Apple check fails the check (refused or not askable), if it does."""
    if checked.live is None:  # nothing to ask about: the rotation publishes one
        return None
    return words.apple_problem(checked.apple, "live", services_id)

