"""A run over every configured connection: tenants side by side, each failing alone.

Connections of one tenant are worked on one after another (they share its
rate limit, its pacer and its token); tenants are worked on side by side, at
most ``schedule.parallel_tenants`` at once (32 by default: a tenant mostly
waits on its own rate limit, so twenty tenants take as long as one). Each
tenant is built lazily, inside its first connection's failure boundary: a
tenant that cannot be built, authenticated or reached fails its own
connections only, each with its own ``rotation.failed``. The run has a
deadline: what is unfinished when it passes fails alone, naming the step it
was in, and the run returns. A stop request (a signal) abandons every
rotation not yet written; one already written finishes.

Used by ``run-once``/``run-now``, ``status``, ``check-config --online`` and
every check of ``start``.

Who touches what, when: a connection's :class:`Outcome` is written by its
tenant's worker alone, until the worker marks it finished under ``_Run.lock``;
only then does the run read it. One still unfinished at the deadline is never
read or copied (its worker may be half-way through changing it): the report
gets a fresh outcome that fails at the step the worker last reported, and the
worker's later writes reach no one. ``Pool`` builds a tenant under its own
lock, so two workers never build one twice.

The step a worker reports (``_Run.steps[index]``) is written without the lock:
it is one list item, written by that connection's worker alone in a single
assignment (atomic under the GIL) and read by the run only to name the step in
a late outcome. No other value is read together with it, and any value the run
can read is a step the worker did report; the lock would not even pin it to the
deadline's moment, since the worker may move on between the deadline passing
and the run reading. So there is nothing for the lock to keep consistent.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from rotator import lock, logs, rotation
from rotator.deadline import Deadline
from rotator.errors import RotatorError, unexpected
from rotator.modes import Mode
from rotator.outcome import InFlight, Outcome, Report, Step, trouble
from rotator.seams import AppleSide, Destination
from rotator.settings import (
    Auth0Settings,
    ConnectionSettings,
    Settings,
    Trust,
    label,
    several_tenants,
)

#: How long past the deadline a step may take to report its own failure.
GRACE = 1.0

Auth0Factory = Callable[[Auth0Settings], Destination]
AppleFactory = Callable[[str, Trust, Deadline], AppleSide]
OnFailure = Callable[[ConnectionSettings, Outcome], None]


def _real_tenant(settings: Auth0Settings) -> Destination:
    from rotator.auth0 import Tenant

    return Tenant(settings)


def _real_apple(token_url: str, trust: Trust, deadline: Deadline) -> AppleSide:
    from rotator.apple import Apple

    return Apple(token_url, trust, deadline)


class Pool:
    """Auth0 sides by tenant, built on first use and kept until :meth:`close`."""

    def __init__(self, auth0: Auth0Factory | None = None,
                 apple: AppleFactory | None = None) -> None:
        self.make_tenant = auth0 or _real_tenant
        self.make_apple = apple or _real_apple
        self._sides: dict[Auth0Settings, Destination] = {}
        self._building: dict[Auth0Settings, threading.Lock] = {}
        self._lock = threading.Lock()

    def load(self, connections: Sequence[ConnectionSettings]) -> None:
        """Import the network sides these connections need, before a deadline starts.

        A run's deadline bounds its work on the network. The first import of
        auth0-python and httpx is not that work (half a second on an idle host,
        seconds on a loaded one) and would otherwise be charged to the first
        run's deadline, at the step that happened to build the first tenant.
        """
        if self.make_tenant is _real_tenant and any(c.auth0 for c in connections):
            import rotator.auth0
        if self.make_apple is _real_apple and any(c.apple.check for c in connections):
            import rotator.apple  # noqa: F401

    def tenant(self, settings: Auth0Settings) -> Destination:
        """The tenant's side, built once: a second worker asking waits for the first build.

        Each tenant is built under a lock of its own, so tenants still build side
        by side; ``_lock`` guards the two dictionaries only.
        """
        with self._lock:
            side = self._sides.get(settings)
            if side is not None:
                return side
            building = self._building.setdefault(settings, threading.Lock())
        with building:
            with self._lock:
                side = self._sides.get(settings)
            if side is None:
                side = self.make_tenant(settings)
                with self._lock:
                    self._sides[settings] = side
                    self._building.pop(settings, None)
            return side

    def discard(self, settings: Auth0Settings, side: Destination | None = None) -> None:
        """Forget a tenant still busy in an abandoned run; the next run builds a new one.

        With ``side``, only when the pool holds that very side: a build that
        outlived its run puts its side in the pool after the run forgot the tenant.
        """
        with self._lock:
            if side is None or self._sides.get(settings) is side:
                self._sides.pop(settings, None)

    def retain(self, wanted: set[Auth0Settings]) -> None:
        """Close the sides of tenants no longer configured (between runs, after a reload)."""
        with self._lock:
            gone = [s for s in self._sides if s not in wanted]
            sides = [self._sides.pop(s) for s in gone]
        for side in sides:
            side.close()

    def close(self) -> None:
        with self._lock:
            sides, self._sides = list(self._sides.values()), {}
        for side in sides:
            side.close()


@dataclass
class Options:
    """What a run does."""

    mode: Mode = field(default_factory=Mode)  # handed unchanged to the steps and outcomes
    on_rotated: rotation.PostRotate | None = None
    on_failure: OnFailure | None = None
    #: One writer per connection on a host (rotating runs): see :mod:`rotator.lock`.
    locks: lock.Locks | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    #: Where each connection worked on stands, for the first SIGINT's message.
    in_flight: InFlight = field(default_factory=InFlight)
    now: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic


@dataclass
class _Run:
    """The shared state of one run: outcomes, where each stands, what is finished."""

    settings: Settings
    options: Options
    pool: Pool
    deadline: Deadline
    outcomes: list[Outcome]
    steps: list[Step]
    finished: list[bool]
    lock: threading.Lock = field(default_factory=threading.Lock)
    late: set[int] = field(default_factory=set)  # reported failed at the deadline


def run(settings: Settings, options: Options | None = None, pool: Pool | None = None) -> Report:
    """Check every connection (and rotate what is due); the report of what happened."""
    options = options or Options()
    own_pool = pool is None
    pool = pool or Pool()
    conns = settings.connections
    pool.load(conns)
    state = _Run(
        settings=settings, options=options, pool=pool,
        deadline=Deadline(settings.schedule.deadline, options.monotonic,
                          interrupt=options.stop),
        outcomes=[Outcome(connection=c.connection, tenant=c.tenant, source=c.source,
                          mode=options.mode) for c in conns],
        steps=[Step.CONNECT] * len(conns), finished=[False] * len(conns),
    )
    # One group per tenant, however its entries reach it (another M2M application,
    # an audience spelled out or left to its default): a tenant's connections
    # are worked on one after another, and one named twice is found.
    groups: dict[str, list[int]] = {}
    for index, conn in enumerate(conns):
        groups.setdefault(conn.auth0.tenant_key if conn.auth0 else "", []).append(index)
    work: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
    for group in groups.values():
        work.put(group)
    done = threading.Semaphore(0)
    workers = [threading.Thread(target=_worker, args=(state, work, done), daemon=True,
                                name=f"tenant-{n}")
               for n in range(min(settings.schedule.parallel_tenants, len(groups)))]
    for worker in workers:
        worker.start()
    for _ in workers:
        if not done.acquire(timeout=state.deadline.remaining() + GRACE):
            break
    report = _report(state)
    if options.on_failure is not None:
        for index, outcome in enumerate(report.outcomes):
            if index in state.late:  # its worker, finishing later, does not call it again
                options.on_failure(settings.connections[index], outcome)
    if own_pool:
        pool.close()
    logs.get().info("run.finished", **report.counts())
    return report


def _worker(state: _Run, work: queue.SimpleQueue[list[int]], done: threading.Semaphore) -> None:
    try:
        while True:
            try:
                group = work.get_nowait()
            except queue.Empty:
                return
            _tenant(state, group)
    finally:
        done.release()


def _tenant(state: _Run, group: Sequence[int]) -> None:
    """Work through one tenant's connections, in configuration order."""
    conns = [state.settings.connections[i] for i in group]
    sides: dict[Auth0Settings, Destination] = {}
    # A failure of one way into the tenant (its M2M application): (step, error).
    failures: dict[Auth0Settings, tuple[Step, str]] = {}
    for settings in dict.fromkeys(c.auth0 for c in conns if c.auth0 is not None):
        try:
            side = state.pool.tenant(settings)
            side.serve(state.deadline)
            sides[settings] = side
        except RotatorError as exc:
            failures[settings] = (Step.CONNECT, f"cannot set up the client for "
                                                f"{conns[0].tenant}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a tenant's surprise fails its connections only
            failures[settings] = (Step.CONNECT, f"cannot set up the client for "
                                                f"{conns[0].tenant}: {unexpected(exc)}")
            logs.get(tenant=conns[0].tenant).debug("tenant.traceback", exc_info=True)
    duplicates = {group[n]: text for n, text in _duplicates(conns, sides).items()}
    for index, conn in zip(group, conns, strict=True):
        outcome = state.outcomes[index]
        way = sides.get(conn.auth0) if conn.auth0 else None
        failure = failures.get(conn.auth0) if conn.auth0 else None
        if state.options.stop.is_set():
            outcome.abandoned = True
            logs.get(connection=conn.connection, tenant=conn.tenant).warning(
                "rotation.abandoned", reason="interrupted before its check")
        elif index in duplicates:
            _fail(outcome, Step.READ, duplicates[index])
        elif failure is not None or way is None:
            step, error = failure or (Step.CONNECT, "no Auth0 settings")
            _fail(outcome, step, error)
        else:
            _connection(state, index, conn, way)
            if outcome.step in (Step.TOKEN, Step.CONNECT) and conn.auth0 is not None:
                failures[conn.auth0] = (outcome.step, outcome.error or "")
        with state.lock:
            state.finished[index] = True
            late = index in state.late  # the run already reported it failed, and said so
        if (not late and not outcome.abandoned and state.options.on_failure is not None
                and (outcome.hook_failed or trouble(outcome, state.options.now()))):
            state.options.on_failure(conn, outcome)
    with state.lock:
        forgotten = any(i in state.late for i in group)
    if forgotten:
        # The run gave up on it at the deadline: out of the pool (its build may have
        # put it back there after the run forgot the tenant) and closed.
        for settings, side in sides.items():
            state.pool.discard(settings, side)
            side.close()


def _connection(state: _Run, index: int, conn: ConnectionSettings, side: Destination) -> None:
    options, outcome = state.options, state.outcomes[index]
    name = label(conn.connection, conn.tenant, several_tenants(state.settings.connections))
    apple = None

    def progress(step: Step) -> None:
        state.steps[index] = step  # one item, this worker's alone: see the module docstring
        options.in_flight.at(index, name, step)

    # Events logged below the seam (a wait, a retry) carry the connection too.
    with logs.context(connection=conn.connection, tenant=conn.tenant):
        try:
            if conn.apple.check:
                apple = state.pool.make_apple(conn.apple.token_url, conn.trust, state.deadline)
            acquire: lock.Acquire = lock.unlocked
            if options.locks is not None:
                acquire = options.locks.acquirer(
                    conn.tenant, state.deadline, logs.get(connection=conn.connection,
                                                          tenant=conn.tenant))
            ctx = rotation.Context(
                side=side, apple=apple, schedule=state.settings.schedule, now=options.now,
                monotonic=options.monotonic, mode=options.mode, stop=options.stop.is_set,
                on_rotated=None if options.mode.dry_run else options.on_rotated,
                progress=progress, acquire=acquire,
            )
            rotation.process(conn, outcome, ctx)
            if options.mode.probe and outcome.error is None:
                outcome.missing_scopes = side.missing_scopes()
        except RotatorError as exc:  # Apple's client could not be built (its CA bundle)
            _fail(outcome, Step.CONNECT, str(exc))
        except Exception as exc:  # one connection's surprise must not stop the run
            log = logs.get(connection=conn.connection, tenant=conn.tenant)
            _fail(outcome, state.steps[index], unexpected(exc))
            log.debug("rotation.traceback", exc_info=True)
        finally:
            options.in_flight.done(index)
            if apple is not None:
                apple.close()


def _fail(outcome: Outcome, step: Step, error: str) -> None:
    outcome.step, outcome.error = step, error
    logs.get(connection=outcome.connection, tenant=outcome.tenant).error(
        "rotation.failed", step=step, error=error)


def _duplicates(
    conns: Sequence[ConnectionSettings], sides: Mapping[Auth0Settings, Destination]
) -> dict[int, str]:
    """Positions in ``conns`` (one tenant's) of entries that name one connection.

    Entries by name and by con_ id can only be told apart by reading: each
    named entry is looked up first (through its own way into the tenant), so
    neither duplicate is ever written. The same name or id twice is refused
    when the configuration loads.
    """
    by_id = [c for c in conns if c.connection.startswith("con_")]
    if not by_id or len(by_id) == len(conns):
        return {}
    ids: dict[str, list[int]] = {}
    for n, conn in enumerate(conns):
        ref = conn.connection
        if not ref.startswith("con_"):
            side = sides.get(conn.auth0) if conn.auth0 else None
            if side is None:
                continue  # its own check reports why the tenant cannot be reached
            try:
                ref = side.read(ref).id
            except RotatorError:
                continue  # its own check will report why it cannot be read
        ids.setdefault(ref, []).append(n)
    found: dict[int, str] = {}
    for conn_id, members in ids.items():
        if len(members) > 1:
            named = " and ".join(f"{conns[m].source} ({conns[m].connection!r})" for m in members)
            for m in members:
                found[m] = (f"{named} are the same connection {conn_id} on {conns[m].tenant}; "
                            "remove one of the entries (nothing was written to it)")
    return found


def _report(state: _Run) -> Report:
    """The outcomes; those unfinished at the deadline fail there, naming their step."""
    report = Report(at=state.options.now())
    with state.lock:
        for index, outcome in enumerate(state.outcomes):
            if state.finished[index]:
                report.outcomes.append(outcome)
                continue
            state.late.add(index)
            # Its worker still owns (and may still be changing) the outcome: report a
            # fresh one with what the run itself knows, never a copy of a moving target.
            late = Outcome(connection=outcome.connection, tenant=outcome.tenant,
                           source=outcome.source, mode=outcome.mode)
            step = state.steps[index]
            _fail(late, step, f"the run's deadline of {state.deadline.seconds:g} s passed during "
                  f"the {step} step; raise schedule.deadline if the tenant is this slow, and "
                  "run rotator status to see what is live")
            conn = state.settings.connections[index]
            if conn.auth0 is not None:
                state.pool.discard(conn.auth0)
            report.outcomes.append(late)
    return report
