"""Tests for rotator.service: Service driven in-process with its injected clock, and one
real `rotator start` process (plus one for SIGTERM during a hung call)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import structlog
from auth0_env import live_secret, register_apple
from conftest import (
    ANY_PORT,
    KEY_ID,
    SERVICES_ID,
    TEAM_ID,
    Run,
    bound_listen,
    child_env,
    dump_hook,
    run_cli,
    wait_for,
)
from fakes import FakeApple, FakeTenant
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

import rotator
from rotator import config, logs, runner, secret
from rotator.emulator import Emulator, Fault
from rotator.outcome import Report
from rotator.reload import Reloader
from rotator.seams import Connection
from rotator.service import SLACK, Service, jitter_for
from rotator.settings import Listen

M2M_ID = "rotator-m2m"
M2M_SECRET = "m2m-secret-for-the-service-tests"
DISPLAY_NAME = "Sign in with Apple"
OPTIONS: dict[str, Any] = {
    "client_id": SERVICES_ID,
    "client_secret": "",
    "authorizationURL": "https://appleid.apple.com/auth/authorize",
    "tokenURL": "https://appleid.apple.com/auth/token",
    "scope": "openid name email",
    "upstream_params": {"response_mode": {"value": "form_post"}},
}
HOUR = 3600
SCHEDULE = {"secret_lifetime": "1d", "rotate_every": "1h", "check_every": "1m"}


# -- helpers ---------------------------------------------------------------------


def write_config(
    tmp_path: Path,
    emu: Emulator,
    key_path: Path,
    *,
    listen: str,
    hook: list[str] | None = None,
    hook_timeout: str = "5s",
    schedule: dict[str, str] | None = None,
    domain: str | None = None,
) -> Path:
    """A config TOML for one connection on the emulator's tenant (Apple asked there too)."""
    secret_file = tmp_path / "auth0_client_secret"
    secret_file.write_text(M2M_SECRET + "\n")
    lines = [
        "[auth0]",
        f'domain = "{domain or emu.domain}"',
        f'client_id = "{M2M_ID}"',
        f"client_secret_file = {json.dumps(str(secret_file))}",
        f"ca_bundle = {json.dumps(emu.ca_pem_path)}",
        "[apple]",
        f'team_id = "{TEAM_ID}"',
        f'key_id = "{KEY_ID}"',
        f"private_key_file = {json.dumps(str(key_path))}",
        f'token_url = "{emu.apple_token_url}"',
        "[schedule]",
        *(f'{k} = "{v}"' for k, v in (schedule or SCHEDULE).items()),
        "[server]",
        f'listen = "{listen}"',
    ]
    if hook is not None:
        lines += ["[hooks]", f"post_rotate = {json.dumps(hook)}", f'timeout = "{hook_timeout}"']
    lines += ["[[connections]]", 'connection = "apple"', f'client_id = "{SERVICES_ID}"']
    path = tmp_path / "rotator.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def load(path: Path) -> config.Settings:
    """The settings of ``path``, listening on a port the system picks when it binds."""
    settings = config.load(config.Overrides(config=str(path)), environ={})
    return dataclasses.replace(settings, listen=Listen("127.0.0.1", 0))


def claims(token: str) -> dict[str, Any]:
    """A JWT's claims, decoded without verification."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def assert_options_intact(emu: Emulator) -> None:
    """Every option but client_secret is as added, and display_name is unchanged."""
    stored = emu.connection("apple")
    kept = {k: v for k, v in stored["options"].items() if k != "client_secret"}
    assert kept == {k: v for k, v in OPTIONS.items() if k != "client_secret"}
    assert stored["display_name"] == DISPLAY_NAME


def metric(text: str, name: str, **labels: str) -> float | None:
    """One sample of a Prometheus text page, or None when it is not there."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


