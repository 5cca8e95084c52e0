"""A rotation, step by step, and a run over every configured connection.

The steps (PRODUCT.md, "A rotation, step by step"): read the connection and
refuse what is unsafe to write; mint; write exactly the options just read with
``client_secret`` replaced, and the ``display_name`` just read; verify what is
stored; log. Each connection fails alone; the run's report says which failed.

The Auth0 side is passed in (anything with ``read`` and ``write`` like
:class:`rotator.auth0.Tenant`), and so is the clock.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from rotator import due, logs, secret
from rotator.config import ConnectionSettings, Schedule, Settings
from rotator.errors import RefusedError, RotatorError, VerificationError


class Auth0Side(Protocol):
    """What rotation needs of a tenant (``rotator.auth0.Tenant`` in production)."""

    name: str

    def read(self, ref: str) -> Any: ...

    def write(self, conn_id: str, options: dict[str, Any], display_name: str | None) -> Any: ...

    def close(self) -> None: ...


@dataclass
class Outcome:
    """What happened to one connection in one run."""

    connection: str
    tenant: str
    checked: bool = False
    due: bool = False
    reason: str | None = None
    rotated: bool = False
    dry_run: bool = False
    iat: int | None = None  # of the secret live after this run
    exp: int | None = None
    due_at: int | None = None
    fingerprint: str | None = None
    abandoned: bool = False  # stopped before its write; the old secret stays
    step: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class Report:
    """Every connection's outcome, in configuration order."""

    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


Rotated = Callable[[ConnectionSettings, str, int], object]


def expected(conn: ConnectionSettings) -> due.Expected:
    return due.Expected(
        team_id=conn.apple.team_id,
        key_id=conn.apple.key_id,
        services_id=conn.client_id,
        public_key=conn.apple.key.public_key,
    )


def read_checked(conn: ConnectionSettings, side: Auth0Side) -> Any:
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


def rotate_one(
    conn: ConnectionSettings,
    side: Auth0Side,
    schedule: Schedule,
    *,
    now: int,
    force: bool = False,
    dry_run: bool = False,
    on_rotated: Rotated | None = None,
    stop: Callable[[], bool] | None = None,
) -> Outcome:
    """Check one connection and rotate it when due (or when ``force``).

    ``stop`` is asked just before the write: when it says so, the rotation is
    abandoned with the old secret in place, never half-done.
    """
    log = logs.get(connection=conn.connection, tenant=side.name)
    outcome = Outcome(connection=conn.connection, tenant=side.name)
    step = "read"
    try:
        found = read_checked(conn, side)
        live = found.options.get("client_secret")
        verdict = due.assess(live, expected(conn), schedule, now=now)
        info = verdict.live
        outcome.checked, outcome.due, outcome.reason = True, verdict.due, verdict.reason
        outcome.due_at = verdict.due_at
        if info is not None:
            outcome.iat, outcome.exp, outcome.fingerprint = info.iat, info.exp, info.fingerprint
        log.info(
            "rotation.checked",
            due=verdict.due,
            reason=verdict.reason,
            why=verdict.explanation,
            expires_at=_iso(info.exp if info else None),
            due_at=_iso(verdict.due_at),
            forced=force and not verdict.due,
        )
        if not (verdict.due or force):
            return outcome

        step = "mint"
        new = secret.mint(
            conn.apple.key,
            team_id=conn.apple.team_id,
            key_id=conn.apple.key_id,
            services_id=conn.client_id,
            lifetime=schedule.secret_lifetime,
            now=now,
        )
        logs.redact(new)
        options = copy.deepcopy(found.options)
        options["client_secret"] = new
        iat, exp = now, now + schedule.secret_lifetime
        if dry_run:
            outcome.dry_run = True
            log.info(
                "rotation.dry_run",
                would_write=["options", "display_name"] if found.display_name else ["options"],
                options_kept=len(options) - 1,
                kid=conn.apple.key_id,
                sub=conn.client_id,
                iat=iat,
                exp=exp,
                fingerprint=secret.fingerprint(new),
            )
            return outcome

        if stop is not None and stop():
            outcome.abandoned = True
            log.warning("rotation.abandoned", reason="shutting down before the write")
            return outcome
        step = "write"
        stored = side.write(found.id, options, found.display_name)
        step = "verify"
        if stored.options is None:  # the answer left options out: read again
            stored = side.read(found.id)
        _verify(found, stored, options, log)

        outcome.rotated = True
        outcome.iat, outcome.exp = iat, exp
        outcome.due_at = iat + schedule.rotate_every
        outcome.fingerprint = secret.fingerprint(new)
        log.info(
            "secret.rotated",
            kid=conn.apple.key_id,
            sub=conn.client_id,
            iat=iat,
            exp=exp,
            expires_at=_iso(exp),
            fingerprint=outcome.fingerprint,
            reason=verdict.reason if verdict.due else "forced",
        )
        if on_rotated is not None:
            try:
                on_rotated(conn, new, exp)
            except Exception as exc:  # noqa: BLE001 - the rotation stands whatever the hook does
                log.error("hook.failed", error=f"unexpected error: {type(exc).__name__}")
        return outcome
    except RotatorError as exc:
        outcome.step, outcome.error = step, str(exc)
        log.error("rotation.failed", step=step, error=str(exc))
        return outcome


