"""Tests for rotator.runner: one run over every connection, with the world passed in."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from auth0_env import Tenant
from conftest import KEY_ID, SERVICES_ID, TEAM_ID, wait_for
from fakes import FakeApple, FakeTenant

from rotator import config, runner, secret
from rotator.deadline import Deadline
from rotator.emulator import Fault
from rotator.modes import Mode, Rotate
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



def _settings(tmp_path: Path, key_path: Path) -> config.Settings:
    """One connection on a fake tenant, with a run deadline of 1 s."""
    (tmp_path / "m2m").write_text("m2m-secret\n")
    (tmp_path / "rotator.toml").write_text(f"""
[auth0]
domain = "fake.auth0.test"
client_id = "fake-m2m"
client_secret_file = {json.dumps(str(tmp_path / "m2m"))}
[apple]
team_id = "{TEAM_ID}"
key_id = "{KEY_ID}"
private_key_file = {json.dumps(str(key_path))}
[schedule]
deadline = "1s"
[[connections]]
connection = "apple"
client_id = "{SERVICES_ID}"
""")
    return config.load(config.Overrides(config=str(tmp_path / "rotator.toml")), environ={})


@pytest.mark.parametrize(("path", "step"), [
    pytest.param("/oauth/token", "token", id="token"),
    pytest.param("/auth/token", "apple_check", id="apple-on-the-live-secret"),
])
def test_a_deadline_passing_mid_step_names_that_step(
    tmp_path: Path, key_path: Path, path: str, step: str
) -> None:
    """A token request or Apple's word on the live secret outliving the deadline is named."""
    settings = _settings(tmp_path, key_path)
    conn = settings.connections[0]
    side = FakeTenant()
    live = secret.mint(conn.apple.key, team_id=TEAM_ID, key_id=KEY_ID, services_id=SERVICES_ID,
                       lifetime=settings.schedule.secret_lifetime, now=int(time.time()))
    side.backend.add_connection({"name": "apple", "options": {"client_id": SERVICES_ID,
                                                              "client_secret": live}})
    side.backend.apple_register_key(TEAM_ID, KEY_ID, conn.apple.key.public_key)
    side.backend.apple_add_services_id(TEAM_ID, SERVICES_ID)
    side.backend.inject(Fault(path=path, delay=3))  # held past the run's deadline (1 s + 1 s)
    pool = runner.Pool(auth0=lambda _: side, apple=lambda *_: FakeApple(side.backend))
    [outcome] = runner.run(settings, runner.Options(mode=Mode(rotate=Rotate.NEVER)), pool).outcomes
    assert outcome.step == step, outcome.error
    assert f"during the {step} step" in (outcome.error or "")


def test_a_tenant_built_after_the_deadline_is_not_handed_closed_to_the_next_run(
    tmp_path: Path, key_path: Path
) -> None:
    """A tenant whose build outlived the run is closed by it and never reused by the next run."""
    settings = _settings(tmp_path, key_path)
    conn = settings.connections[0]
    backend = FakeTenant().backend
    backend.add_connection({"name": "apple", "options": {"client_id": SERVICES_ID}})
    backend.apple_register_key(TEAM_ID, KEY_ID, conn.apple.key.public_key)
    backend.apple_add_services_id(TEAM_ID, SERVICES_ID)
    built: list[FakeTenant] = []

    def build(_: object) -> FakeTenant:
        if not built:
            time.sleep(2.5)  # the first build outlives the run (deadline 1 s + grace 1 s)
        built.append(FakeTenant(backend))
        return built[-1]

    pool = runner.Pool(auth0=build, apple=lambda *_: FakeApple(backend))
    [late] = runner.run(settings, runner.Options(mode=Mode(rotate=Rotate.NEVER)), pool).outcomes
    assert "deadline" in (late.error or "")
    wait_for(lambda: built and built[0].closed, 10, "the late run to close its tenant")
    [second] = runner.run(settings, runner.Options(mode=Mode(rotate=Rotate.NEVER)), pool).outcomes
    assert second.error is None, second.error
    assert len(built) == 2
    assert built[1].closed == 0


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