class Clock:
    """The service's wall clock, moved forward by the test; Apple's clock moves with it."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds
        self.emu.apple_clock_offset = self.offset


@dataclass
class Started:
    """A `rotator start` process, its log file and its HTTP address."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    base_url: str

    def events(self) -> list[dict[str, Any]]:
        """Every complete log line so far (each must be one JSON object)."""
        text = self.log_path.read_text(encoding="utf-8")
        lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                pytest.fail(f"stderr line is not JSON: {line!r}")
        return out

    def named(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == event]

    def get(self, path: str) -> httpx.Response | None:
        try:
            return httpx.get(self.base_url + path, timeout=5)
        except httpx.TransportError:
            return None

    def status(self, path: str) -> int | None:
        answer = self.get(path)
        return answer.status_code if answer is not None else None

    def metric(self, name: str, **labels: str) -> float | None:
        answer = self.get("/metrics")
        return metric(answer.text, name, **labels) if answer is not None else None

    def terminate(self, within: float = 10) -> int:
        """SIGTERM; the exit code, failing when the process outlives ``within`` seconds."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"rotator start still running {within:g} s after SIGTERM")


@contextlib.contextmanager
def rotator_start(config_path: Path, tmp_path: Path) -> Iterator[Started]:
    """`rotator start --log-format json` in the background, once it serves; killed at exit."""
    log_path = tmp_path / "rotator-start.log"
    env = child_env()
    with log_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rotator", "start", "--config", str(config_path),
             "--log-format", "json"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, env=env,
        )
    try:
        yield Started(proc, log_path, f"http://{bound_listen(log_path, proc)}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def emu(apple_key: secret.AppleKey) -> Iterator[Emulator]:
    """An emulator with the M2M client, one oauth2 connection with no secret yet, Apple's key."""
    with Emulator() as emulator:
        emulator.add_client(M2M_ID, M2M_SECRET)
        emulator.add_connection({"name": "apple", "display_name": DISPLAY_NAME,
                                 "options": OPTIONS})
        register_apple(emulator, apple_key)
        yield emulator


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """Services a test makes; each is stopped at teardown (its pool closed)."""
    made: list[Service] = []
    yield made
    for service in made:
        if not service.stopping.is_set():
            service.stop()


@pytest.fixture
def service(emu: Emulator, key_path: Path, tmp_path: Path,
            services: list[Service]) -> tuple[Service, Clock]:
    """A Service on the emulator, its clock under the test's control, not started."""
    clock = Clock(emu)
    settings = load(write_config(tmp_path, emu, key_path, listen=ANY_PORT))
    made = Service(settings, clock=clock)
    services.append(made)
    return made, clock


# -- rotator start, for real -----------------------------------------------------


@pytest.mark.slow
def test_start_rotates_reports_and_stops_cleanly(
    emu: Emulator, key_path: Path, tmp_path: Path
) -> None:
    """`rotator start` rotates at start-up, exports the live exp, is ready, exits 0 on SIGTERM."""
    cfg = write_config(tmp_path, emu, key_path, listen=ANY_PORT)
    with rotator_start(cfg, tmp_path) as svc:
        wait_for(lambda: svc.named("secret.rotated"), 30, "the start-up rotation")
        labels = {"connection": "apple", "tenant": emu.domain}
        wait_for(
            lambda: svc.metric("rotator_secret_expiry_timestamp_seconds", **labels)
            == claims(live_secret(emu))["exp"],
            30, "the expiry gauge to equal the live secret's exp",
        )
        assert svc.metric("rotator_rotations_total", result="success", **labels) == 1
        assert svc.metric("rotator_check_success", **labels) == 1
        assert svc.metric("rotator_secret_apple_accepted", **labels) == 1
        assert svc.metric("rotator_build_info", version=rotator.__version__) == 1
        wait_for(lambda: svc.status("/readyz") == 200, 30, "/readyz 200")
        assert svc.status("/healthz") == 200
        assert svc.terminate(within=10) == 0

    stopped = svc.named("scheduler.stopped")
    assert len(stopped) == 1
    assert stopped[0]["reason"] == "SIGTERM"
    assert_options_intact(emu)
    log_text = svc.log_path.read_text()
    for value in (live_secret(emu), M2M_SECRET):
        assert value not in log_text


