"""Tests for rotator.runner: one run over every connection, with the world passed in."""

from __future__ import annotations

import threading

from auth0_env import SERVICES_ID, Tenant
from conftest import wait_for
from fakes import FakeApple, FakeTenant

from rotator import config, runner
from rotator.deadline import Deadline
from rotator.modes import Mode
from rotator.outcome import Step
from rotator.seams import AppleSide, Connection, Destination
from rotator.settings import Auth0Settings, Trust


def test_apple_is_asked_with_the_connections_own_tls_trust(tenant: Tenant) -> None:
    """Apple's client gets the connection's Trust setting (the emulator's CA), over real TLS."""
    tenant.add(client_secret=tenant.mint())
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    [conn] = settings.connections
    trusts: list[Trust] = []

    def make_apple(token_url: str, trust: Trust, deadline: Deadline) -> AppleSide:
        trusts.append(trust)
        return runner.Pool().make_apple(token_url, trust, deadline)  # the real client

    pool = runner.Pool(apple=make_apple)
    try:
        report = runner.run(settings, pool=pool)
    finally:
        pool.close()
    assert conn.trust.ca_bundle is not None
    assert trusts == [conn.trust]
    assert report.outcomes[0].apple == "accepted"


def test_a_tenant_is_built_once_however_many_workers_ask(tenant: Tenant) -> None:
    """Pool.tenant builds under its lock: a second caller waits for the first build, not a twin.

    The factory, on its first call, lets a second thread ask for the same
    tenant and gives it a second to reach the factory too (it can only when
    the lock is gone).
    """
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    auth0 = settings.connections[0].auth0
    assert auth0 is not None
    built: list[FakeTenant] = []
    second_built = threading.Event()
    got: list[Destination] = []

    def build(_: Auth0Settings) -> Destination:
        built.append(FakeTenant())
        if len(built) == 1:
            other = threading.Thread(target=lambda: got.append(pool.tenant(auth0)))
            other.start()
            second_built.wait(1.0)  # set only by a second, concurrent build
            threads.append(other)
        else:
            second_built.set()
        return built[-1]

    threads: list[threading.Thread] = []
    pool = runner.Pool(auth0=build)
    first = pool.tenant(auth0)
    threads[0].join(10)
    assert len(built) == 1
    assert got == [first]


class _StuckInVerify(FakeTenant):
    """A tenant whose verify step waits until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def verify(self, found: Connection, stored: Connection, new: str) -> list[str]:
        self.release.wait(30)
        return super().verify(found, stored, new)


def test_an_outcome_unfinished_at_the_deadline_is_reported_afresh(tenant: Tenant) -> None:
    """Past the deadline the report gets a new outcome, never a copy of one a worker still writes.

    The worker had read and judged the connection and written it; the report
    says only what the run knows: failed at verify, at the deadline. The
    worker, let go afterwards, changes nothing in the report.
    """
    side = _StuckInVerify()
    side.backend.add_connection({"name": "apple", "options": {"client_id": SERVICES_ID}})
    cfg = tenant.write_config(extra='[schedule]\ndeadline = "1s"\n')
    settings = config.load(config.Overrides(config=str(cfg)), environ={})
    report = runner.run(settings, runner.Options(mode=Mode.rotating(force=True)),
                        runner.Pool(auth0=lambda _: side, apple=lambda *_: FakeApple(tenant.emu)))
    [late] = report.outcomes
    side.release.set()
    wait_for(lambda: side.closed, 10, "the abandoned worker to finish and close its tenant")
    assert (late.step, late.checked, late.rotated) == (Step.VERIFY, False, False)
    assert "deadline of 1 s passed during the verify step" in (late.error or "")