def _verify(before: Any, stored: Any, sent: dict[str, Any], log: Any) -> None:
    """Step 4: the new secret is stored, every other option and display_name unchanged.

    Every option sent must come back exactly. An option Auth0 adds on its own
    (a server-side default) is not a loss: it is logged, not failed.
    """
    held = stored.options or {}
    differing = sorted(k for k in sent if held.get(k, _MISSING) != sent[k])
    if differing:
        raise VerificationError(
            f"connection {before.name!r} does not hold what was written; options differing: "
            f"{', '.join(differing)}; the new secret may or may not be live, run status"
        )
    if added := sorted(set(held) - set(sent)):
        log.warning("verify.options_added", options=added,
                    note="Auth0 stored options rotator did not send")
    wanted = before.display_name
    if wanted is not None and stored.display_name != wanted:
        raise VerificationError(
            f"connection {before.name!r} display_name changed from {wanted!r} to "
            f"{stored.display_name!r}; set it back in the Auth0 dashboard"
        )


_MISSING = object()


def _iso(epoch: int | None) -> str | None:
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@contextmanager
def tenants(
    connections: Iterable[ConnectionSettings],
    factory: Callable[[Any], Auth0Side] | None = None,
    keep: dict[tuple[str, str], Auth0Side] | None = None,
) -> Iterator[dict[tuple[str, str], Auth0Side]]:
    """One Auth0 side per tenant (domain and M2M client), shared by its connections.

    They are closed on leaving, unless ``keep`` is given: then they are taken
    from and left in it (``rotator start`` keeps its tenants, and so their
    cached tokens, from one check to the next).
    """
    if factory is None:
        from rotator.auth0 import Tenant

        factory = Tenant
    sides = {} if keep is None else keep
    for conn in connections:
        assert conn.auth0 is not None
        key = (conn.auth0.domain, conn.auth0.client_id)
        if key not in sides:
            sides[key] = factory(conn.auth0)
    try:
        yield sides
    finally:
        if keep is None:
            for side in sides.values():
                side.close()


def side_of(conn: ConnectionSettings, sides: dict[tuple[str, str], Auth0Side]) -> Auth0Side:
    assert conn.auth0 is not None
    return sides[(conn.auth0.domain, conn.auth0.client_id)]


def run(
    settings: Settings,
    *,
    force: bool = False,
    dry_run: bool = False,
    now: Callable[[], float] = time.time,
    factory: Callable[[Any], Auth0Side] | None = None,
    on_rotated: Rotated | None = None,
    stop: Callable[[], bool] | None = None,
    keep: dict[tuple[str, str], Auth0Side] | None = None,
) -> Report:
    """Check (and rotate what is due, or everything when ``force``) every connection.

    Tenants are closed at the end, unless ``keep`` is given (see :func:`tenants`).
    """
    report = Report()
    with tenants(settings.connections, factory, keep) as sides:
        for conn in settings.connections:
            if stop is not None and stop():
                break
            side = side_of(conn, sides)
            try:
                outcome = rotate_one(
                    conn,
                    side,
                    settings.schedule,
                    now=int(now()),
                    force=force,
                    dry_run=dry_run,
                    on_rotated=on_rotated,
                    stop=stop,
                )
            except Exception as exc:
                outcome = Outcome(
                    connection=conn.connection,
                    tenant=side.name,
                    step="unknown",
                    error=f"unexpected error: {type(exc).__name__}",
                )
                log = logs.get(connection=conn.connection, tenant=side.name)
                log.error("rotation.failed", step="unknown", error=outcome.error)
                log.debug("rotation.traceback", exc_info=True)
            report.outcomes.append(outcome)
    return report