@pytest.mark.slow
def test_sigterm_during_a_hung_auth0_call_still_exits_promptly(
    emu: Emulator, key_path: Path, tmp_path: Path
) -> None:
    """SIGTERM while Auth0 keeps a read hanging: exit 0 within 10 s, and nothing written."""
    emu.inject(Fault(path="/api/v2/", delay=60, times=None))
    cfg = write_config(tmp_path, emu, key_path, listen=ANY_PORT)
    with rotator_start(cfg, tmp_path) as svc:
        wait_for(lambda: svc.named("scheduler.started"), 30, "scheduler.started")
        wait_for(lambda: any(r.path == "/oauth/token" for r in emu.journal), 30,
                 "the first check to reach Auth0")
        assert svc.terminate(within=10) == 0

    stopped = svc.named("scheduler.stopped")
    assert len(stopped) == 1
    assert stopped[0]["check_in_flight_finished"] is False
    assert not [r for r in emu.journal if r.method == "PATCH"]
    assert live_secret(emu) == ""


def _threads_and_fds(pid: int) -> tuple[int, int]:
    """How many threads and open file descriptors process ``pid`` has now."""
    return len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.slow
@pytest.mark.parametrize("path", ["/api/v2/connections", "/auth/token"])
def test_trickling_answers_leave_no_thread_or_socket_behind_check_after_check(
    emu: Emulator, key_path: Path, tmp_path: Path, path: str
) -> None:
    """Auth0 or Apple trickling every answer: each check ends; threads and fds stay level."""
    emu.inject(Fault(path=path, trickle=0.2, times=None))
    cfg = write_config(tmp_path, emu, key_path, listen=ANY_PORT,
                       schedule={**SCHEDULE, "check_every": "2s", "deadline": "1s"})
    with rotator_start(cfg, tmp_path) as svc:
        pid = svc.proc.pid

        def after_check(n: int) -> tuple[int, int]:
            """Threads and fds as the n-th check reports its end (before the next begins)."""
            wait_for(lambda: len(svc.named("run.finished")) >= n, 30, f"check {n} to end")
            return _threads_and_fds(pid)

        # The baseline: the fewest seen after checks 2 and 3. The connection to Auth0
        # kept alive between checks may come and go (one fd); a leak adds a thread
        # and a socket or two with every check, for as long as the answer trickles
        # (minutes), so it shows after the very next check; two more make sure.
        early = [after_check(2), after_check(3)]
        base_threads, base_fds = min(t for t, _ in early), min(f for _, f in early)
        for n in range(4, 6):
            after_check(n)
            seen: list[tuple[int, int]] = []

            def level(seen: list[tuple[int, int]] = seen) -> bool:
                seen.append(_threads_and_fds(pid))
                return seen[-1][0] <= base_threads and seen[-1][1] <= base_fds + 1

            with contextlib.suppress(pytest.fail.Exception):
                wait_for(level, 1.5, "threads and fds back to their level")
            assert level(), (f"{base_threads} threads and {base_fds} fds after checks 2 and 3; "
                             f"after check {n}: {seen}")
        assert svc.terminate(within=10) == 0
    failed = svc.named("rotation.failed")
    assert failed, "the trickled checks must fail"
    assert all("deadline" in e["error"] for e in failed), [e["error"] for e in failed]


# -- checks, driven with the injected clock ----------------------------------------


def test_checks_rotate_again_once_the_clock_says_due(service: tuple[Service, Clock],
                                                     emu: Emulator) -> None:
    """A check rotates; an hour later (by the clock) the next rotates again with a new secret."""
    svc, clock = service
    assert not svc.check().failed
    first = live_secret(emu)
    assert not svc.check().failed  # nothing due a moment later
    assert live_secret(emu) == first
    clock.advance(HOUR + 1)
    assert not svc.check().failed
    second = live_secret(emu)
    assert second != first
    assert HOUR + 1 <= claims(second)["iat"] - claims(first)["iat"] <= HOUR + 3
    labels = {"tenant": emu.domain, "connection": "apple"}
    page = svc.metrics.render().decode()
    assert metric(page, "rotator_rotations_total", result="success", **labels) == 2
    expiry = metric(page, "rotator_secret_expiry_timestamp_seconds", **labels)
    assert expiry == claims(second)["exp"]
    assert svc.ready() == (True, "ready")
    assert_options_intact(emu)


