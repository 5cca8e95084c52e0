"""Tests for rotator.runner: a run over every connection, tenants side by side, each failing
alone; the world passed in.

Each tenant is its own emulator (its own TLS server, CA, rate limit, clients).

Two entries naming one connection (by name and by con_ id) are found whatever
settings differ around them (issue 19): an audience spelled out for one of
them, or a second M2M application of the same tenant. Neither is written.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from auth0_env import EmulatedTenant
from conftest import (
    KEY_ID,
    SERVICES_ID,
    TEAM_ID,
    assert_refused,
    child_env,
    named,
    run_cli,
    run_rotator,
    wait_for,
)
from fakes import FakeApple, FakeTenant

from rotator import cli, config, runner, secret
from rotator.deadline import Deadline
from rotator.emulator import Emulator, Fault
from rotator.modes import Mode, Rotate
from rotator.outcome import Step
from rotator.seams import AppleSide, Connection, Destination
from rotator.settings import Auth0Settings, Trust


def entries(tenant: EmulatedTenant, names: list[str], extra: str = "") -> str:
    """[[connections]] tables for ``names`` on ``tenant``'s emulator (its own M2M client)."""
    out = ""
    for name in names:
        out += (
            f'[[connections]]\nconnection = "{name}"\nclient_id = "{SERVICES_ID}"\n'
            f'domain = "{tenant.emu.domain}"\nca_bundle = "{tenant.emu.ca_pem_path}"\n'
            f'client_secret_file = "{tenant.secret_file}"\n'
            f'token_url = "{tenant.emu.apple_token_url}"\n{extra}'
            f'[connections.auth0]\nclient_id = "{tenant.client_id}"\n\n'
        )
    return out


@pytest.fixture
def tenants(tmp_path: Path, key_path: Path) -> Iterator[list[EmulatedTenant]]:
    """Six emulated free-tier tenants (burst 2, 2 requests a second), four due connections each."""
    with ExitStack() as stack:
        made = []
        for n in range(6):
            emu = stack.enter_context(Emulator(rate_limit_burst=2, rate_limit_per_second=2))
            work = tmp_path / f"t{n}"
            work.mkdir()
            tenant = EmulatedTenant(emu, work, key_path, name=f"t{n}")
            for c in range(4):
                tenant.add(f"apple-{c}", client_secret=tenant.mint(age=40 * 86400))
            made.append(tenant)
        yield made


def write(tmp_path: Path, first: EmulatedTenant, body: str) -> Path:
    path = tmp_path / "rotator.toml"
    path.write_text(first.apple_toml() + "\n" + body)
    return path


@pytest.mark.slow
def test_six_free_tier_tenants_rotate_side_by_side(
    tenants: list[EmulatedTenant], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """24 due connections on 6 rate-limited tenants: all rotate intact, tenants overlap in time."""
    body = "".join(entries(t, [f"apple-{c}" for c in range(4)]) for t in tenants)
    code, _, err = run_cli("run-once", "--config", str(write(tmp_path, tenants[0], body)),
                           capsys=capsys)
    assert code == 0, err
    for tenant in tenants:
        for c in range(4):
            stored = tenant.stored(f"apple-{c}")
            assert {k: v for k, v in stored["options"].items() if k != "client_secret"} == (
                tenant.other_options(stored))
        assert len(tenant.patches()) == 4
        assert not [r for r in tenant.emu.journal if r.status == 429]
    spans = []
    for tenant in tenants:
        times = [r.time for r in tenant.emu.journal if r.path.startswith("/api/v2/")]
        spans.append((min(times), max(times)))
    # Side by side: every tenant's Management API work overlaps every other's.
    latest_start = max(start for start, _ in spans)
    earliest_end = min(end for _, end in spans)
    assert latest_start < earliest_end, spans
    [finished] = named(err, "run.finished")
    assert (finished["checked"], finished["rotated"], finished["failed"]) == (24, 24, 0)


@pytest.mark.slow
def test_broken_tenants_fail_alone_each_named(
    tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str], refused_port: int
) -> None:
    """A closed port, a 401 token and an unbuildable client fail alone; healthy tenants rotate."""
    with ExitStack() as stack:
        made = []
        for n in range(4):
            emu = stack.enter_context(Emulator())
            (tmp_path / f"t{n}").mkdir()
            made.append(EmulatedTenant(emu, tmp_path / f"t{n}", key_path, name=f"t{n}"))
        healthy, unauthorized, unbuildable, other = made
        for tenant in made:
            tenant.add(client_secret=tenant.mint(age=40 * 86400))
        unauthorized.secret_file.write_text("not-the-secret")
        closed = f"127.0.0.1:{refused_port}"
        body = (entries(healthy, ["apple"]) + entries(unauthorized, ["apple"])
                + entries(unbuildable, ["apple"]) + entries(other, ["apple"])
                + entries(healthy, ["apple"]).replace(healthy.emu.domain, closed))
        cfg = write(tmp_path, healthy, '[schedule]\ndeadline = "4s"\n\n' + body)
        settings = config.load(config.Overrides(config=str(cfg)), environ={})
        bundle = Path(unbuildable.emu.ca_pem_path)
        bundle.write_text("not a certificate any more\n")  # after the configuration loaded
        import io

        from rotator import logs

        stream = io.StringIO()
        logs.configure("json", "info", stream)
        report = runner.run(settings)

    assert cli.exit_code(report) == 1
    by_tenant = {o.tenant: o for o in report.outcomes}
    assert by_tenant[healthy.emu.domain].rotated
    assert by_tenant[other.emu.domain].rotated
    assert by_tenant[unauthorized.emu.domain].step == "token"
    assert "401" in (by_tenant[unauthorized.emu.domain].error or "")
    assert "auth0.client_id and the M2M client secret" in (
        by_tenant[unauthorized.emu.domain].error or "")
    assert by_tenant[unbuildable.emu.domain].step == "connect"
    assert "auth0.ca_bundle" in (by_tenant[unbuildable.emu.domain].error or "")
    assert by_tenant[closed].step == "token"
    assert "connection refused" in (by_tenant[closed].error or "")
    failed = {e["tenant"] for e in named(stream.getvalue(), "rotation.failed")}
    assert failed == {unauthorized.emu.domain, unbuildable.emu.domain, closed}


