"""Tests for rotator.runner: one run over every connection, with the world passed in.

Two entries naming one connection (by name and by con_ id) are found whatever
settings differ around them (issue 19): an audience spelled out for one of
them, or a second M2M application of the same tenant. Neither is written.
"""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any

import pytest
from auth0_env import SERVICES_ID, Tenant
from conftest import assert_refused, run_rotator, wait_for
from fakes import FakeApple, FakeTenant

from rotator import cli, config, runner
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


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main([*args, "--log-format", "json"])
    _, err = capsys.readouterr()
    return code, err


def named(stderr: str, event: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(x) for x in stderr.splitlines() if x.startswith("{"))
            if e["event"] == event]


def _second_entry(tenant: Tenant, con_id: str, how: str) -> str:
    """The same connection by its con_ id, reaching the tenant another way."""
    entry = f'[[connections]]\nconnection = "{con_id}"\nclient_id = "{SERVICES_ID}"\n'
    if how == "explicit-audience":
        return entry + f'audience = "https://{tenant.emu.domain}/api/v2/"\n'
    client_id, secret = f"m2m{secrets.token_hex(6)}", f"second-{secrets.token_urlsafe(24)}"
    tenant.emu.add_client(client_id, secret)
    (tenant.tmp / "second_secret").write_text(secret)
    return entry + (f'[connections.auth0]\nclient_id = "{client_id}"\n'
                    f'client_secret_file = "{tenant.tmp / "second_secret"}"\n')


@pytest.mark.parametrize("how", ["explicit-audience", "second-m2m-application"])
def test_one_connection_twice_is_found_whatever_settings_differ_around_it(
    how: str, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """By name and by con_ id, through different [auth0] settings: both refused, no PATCH."""
    conn = tenant.add(client_secret=None)
    config = tenant.write_config()
    config.write_text(config.read_text() + "\n" + _second_entry(tenant, conn["id"], how))
    code, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 1, err
    assert tenant.patches() == []
    failed = named(err, "rotation.failed")
    assert len(failed) == 2, failed
    for event in failed:
        assert f"the same connection {conn['id']}" in event["error"]


def test_one_name_twice_spelled_differently_is_refused_at_load(
    tenant: Tenant,
) -> None:
    """The same name twice, the domain once in capitals and the audience spelled out: exit 2."""
    config = tenant.write_config()
    extra = (f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n'
             f'domain = "{tenant.emu.domain.upper()}"\n'
             f'audience = "https://{tenant.emu.domain}/api/v2"\n')
    config.write_text(config.read_text() + "\n" + extra)
    assert_refused(run_rotator("check-config", "--config", str(config)), "listed twice",
                   "#1", "#2")


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