def test_readyz_follows_auth0_failing_and_recovering(service: tuple[Service, Clock],
                                                      emu: Emulator) -> None:
    """/readyz is 503 after a check Auth0 refused, and 200 again after one that succeeded."""
    svc, _ = service
    svc.server.start()
    base = f"http://{svc.server.address}"
    assert httpx.get(base + "/readyz").status_code == 503  # no check yet
    assert not svc.check().failed
    assert httpx.get(base + "/readyz").status_code == 200
    emu.inject(Fault(path="/api/v2/", status=403, times=None))
    assert svc.check().failed
    answer = httpx.get(base + "/readyz")
    assert (answer.status_code, answer.text) == (503, "not ready: apple failed at read\n")
    assert metric(httpx.get(base + "/metrics").text, "rotator_check_success",
                  tenant=emu.domain, connection="apple") == 0
    emu.clear_faults()
    assert not svc.check().failed
    assert httpx.get(base + "/readyz").status_code == 200


def test_unreachable_auth0_exports_check_success_0_from_the_first_check(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service], refused_port: int
) -> None:
    """Auth0 never reached: rotator_check_success is 0 for the connection and /readyz 503."""
    cfg = write_config(tmp_path, emu, key_path, listen=ANY_PORT,
                       domain=f"127.0.0.1:{refused_port}",
                       schedule={**SCHEDULE, "deadline": "2s"})
    svc = Service(load(cfg))
    services.append(svc)
    report = svc.check()
    [outcome] = report.outcomes
    assert (outcome.step, outcome.checked) == ("token", False)
    page = svc.metrics.render().decode()
    labels = {"tenant": outcome.tenant, "connection": "apple"}
    assert metric(page, "rotator_check_success", **labels) == 0
    assert metric(page, "rotator_checks_total", result="failure", **labels) == 1
    assert metric(page, "rotator_secret_expiry_timestamp_seconds", **labels) is None
    assert svc.ready()[0] is False


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "timeout", "error"),
    [
        pytest.param('echo "reload failed" >&2\nexit 3\n', "5s", "reload failed", id="exit-3"),
        pytest.param(
            'echo $$ >> "$(dirname "$0")/pids"\nexec sleep 60\n', "1s", "timed out", id="hangs"
        ),
    ],
)
def test_failing_hook_neither_stops_checks_nor_undoes_the_rotation(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service],
    body: str, timeout: str, error: str,
) -> None:
    """A hook that fails or hangs is hook.failed and counted; rotations go on and stand."""
    hook = dump_hook(tmp_path, body)
    cfg = write_config(tmp_path, emu, key_path, listen=ANY_PORT,
                       hook=[str(hook)], hook_timeout=timeout)
    clock = Clock(emu)
    svc = Service(load(cfg), clock=clock)
    services.append(svc)
    with capture_logs() as events:
        svc.check()
        clock.advance(HOUR + 1)
        svc.check()
    failures = [e for e in events if e["event"] == "hook.failed"]
    rotated = [e for e in events if e["event"] == "secret.rotated"]
    assert (len(failures), len(rotated)) == (2, 2)
    assert all(error in json.dumps(f) for f in failures)
    assert not [e for e in events if e["event"] == "rotation.failed"]
    assert rotated[-1]["fingerprint"] == secret.fingerprint(live_secret(emu))
    assert svc.ready() == (True, "ready")
    assert svc.metrics.registry.get_sample_value(
        "rotator_hook_failures_total", {"tenant": emu.domain, "connection": "apple"}) == 2
    assert_options_intact(emu)
    pids = tmp_path / "pids"
    if pids.exists():  # the hanging hook: every one was killed
        for pid in map(int, pids.read_text().split()):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


def test_checks_reuse_the_tenant_and_its_token(service: tuple[Service, Clock],
                                               emu: Emulator) -> None:
    """Successive checks of a running service share one access token, fetched once."""
    svc, _ = service
    for _ in range(3):
        assert not svc.check().failed
    token_requests = [r for r in emu.journal if r.path == "/oauth/token"]
    reads = [r for r in emu.journal if r.method == "GET"]
    assert len(token_requests) == 1
    assert len(reads) == 3