def test_apple_is_asked_with_the_connections_own_tls_trust(tenant: EmulatedTenant) -> None:
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


_IMPORTED_WHEN_THE_DEADLINE_STARTS = """
import sys, time
from rotator import config, runner
settings = config.load(config.Overrides(config=sys.argv[1]), environ={})
assert "rotator.auth0" not in sys.modules and "rotator.apple" not in sys.modules
seen = []
def monotonic():
    if not seen:  # the deadline's start
        seen.append([m in sys.modules for m in ("rotator.auth0", "rotator.apple")])
    return time.monotonic()
report = runner.run(settings, runner.Options(monotonic=monotonic))
print(seen[0], report.outcomes[0].error)
"""


def test_the_network_sides_are_imported_before_the_deadline_starts(tenant: EmulatedTenant) -> None:
    """A fresh process's run imports auth0-python and the Apple client before its deadline
    starts: the deadline bounds work on the network, not the interpreter's imports."""
    tenant.add(client_secret=tenant.mint())
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTED_WHEN_THE_DEADLINE_STARTS, str(tenant.write_config())],
        capture_output=True, text=True, timeout=60, check=False,
        env=child_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[True, True] None", proc.stdout + proc.stderr


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
@pytest.mark.slow
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


@pytest.mark.slow
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


def _second_entry(tenant: EmulatedTenant, con_id: str, how: str) -> str:
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
    how: str, tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """By name and by con_ id, through different [auth0] settings: both refused, no PATCH."""
    conn = tenant.add(client_secret=None)
    config = tenant.write_config()
    config.write_text(config.read_text() + "\n" + _second_entry(tenant, conn["id"], how))
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 1, err
    assert tenant.patches() == []
    failed = named(err, "rotation.failed")
    assert len(failed) == 2, failed
    for event in failed:
        assert f"the same connection {conn['id']}" in event["error"]


def test_one_name_twice_spelled_differently_is_refused_at_load(
    tenant: EmulatedTenant,
) -> None:
    """The same name twice, the domain once in capitals and the audience spelled out: exit 2."""
    config = tenant.write_config()
    extra = (f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n'
             f'domain = "{tenant.emu.domain.upper()}"\n'
             f'audience = "https://{tenant.emu.domain}/api/v2"\n')
    config.write_text(config.read_text() + "\n" + extra)
    assert_refused(run_rotator("check-config", "--config", str(config)), "listed twice",
                   "#1", "#2")


def test_a_tenant_is_built_once_however_many_workers_ask(tenant: EmulatedTenant) -> None:
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


@pytest.mark.slow
def test_an_outcome_unfinished_at_the_deadline_is_reported_afresh(tenant: EmulatedTenant) -> None:
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


def test_one_connection_by_name_and_by_id_is_refused_naming_both(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same connection listed by name and by con_ id: no PATCH, exit 1, both entries named."""
    conn = tenant.add(client_secret=None)
    config = tenant.write_config([("apple", SERVICES_ID), (conn["id"], SERVICES_ID)])
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 1
    assert tenant.patches() == []
    failed = named(err, "rotation.failed")
    assert len(failed) == 2
    for event in failed:
        assert "#1 ('apple')" in event["error"]
        assert f"#2 ('{conn['id']}')" in event["error"]


def test_two_tenants_three_connections_one_failing(
    tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failing connection fails alone: the other two rotate, exit 1, the log names it."""
    with Emulator() as first_emu, Emulator() as second_emu:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = EmulatedTenant(first_emu, tmp_path / "a", key_path, name="first")
        second = EmulatedTenant(second_emu, tmp_path / "b", key_path, name="second")
        a = first.add("apple-web", client_secret=None)
        first.add("apple-broken", client_secret=None, services_id="com.example.wrong")
        b = second.add("apple-ios", client_secret=None, services_id="com.example.ios")
        config = tmp_path / "rotator.toml"
        config.write_text(
            first.auth0_toml() + "\n" + first.apple_toml() + "\n"
            f'[[connections]]\nconnection = "apple-web"\nclient_id = "{SERVICES_ID}"\n\n'
            f'[[connections]]\nconnection = "apple-broken"\nclient_id = "{SERVICES_ID}"\n\n'
            '[[connections]]\nconnection = "apple-ios"\nclient_id = "com.example.ios"\n'
            f'domain = "{second_emu.domain}"\nclient_secret_file = "{second.secret_file}"\n'
            f'ca_bundle = "{second_emu.ca_pem_path}"\n'
            f'token_url = "{second_emu.apple_token_url}"\n'
            f'[connections.auth0]\nclient_id = "{second.client_id}"\n'
        )
        code, _, err = run_cli("run-once", "--config", str(config), capsys=capsys)

        assert code == 1
        assert "client_secret" in first.stored(a["id"])["options"]
        assert "client_secret" in second.stored(b["id"])["options"]
        rotated = {(e["connection"], e["tenant"]) for e in named(err, "secret.rotated")}
        assert rotated == {("apple-web", first_emu.domain), ("apple-ios", second_emu.domain)}
        [failed] = named(err, "rotation.failed")
        assert failed["connection"] == "apple-broken"
        assert failed["tenant"] == first_emu.domain
