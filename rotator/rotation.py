"""A rotation, step by step (PRODUCT.md, "A rotation, step by step").

:func:`process` takes one connection through a check and, when it is due (or
forced), a rotation: mint a secret, ask Apple to accept it, write exactly the
options just read with ``client_secret`` replaced (and the ``display_name``
just read), verify what is stored, log, run the post-rotate hook. Each step is
a short function; a failure names its step and leaves the old secret in place.

Everything outside is passed in through :class:`Context`: the Auth0 side,
Apple, the clocks, the stop flag, the hook. Nothing here opens a socket.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from rotator import check, lock, logs, secret, words
from rotator.errors import (
    Auth0WriteError,
    DeadlineError,
    RotatorError,
    TokenError,
)
from rotator.modes import Mode
from rotator.outcome import Outcome, Planned, Step
from rotator.seams import AppleAnswer, AppleSide, Connection, Destination
from rotator.settings import ConnectionSettings, Schedule

#: Called after a rotation with the connection, the new secret and its exp;
#: answers whether the post-rotate hook succeeded.
PostRotate = Callable[[ConnectionSettings, str, int], bool]

#: Auth0 has no conditional update: when more than this passed since the read
#: (an Apple check, a pacing pause, a retry), the connection is read again and
#: what that read returned is written, so an edit made meanwhile is not lost.
REREAD_AFTER = 2.0


def _never() -> bool:
    return False


@dataclass(frozen=True)
class Context:
    """How one connection is treated in this run, and the world it talks to."""

    side: Destination
    apple: AppleSide | None  # None: apple.check is off
    schedule: Schedule
    now: Callable[[], float]  # wall clock, epoch seconds
    monotonic: Callable[[], float]
    mode: Mode = field(default_factory=Mode)  # what the run does, as the command chose it
    stop: Callable[[], bool] = _never  # asked before each write
    on_rotated: PostRotate | None = None
    progress: Callable[[Step], None] = field(default=lambda step: None)
    #: Holds a connection's lock (by name or id) for a rotation: see :mod:`rotator.lock`.
    acquire: lock.Acquire = lock.unlocked


class StepFailed(Exception):
    """A step failed; the old secret stays.

    Its words are redacted when it is raised, while the secrets of the
    rotation are still registered: they travel on to ``rotation.failed``, the
    outcome, ``status`` and the on_failure hook's ``ROTATOR_ERROR`` after the
    new secret is forgotten, and they may quote an Auth0 or Apple answer.
    """

    def __init__(self, step: Step, error: str) -> None:
        super().__init__(logs.scrub(error, logs.MAX_TRACEBACK))
        self.step = step


@contextmanager
def step(name: Step, ctx: Context) -> Iterator[None]:
    """Run a step: report it as in progress, and name it in any failure."""
    ctx.progress(name)
    try:
        yield
    except TokenError as exc:
        raise StepFailed(Step.TOKEN, str(exc)) from exc
    except RotatorError as exc:
        raise StepFailed(name, str(exc)) from exc


def process(conn: ConnectionSettings, outcome: Outcome, ctx: Context) -> None:
    """Check ``conn``; rotate it when due (or forced); fill ``outcome``; never raise.

    A rotating run holds the connection's lock from before the read to after
    the hook (PRODUCT.md, "One writer per connection on a host").
    """
    log = logs.get(connection=conn.connection, tenant=outcome.tenant)
    try:
        # The token first, as a step of its own: a deadline passing while it is
        # fetched names it (the read would otherwise fetch it unseen).
        with step(Step.TOKEN, ctx):
            ctx.side.missing_scopes()  # fetches the token (or finds it cached)
        with ExitStack() as held:
            checked, read_at = _locked_check(conn, ctx, held)
            check.record(outcome, checked)
            outcome.forced = ctx.mode.forced and not checked.verdict.due
            check.log_checked(log, checked, ctx.mode.forced)
            if not ctx.mode.rotates:
                if ctx.mode.probe:
                    _probe(conn, ctx, log)
                return
            if not (checked.verdict.due or ctx.mode.forced):
                if problem := check.apple_problem(checked, conn.client_id):
                    raise StepFailed(Step.APPLE_CHECK, problem)
                return
            _rotate(conn, checked, read_at, outcome, ctx, log)
    except StepFailed as failed:
        if ctx.stop() and not failed.step.after_write:
            outcome.abandoned = True  # a signal cut a wait short: nothing was written
            log.warning("rotation.abandoned", reason=f"stopped during {failed.step}",
                        detail=str(failed))
            return
        outcome.step, outcome.error = failed.step, str(failed)
        log.error("rotation.failed", step=failed.step, error=str(failed))


def _locked_check(
    conn: ConnectionSettings, ctx: Context, held: ExitStack,
) -> tuple[check.Checked, float]:
    """Step 1 under the connection's lock (a rotating run only): the check, and when it was read.

    The lock is first that of the connection as configured, taken before the
    read, so a run that waited reads what the other run wrote. A connection
    configured by name is then locked by its id as well, so a run naming it by
    id is kept out too; when that second lock was held, the connection is read
    again. The id's lock is always taken last: two runs never wait on each other.
    """
    def read() -> tuple[check.Checked, float]:
        with step(Step.READ, ctx):
            found = check.check(conn, ctx.side, ctx.apple, ctx.schedule, now=int(ctx.now()),
                                progress=ctx.progress)
            return found, ctx.monotonic()

    if not ctx.mode.rotates:
        return read()
    with step(Step.LOCK, ctx):
        held.enter_context(ctx.acquire(conn.connection))
    checked, read_at = read()
    if checked.connection.id != conn.connection:
        with step(Step.LOCK, ctx):
            waited = held.enter_context(ctx.acquire(checked.connection.id))
        if waited:
            checked, read_at = read()
    return checked, read_at


def _rotate(
    conn: ConnectionSettings,
    checked: check.Checked,
    read_at: float,
    outcome: Outcome,
    ctx: Context,
    log: logs.Logger,
) -> None:
    now = int(ctx.now())  # one reading: the claims minted are the ones logged
    with step(Step.MINT, ctx):
        new = _mint(conn, ctx, now)
    iat, exp = secret.issued(now, ctx.schedule.secret_lifetime)
    with logs.secret(new, checked.live):
        answer = _ask_apple(conn, new, ctx, log, evidence=check.evidence(checked))
        outcome.apple, outcome.apple_detail = answer.verdict, answer.detail
        if ctx.mode.dry_run:
            outcome.dry_run = True
            described = ctx.side.describe_write(checked.connection, new)
            outcome.planned = Planned(
                kid=conn.apple.key_id, sub=conn.client_id, iat=iat, exp=exp,
                fingerprint=secret.fingerprint(new),
                options_kept=int(described.get("options_kept", 0)))
            log.info("rotation.dry_run", **described,
                     kid=conn.apple.key_id, sub=conn.client_id, iat=iat, exp=exp,
                     issued_at=words.iso(iat), expires_at=words.iso(exp),
                     fingerprint=outcome.planned.fingerprint)
            return
        found = checked.connection
        if ctx.monotonic() - read_at > REREAD_AFTER:
            with step(Step.READ, ctx):
                found = check.read_checked(conn, ctx.side)
        if ctx.stop():
            outcome.abandoned = True
            log.warning("rotation.abandoned", reason="shutting down before the write")
            return
        stored = _write(found, new, checked.live, ctx, log)
        with step(Step.VERIFY, ctx):
            if added := ctx.side.verify(found, stored, new):
                log.warning("verify.options_added", options=added,
                            note="the destination stored options rotator did not send")
        outcome.rotated = True
        outcome.iat, outcome.exp, outcome.due_at = iat, exp, iat + ctx.schedule.rotate_every
        outcome.fingerprint, outcome.kid, outcome.sub = (
            secret.fingerprint(new), conn.apple.key_id, conn.client_id)
        log.info("secret.rotated", kid=conn.apple.key_id, sub=conn.client_id, iat=iat, exp=exp,
                 expires_at=words.iso(exp), fingerprint=outcome.fingerprint,
                 reason=checked.verdict.reason if checked.verdict.due else "forced")
        if ctx.on_rotated is not None:
            ctx.progress(Step.HOOK)
            outcome.hook_failed = not ctx.on_rotated(conn, new, exp)


def _probe(conn: ConnectionSettings, ctx: Context, log: logs.Logger) -> None:
    """check-config --online: would Apple accept a secret minted now? Nothing is written.

    This catches a key id and key that do not belong together, or a wrong team
    id, before the first rotation needs them (the live secret, made earlier,
    may still be fine).
    """
    with step(Step.MINT, ctx):
        probe = _mint(conn, ctx, int(ctx.now()))
    with logs.secret(probe):  # the outcome keeps reporting the live secret's verdict
        _ask_apple(conn, probe, ctx, log, what="a secret minted now")


def _mint(conn: ConnectionSettings, ctx: Context, now: int) -> str:
    return secret.mint(conn.apple.key, team_id=conn.apple.team_id, key_id=conn.apple.key_id,
                       services_id=conn.client_id, lifetime=ctx.schedule.secret_lifetime,
                       now=now)


def _ask_apple(
    conn: ConnectionSettings, new: str, ctx: Context, log: logs.Logger, what: str = "new",
    evidence: str = "",
) -> AppleAnswer:
    """Step 3: Apple must accept the new secret before anything is written."""
    ctx.progress(Step.APPLE_CHECK)
    answer = check.ask(ctx.apple, new, conn.client_id)
    if answer.verdict != "off":
        emit = log.warning if answer.verdict == "refused" else log.info
        emit("apple.checked", which="new", verdict=answer.verdict, detail=answer.detail,
             fingerprint=secret.fingerprint(new))
    if wrong := words.apple_problem(answer, what, conn.client_id, evidence):
        raise StepFailed(Step.APPLE_CHECK, f"{wrong}; nothing was written, the live secret stays")
    return answer


def _write(
    found: Connection, new: str, old: str | None, ctx: Context, log: logs.Logger,
) -> Connection:
    """Step 4, and the truth when its answer is lost: read again and see what is stored."""
    ctx.progress(Step.WRITE)
    try:
        return ctx.side.publish(found, new)
    except (Auth0WriteError, DeadlineError) as exc:
        failure = str(exc)
    try:
        stored = ctx.side.read(found.id)
    except RotatorError as exc:
        raise StepFailed(Step.WRITE, f"{failure}; reading the connection again failed too "
                         f"({exc}): the new secret (fingerprint {secret.fingerprint(new)}) may "
                         "or may not be live; run rotator status") from exc
    held = ctx.side.live_secret(stored)
    if held == new:
        log.warning("write.answer_lost", error=failure,
                    note="the connection holds the new secret: the write landed")
        return stored
    if held == old:
        raise StepFailed(Step.WRITE, f"{failure}; the old secret is still in place")
    raise StepFailed(Step.WRITE, f"{failure}; the connection now holds a secret rotator did not "
                     "write (someone changed it meanwhile); run rotator status")