def test_a_check_stuck_past_its_deadline_ends_and_the_next_runs(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """A read that hangs fails at the run's deadline, and the next check runs normally."""
    cfg = write_config(tmp_path, emu, key_path, listen=ANY_PORT,
                       schedule={**SCHEDULE, "deadline": "2s"})
    svc = Service(load(cfg))
    services.append(svc)
    emu.inject(Fault(method="GET", path="/api/v2/connections", delay=30))
    began = time.monotonic()
    [stuck] = svc.check().outcomes
    assert time.monotonic() - began < 5
    assert (stuck.step, "deadline" in (stuck.error or "")) == ("read", True)
    emu.clear_faults()
    assert not svc.check().failed
    assert live_secret(emu) != ""


# -- health -------------------------------------------------------------------------


class _GatedTenant(FakeTenant):
    """The shared fake holding a fresh secret, whose reads wait for ``gate``."""

    def __init__(self, settings: config.Settings, gate: threading.Event) -> None:
        super().__init__(name="example.eu.auth0.com")
        conn = settings.connections[0]
        fresh = secret.mint(conn.apple.key, team_id=TEAM_ID, key_id=KEY_ID,
                            services_id=SERVICES_ID, lifetime=settings.schedule.secret_lifetime,
                            now=int(time.time()))
        self.backend.add_connection({"name": "apple", "display_name": DISPLAY_NAME,
                                     "options": {**OPTIONS, "client_secret": fresh}})
        self.backend.apple_register_key(TEAM_ID, KEY_ID, conn.apple.key.public_key)
        self.backend.apple_add_services_id(TEAM_ID, SERVICES_ID)
        self.gate = gate

    def read(self, ref: str) -> Connection:
        assert self.gate.wait(20), "the test never opened the gate"
        return super().read(ref)


def _gated(emu: Emulator, key_path: Path, tmp_path: Path, gate: threading.Event,
           monotonic: Any = time.monotonic) -> Service:
    settings = load(write_config(tmp_path, emu, key_path, listen=ANY_PORT))
    side = _GatedTenant(settings, gate)
    pool = runner.Pool(auth0=lambda _: side, apple=lambda *_: FakeApple(side.backend))
    return Service(settings, pool=pool, monotonic=monotonic)


def test_service_is_healthy_at_once_and_ready_after_its_first_check(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """/healthz is 200 while the scheduler runs; /readyz is 503 until the first check ends."""
    gate = threading.Event()
    svc = _gated(emu, key_path, tmp_path, gate)
    services.append(svc)
    base = f"http://{svc.server.address}"
    svc.start()
    try:
        assert httpx.get(base + "/healthz").status_code == 200
        assert httpx.get(base + "/readyz").status_code == 503
        gate.set()
        wait_for(lambda: httpx.get(base + "/readyz").status_code == 200, 20, "/readyz 200")
        assert httpx.get(base + "/healthz").status_code == 200
        checks = svc.metrics.registry.get_sample_value(
            "rotator_checks_total",
            {"tenant": emu.domain, "connection": "apple", "result": "success"})
        assert checks == 1
    finally:
        gate.set()
        svc.stop()
    assert svc.healthy()[0] is False


def test_a_check_running_past_its_deadline_makes_healthz_fail(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """By the service's clock, a check running longer than its deadline turns /healthz 503."""
    gate = threading.Event()
    now = [time.monotonic()]
    svc = _gated(emu, key_path, tmp_path, gate, monotonic=lambda: now[0])
    services.append(svc)
    svc.start()
    try:
        wait_for(lambda: not svc.idle.is_set(), 10, "the start-up check to begin")
        assert svc.healthy() == (True, "ok")
        now[0] += svc.settings.schedule.deadline + SLACK + 1
        ok, reason = svc.healthy()
        assert not ok
        assert "past its deadline" in reason
        gate.set()
        wait_for(lambda: svc.idle.is_set(), 10, "the check to end")
        assert svc.healthy() == (True, "ok")
    finally:
        gate.set()


def test_start_keeps_rotating_when_its_log_stream_fails_and_healthz_says_so(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """With stderr's reader gone, the start-up check still rotates; /healthz 503 names the logs."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    broken = open(write_end, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - closed below
    logs.configure("json", "info", broken)
    svc = Service(load(write_config(tmp_path, emu, key_path, listen=ANY_PORT)))
    services.append(svc)
    svc.start()
    wait_for(lambda: live_secret(emu) != "", 20, "the start-up rotation")
    wait_for(lambda: svc.idle.is_set() and svc.readiness, 20, "the check to finish")
    base = f"http://{svc.server.address}"
    answer = httpx.get(base + "/healthz")
    assert answer.status_code == 503
    assert "log lines cannot be written" in answer.text
    errors = metric(httpx.get(base + "/metrics").text, "rotator_log_write_errors_total")
    assert errors is not None
    assert errors >= 1
    assert httpx.get(base + "/readyz").status_code == 200
    svc.stop()
    structlog.reset_defaults()
    with contextlib.suppress(OSError):
        broken.close()


class _CrashingService(Service):
    """A service whose whole check raises (as a bug in rotator itself would)."""

    def check(self) -> Report:
        raise RuntimeError("a bug")


def test_crashed_check_turns_readyz_503(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """A check that crashes outright (no outcome at all) counts as failed for /readyz."""
    settings = load(write_config(tmp_path, emu, key_path, listen=ANY_PORT))
    svc = _CrashingService(settings)
    services.append(svc)
    with capture_logs() as events:
        svc._job()
    assert svc.ready()[0] is False
    failures = svc.metrics.registry.get_sample_value(
        "rotator_checks_total", {"tenant": emu.domain, "connection": "apple", "result": "failure"})
    assert failures == 1
    assert any(e["event"] == "check.crashed" for e in events)
    assert emu.journal == []


def test_a_backward_clock_step_does_not_push_the_next_check_away(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """The clock stepped back an hour: the next check stays as near in real time as it was."""
    clock = Clock(emu)
    # Checks two hours apart: stepped back one, the next is still ahead on the
    # scheduler's own (unstepped) clock, so nothing runs early and muddles the view.
    settings = load(write_config(tmp_path, emu, key_path, listen=ANY_PORT,
                                 schedule={**SCHEDULE, "check_every": "2h"}))
    svc = Service(settings, clock=clock, watch_every=0.1)
    services.append(svc)

    def wait() -> float:
        """Seconds until the next check by the service's clock (the host's, stepped)."""
        job = svc.scheduler.get_job("check")
        assert job is not None
        assert job.next_run_time is not None
        return float(job.next_run_time.timestamp() - clock())

    with capture_logs() as events:
        svc.start()
        wait_for(lambda: svc.readiness, 20, "the start-up check")
        before = wait()
        assert 0 < before <= 2 * HOUR + 30
        clock.advance(-HOUR)
        wait_for(lambda: wait() <= before, 5, f"the next check back within {before:.0f} s "
                 f"(it is {wait():.0f} s away)")
    [stepped] = [e for e in events if e["event"] == "clock.stepped"]
    assert stepped["seconds"] == -HOUR


def test_readyz_and_healthz_turn_503_when_checks_stop_completing(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """No check completed for check_every + jitter + deadline + slack: both probes are 503."""
    gate = threading.Event()
    gate.set()
    now = [time.monotonic()]
    svc = _gated(emu, key_path, tmp_path, gate, monotonic=lambda: now[0])
    services.append(svc)
    svc.start()
    base = f"http://{svc.server.address}"
    wait_for(lambda: httpx.get(base + "/readyz").status_code == 200, 20, "/readyz 200")
    s = svc.settings.schedule
    now[0] += s.check_every + jitter_for(s.check_every) + s.deadline + SLACK + 1
    for probe in ("/healthz", "/readyz"):
        answer = httpx.get(base + probe)
        assert answer.status_code == 503, probe
        assert "no check has completed for" in answer.text


# -- reloading ----------------------------------------------------------------------


def _reloading(cfg: Path, services: list[Service]) -> Service:
    """A Service whose settings follow ``cfg`` and the files it names (as `rotator start`)."""
    reloader = Reloader(lambda: load(cfg))
    svc = Service(reloader.load(), reloader=reloader)
    services.append(svc)
    return svc


def test_a_changed_secret_file_is_used_from_the_next_check(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """The M2M secret file replaced (a Secret update): the next check authenticates with it."""
    svc = _reloading(write_config(tmp_path, emu, key_path, listen=ANY_PORT), services)
    assert not svc.check().failed
    emu.add_client(M2M_ID, "the-new-m2m-secret")
    (tmp_path / "auth0_client_secret").write_text("the-new-m2m-secret\n")
    with capture_logs() as events:
        assert not svc.check().failed
    tokens = [r for r in emu.journal if r.path == "/oauth/token"]
    sent = tokens[-1].body
    assert isinstance(sent, dict)
    assert sent["client_secret"] == "the-new-m2m-secret"
    [reloaded] = [e for e in events if e["event"] == "config.reloaded"]
    assert reloaded["changed"] == [str(tmp_path / "auth0_client_secret")]
    assert svc.ready() == (True, "ready")


def test_a_change_that_does_not_validate_keeps_the_last_good_one_and_readyz_says_so(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """A broken edit: logged once, counted, old settings kept at work, /readyz 503 until fixed."""
    cfg = write_config(tmp_path, emu, key_path, listen=ANY_PORT)
    good = cfg.read_text()
    svc = _reloading(cfg, services)
    assert not svc.check().failed
    cfg.write_text(good.replace('check_every = "1m"', 'check_every = "soon"'))
    with capture_logs() as events:
        for _ in range(2):
            assert not svc.check().failed  # the last good settings, still at work
    [refused] = [e for e in events if e["event"] == "config.reload_failed"]
    assert refused["log_level"] == "error"
    assert "check_every" in refused["error"]
    ok, reason = svc.ready()
    assert not ok
    assert "does not validate" in reason
    assert "check_every" in reason
    page = svc.metrics.render().decode()
    assert metric(page, "rotator_config_reload_failures_total") == 1
    assert metric(page, "rotator_config_last_reload_successful") == 0
    cfg.write_text(good)
    assert not svc.check().failed
    assert svc.ready() == (True, "ready")
    assert metric(svc.metrics.render().decode(), "rotator_config_last_reload_successful") == 1


@pytest.mark.slow
def test_sighup_reloads_at_once_and_does_not_stop_the_service(
    emu: Emulator, key_path: Path, tmp_path: Path
) -> None:
    """SIGHUP after adding a connection: start stays up, reloads and checks both at once."""
    emu.add_connection({"name": "second", "display_name": "x", "options": OPTIONS})
    cfg = write_config(tmp_path, emu, key_path, listen=ANY_PORT,
                       schedule={**SCHEDULE, "check_every": "1h"})
    with rotator_start(cfg, tmp_path) as svc:
        wait_for(lambda: svc.named("run.finished"), 30, "the start-up check")
        cfg.write_text(cfg.read_text() + '[[connections]]\nconnection = "second"\n'
                       f'client_id = "{SERVICES_ID}"\n')
        svc.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(svc.named("run.finished")) >= 2, 30, "a check right after SIGHUP")
        assert svc.proc.poll() is None
        [reloaded] = svc.named("config.reloaded")
        assert reloaded["trigger"] == "SIGHUP"
        assert svc.named("run.finished")[-1]["checked"] == 2
        assert svc.terminate(within=10) == 0


# -- stopping -----------------------------------------------------------------------


@pytest.mark.slow
def test_stop_during_a_check_abandons_it_before_the_write(
    service: tuple[Service, Clock], emu: Emulator
) -> None:
    """stop() while a read is in flight returns within 10 s, and no PATCH follows."""
    svc, _ = service
    emu.inject(Fault(method="GET", path="/api/v2/connections", delay=3))
    with capture_logs() as events:
        svc.start()
        wait_for(lambda: any(r.path == "/oauth/token" for r in emu.journal), 20,
                 "the start-up check to fetch a token")
        assert not svc.idle.is_set()  # the check is waiting on the slow read
        asked = time.monotonic()
        finished = svc.stop()
        took = time.monotonic() - asked

    assert took < 10
    assert finished is True
    assert not [r for r in emu.journal if r.method == "PATCH"]
    assert live_secret(emu) == ""
    names = [e["event"] for e in events]
    assert "rotation.abandoned" in names
    assert "secret.rotated" not in names
    stopped = [e for e in events if e["event"] == "scheduler.stopped"]
    assert len(stopped) == 1
    assert stopped[0]["check_in_flight_finished"] is True
    assert svc.healthy()[0] is False


def test_stop_without_start_returns_and_frees_the_port(
    emu: Emulator, key_path: Path, tmp_path: Path
) -> None:
    """A Service built but never started stops at once and lets go of its port."""
    svc = Service(load(write_config(tmp_path, emu, key_path, listen=ANY_PORT)))
    host, port = svc.server.address.rsplit(":", 1)  # bound, not yet serving
    done = threading.Event()

    def stop() -> None:
        svc.stop()
        done.set()

    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    assert done.wait(10), "stop() of a never-started Service hangs"
    with socket.socket() as sock:
        sock.bind((host, int(port)))


def test_listen_on_port_0_serves_on_a_free_port_named_in_scheduler_started(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """server.listen with port 0 (as `start` reads it): scheduler.started names the port bound."""
    cfg = write_config(tmp_path, emu, key_path, listen="127.0.0.1:0")
    svc = Service(config.load(config.Overrides(config=str(cfg)), environ={}))
    services.append(svc)
    with capture_logs() as events:
        svc.start()
    [started] = [e for e in events if e["event"] == "scheduler.started"]
    host, _, port = started["listen"].rpartition(":")
    assert (host, int(port) > 0) == ("127.0.0.1", True), started
    assert httpx.get(f"http://{started['listen']}/healthz").status_code == 200


# -- bad configuration: exit 2 before anything is contacted -------------------------


def start_cli(cfg: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """`rotator start` in this process (it must refuse before it starts anything)."""
    return run_cli("start", "--config", str(cfg), capsys=capsys)


@pytest.mark.parametrize(
    "listen",
    ["nonsense", "1.2.3.4", "127.0.0.1:99999", "127.0.0.1:abc", "::1", "1.2.3.4:8080"],
)
def test_start_refuses_a_bad_listen_address(
    emu: Emulator, key_path: Path, tmp_path: Path, listen: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An unusable server.listen: exit 2 at once, one line naming it, nothing contacted."""
    code, out, err = start_cli(write_config(tmp_path, emu, key_path, listen=listen), capsys)
    assert code == 2, out + err
    assert err.count("\n") == 1
    assert err.startswith("rotator: error: server.listen")
    assert "Traceback" not in out + err
    assert emu.journal == []


def test_start_refuses_an_occupied_port(
    emu: Emulator, key_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port already taken: exit 2, one line naming server.listen, nothing contacted."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        cfg = write_config(tmp_path, emu, key_path, listen=f"127.0.0.1:{sock.getsockname()[1]}")
        code, out, err = start_cli(cfg, capsys)
        assert code == 2, out + err
        assert err.count("\n") == 1
        assert "server.listen" in err
        assert "cannot listen there" in err
        assert "Traceback" not in out + err
    assert emu.journal == []


@pytest.mark.parametrize("command", ["/nonexistent/hook", "no-such-rotator-hook"])
def test_start_refuses_a_missing_hook_command(
    emu: Emulator, key_path: Path, tmp_path: Path, command: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A post_rotate command that cannot be found: exit 2, one line naming hooks.post_rotate."""
    cfg = write_config(tmp_path, emu, key_path, listen=ANY_PORT,
                       hook=[command, "--quiet"])
    code, out, err = start_cli(cfg, capsys)
    assert code == 2, out + err
    assert err.count("\n") == 1
    assert err.startswith("rotator: error: hooks.post_rotate")
    assert command in err
    assert "Traceback" not in out + err
    assert emu.journal == []


def test_readyz_names_the_tenant_when_several_are_configured(
    tmp_path: Path, key_path: Path, services: list[Service]
) -> None:
    """`apple` on two tenants, the second lacking it: "not ready: TENANT/apple failed at read"."""
    from auth0_env import tenants_on_emulators, two_tenants

    with contextlib.ExitStack() as stack:
        tenants = tenants_on_emulators(stack, tmp_path, key_path)
        tenants[0].add()
        svc = Service(load(two_tenants(tmp_path, tenants)))
        services.append(svc)
        svc.check()
        assert svc.ready() == (False, f"not ready: {tenants[1].emu.domain}/apple failed at read")


def test_metrics_page_has_no_created_series(service: tuple[Service, Clock]) -> None:
    """/metrics after a rotation: counters without any *_created series."""
    svc, _ = service
    assert not svc.check().failed
    page = svc.metrics.render().decode()
    assert "rotator_rotations_total" in page
    assert "_created" not in page
