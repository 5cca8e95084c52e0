"""Tests for rotator.service: `rotator start` as a real process, and Service in-process."""

from __future__ import annotations

import contextlib
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
from conftest import KEY_ID, SERVICES_ID, TEAM_ID, free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from rotator import config, secret
from rotator.auth0 import Connection
from rotator.emulator import Emulator, Fault
from rotator.service import Service

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
FAST = {"secret_lifetime": "30s", "rotate_every": "5s", "check_every": "1s"}
_PREFIXES = ("AUTH0_", "APPLE_", "ROTATOR_")


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
) -> Path:
    """A config TOML for one connection on the emulator's tenant."""
    secret_file = tmp_path / "auth0_client_secret"
    secret_file.write_text(M2M_SECRET + "\n")
    lines = [
        "[auth0]",
        f'domain = "{emu.domain}"',
        f'client_id = "{M2M_ID}"',
        f"client_secret_file = {json.dumps(str(secret_file))}",
        f"ca_bundle = {json.dumps(emu.ca_pem_path)}",
        "[apple]",
        f'team_id = "{TEAM_ID}"',
        f'key_id = "{KEY_ID}"',
        f"private_key_file = {json.dumps(str(key_path))}",
        "[schedule]",
        *(f'{k} = "{v}"' for k, v in (schedule or FAST).items()),
        "[server]",
        f'listen = "{listen}"',
    ]
    if hook is not None:
        lines += ["[hooks]", f"post_rotate = {json.dumps(hook)}", f'timeout = "{hook_timeout}"']
    lines += ["[[connections]]", 'connection = "apple"', f'client_id = "{SERVICES_ID}"']
    path = tmp_path / "rotator.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def live_secret(emu: Emulator) -> str:
    """The client secret stored in the emulator's connection."""
    return str(emu.connection("apple")["options"]["client_secret"])


def claims(token: str) -> dict[str, Any]:
    """A JWT's claims, decoded without verification."""
    return dict(jwt.decode(token, options={"verify_signature": False}))


def assert_options_intact(emu: Emulator) -> None:
    """Every option but client_secret is as added, and display_name is unchanged."""
    stored = emu.connection("apple")
    kept = {k: v for k, v in stored["options"].items() if k != "client_secret"}
    assert kept == {k: v for k, v in OPTIONS.items() if k != "client_secret"}
    assert stored["display_name"] == DISPLAY_NAME


def write_script(path: Path, body: str) -> Path:
    """An executable shell script."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


@dataclass
class Started:
    """A `rotator start` process, its log file and its HTTP address."""

    proc: subprocess.Popen[bytes]
    log_path: Path
    base_url: str

    def lines(self) -> list[str]:
        """Every complete line written to stderr so far."""
        text = self.log_path.read_text(encoding="utf-8")
        return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]

    def events(self) -> list[dict[str, Any]]:
        """Every log event so far (each line must be one JSON object)."""
        out = []
        for line in self.lines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pytest.fail(f"stderr line is not JSON: {line!r}")
        return out

    def named(self, event: str) -> list[dict[str, Any]]:
        """The log events called ``event``."""
        return [e for e in self.events() if e.get("event") == event]

    def status(self, path: str) -> int | None:
        """The HTTP status of GET ``path``; None while nothing answers."""
        try:
            return httpx.get(self.base_url + path, timeout=5).status_code
        except httpx.TransportError:
            return None

    def metric(self, name: str, **labels: str) -> float | None:
        """One sample of /metrics, or None when it is not there (yet)."""
        try:
            text = httpx.get(self.base_url + "/metrics", timeout=5).text
        except httpx.TransportError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and sample.labels == labels:
                    return float(sample.value)
        return None

    def terminate(self, within: float = 10) -> int:
        """SIGTERM; the exit code, failing when the process outlives ``within`` seconds."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            pytest.fail(f"rotator start still running {within:g} s after SIGTERM")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without AUTH0_/APPLE_/ROTATOR_ variables, plus ``extra``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    base.pop("SSL_CERT_FILE", None)
    return {**base, **(extra or {})}


@contextlib.contextmanager
def rotator_start(config_path: Path, tmp_path: Path, listen: str) -> Iterator[Started]:
    """Run `rotator start --log-format json` in the background; killed at exit if still up."""
    log_path = tmp_path / "rotator-start.log"
    with log_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rotator", "start", "--config", str(config_path),
             "--log-format", "json"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=clean_env(),
        )
    started = Started(proc, log_path, f"http://{listen}")
    try:
        yield started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator with the M2M client and one oauth2 connection with no secret yet."""
    with Emulator() as emulator:
        emulator.add_client(M2M_ID, M2M_SECRET)
        emulator.add_connection(
            {"name": "apple", "display_name": DISPLAY_NAME, "options": OPTIONS}
        )
        yield emulator


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """Services a test starts; any left running are stopped at teardown."""
    started: list[Service] = []
    yield started
    for service in started:
        if not service.stopping.is_set():
            service.stop()


# -- rotator start, for real -----------------------------------------------------


@pytest.mark.slow
def test_start_rotates_reports_and_stops_cleanly(
    emu: Emulator, key_path: Path, tmp_path: Path
) -> None:
    """`rotator start` rotates twice, exports the live exp, tracks readiness, exits 0 on SIGTERM."""
    listen = f"127.0.0.1:{free_port()}"
    cfg = write_config(tmp_path, emu, key_path, listen=listen)
    with rotator_start(cfg, tmp_path, listen) as svc:
        seen: list[str] = []

        def rotated_twice() -> bool:
            current = live_secret(emu)
            if current and (not seen or seen[-1] != current):
                seen.append(current)
            return len(seen) >= 2

        wait_for(rotated_twice, 60, "two rotations in the emulator")
        first, second = claims(seen[0]), claims(seen[1])
        assert seen[0] != seen[1]
        assert second["iat"] > first["iat"]
        for made in (first, second):
            assert made["exp"] - made["iat"] == 30
            assert (made["iss"], made["sub"]) == (TEAM_ID, SERVICES_ID)

        labels = {"connection": "apple", "tenant": emu.domain}
        wait_for(
            lambda: svc.metric("rotator_secret_expiry_timestamp_seconds", **labels)
            == claims(live_secret(emu))["exp"],
            30,
            "the expiry gauge to equal the live secret's exp",
        )
        assert (svc.metric("rotator_rotations_total", result="success", **labels) or 0) >= 2
        wait_for(lambda: svc.status("/readyz") == 200, 30, "/readyz 200")
        assert svc.status("/healthz") == 200

        emu.inject(Fault(status=500, times=None, path="/api/v2/"))
        wait_for(lambda: svc.status("/readyz") == 503, 60, "/readyz 503 while Auth0 answers 500")
        assert svc.status("/healthz") == 200
        assert svc.named("rotation.failed")
        emu.clear_faults()
        wait_for(lambda: svc.status("/readyz") == 200, 60, "/readyz 200 once Auth0 recovers")

        assert svc.terminate(within=10) == 0

    stopped = svc.named("scheduler.stopped")
    assert len(stopped) == 1
    assert stopped[0]["reason"] == "SIGTERM"
    assert_options_intact(emu)
    log_text = svc.log_path.read_text()
    for value in (*seen, live_secret(emu), M2M_SECRET):
        assert value not in log_text


@pytest.mark.slow
def test_sigterm_during_a_hung_auth0_call_still_exits_promptly(
    emu: Emulator, key_path: Path, tmp_path: Path
) -> None:
    """SIGTERM while Auth0 keeps a read hanging: exit 0 within 10 s, and nothing written."""
    emu.inject(Fault(path="/api/v2/", delay=60, times=None))
    listen = f"127.0.0.1:{free_port()}"
    cfg = write_config(tmp_path, emu, key_path, listen=listen)
    with rotator_start(cfg, tmp_path, listen) as svc:
        wait_for(lambda: svc.named("scheduler.started"), 30, "scheduler.started")
        wait_for(
            lambda: any(r.path == "/oauth/token" for r in emu.journal),
            30,
            "the first check to reach Auth0",
        )
        assert svc.terminate(within=10) == 0

    stopped = svc.named("scheduler.stopped")
    assert len(stopped) == 1
    assert stopped[0]["check_in_flight_finished"] is False
    assert not [r for r in emu.journal if r.method == "PATCH"]
    assert live_secret(emu) == ""


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
def test_failing_hook_neither_stops_the_scheduler_nor_undoes_the_rotation(
    emu: Emulator, key_path: Path, tmp_path: Path, body: str, timeout: str, error: str
) -> None:
    """A hook that fails or hangs is logged as hook.failed; rotations go on and stand."""
    hook = write_script(tmp_path / "hook.sh", body)
    listen = f"127.0.0.1:{free_port()}"
    cfg = write_config(
        tmp_path, emu, key_path, listen=listen, hook=[str(hook)], hook_timeout=timeout
    )
    with rotator_start(cfg, tmp_path, listen) as svc:
        wait_for(lambda: svc.named("hook.failed"), 30, "hook.failed")
        wait_for(lambda: len(svc.named("secret.rotated")) >= 2, 60, "a second rotation")
        wait_for(lambda: len(svc.named("hook.failed")) >= 2, 30, "the second hook.failed")
        assert svc.status("/healthz") == 200
        assert svc.status("/readyz") == 200
        live = live_secret(emu)
        assert svc.named("secret.rotated")[-1]["fingerprint"] == secret.fingerprint(live)
        assert svc.terminate(within=10) == 0

    failures = svc.named("hook.failed")
    assert all(error in json.dumps(f) for f in failures)
    assert not svc.named("rotation.failed")
    assert_options_intact(emu)
    pids = tmp_path / "pids"
    if pids.exists():  # the hanging hook: every one was killed
        for pid in map(int, pids.read_text().split()):
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)


# -- bad configuration: exit 2 before anything is contacted -------------------------


@pytest.mark.parametrize(
    "listen",
    ["nonsense", "1.2.3.4", "127.0.0.1:99999", "127.0.0.1:abc", "::1", "1.2.3.4:8080"],
)
def test_start_refuses_a_bad_listen_address(
    emu: Emulator, key_path: Path, tmp_path: Path, listen: str, rotator: Any
) -> None:
    """An unusable server.listen: exit 2 at once, one line naming it, nothing contacted."""
    cfg = write_config(tmp_path, emu, key_path, listen=listen)
    began = time.monotonic()
    run = rotator("start", "--config", str(cfg), "--log-format", "json", timeout=30)
    assert time.monotonic() - began < 15
    assert run.code == 2, run.output
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("rotator: error: server.listen")
    assert "Traceback" not in run.output
    assert emu.journal == []


def test_start_refuses_an_occupied_port(
    emu: Emulator, key_path: Path, tmp_path: Path, rotator: Any
) -> None:
    """A port already taken: exit 2, one line naming server.listen, nothing contacted."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        cfg = write_config(tmp_path, emu, key_path, listen=f"127.0.0.1:{sock.getsockname()[1]}")
        run = rotator("start", "--config", str(cfg), "--log-format", "json", timeout=30)
        assert run.code == 2, run.output
        assert run.stderr.count("\n") == 1
        assert "server.listen" in run.stderr
        assert "cannot listen there" in run.stderr
        assert "Traceback" not in run.output
    assert emu.journal == []


@pytest.mark.parametrize("command", ["/nonexistent/hook", "no-such-rotator-hook"])
def test_start_refuses_a_missing_hook_command(
    emu: Emulator, key_path: Path, tmp_path: Path, command: str, rotator: Any
) -> None:
    """A post_rotate command that cannot be found: exit 2, one line naming hooks.post_rotate."""
    listen = f"127.0.0.1:{free_port()}"
    cfg = write_config(tmp_path, emu, key_path, listen=listen, hook=[command, "--quiet"])
    began = time.monotonic()
    run = rotator("start", "--config", str(cfg), "--log-format", "json", timeout=30)
    assert time.monotonic() - began < 15
    assert run.code == 2, run.output
    assert run.stderr.count("\n") == 1
    assert run.stderr.startswith("rotator: error: hooks.post_rotate")
    assert command in run.stderr
    assert "Traceback" not in run.output
    assert emu.journal == []


# -- Service in-process ------------------------------------------------------------


def test_stop_during_a_check_abandons_it_before_the_write(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """stop() while a read is in flight returns within 10 s, and no PATCH follows."""
    cfg = write_config(tmp_path, emu, key_path, listen=f"127.0.0.1:{free_port()}")
    settings = config.load(config.Overrides(config=str(cfg)), environ={})
    emu.inject(Fault(method="GET", path="/api/v2/connections", delay=3))
    with capture_logs() as events:
        service = Service(settings)
        services.append(service)
        service.start()
        wait_for(
            lambda: any(r.path == "/oauth/token" for r in emu.journal),
            20,
            "the start-up check to fetch a token",
        )
        assert not service.idle.is_set()  # the check is waiting on the slow read
        asked = time.monotonic()
        finished = service.stop()
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
    assert not service.healthy()


class _FakeTenant:
    """An Auth0 side holding one connection with a fresh, valid secret."""

    def __init__(self, settings: config.Settings) -> None:
        conn = settings.connections[0]
        fresh = secret.mint(
            conn.apple.key, team_id=TEAM_ID, key_id=KEY_ID, services_id=SERVICES_ID,
            lifetime=settings.schedule.secret_lifetime, now=int(time.time()),
        )
        self.name = conn.tenant
        self.connection = Connection(
            id="con_abcdefghijklmnop", name="apple", strategy="oauth2",
            display_name=DISPLAY_NAME, options={**OPTIONS, "client_secret": fresh},
        )

    def read(self, ref: str) -> Connection:
        return self.connection

    def write(self, conn_id: str, options: dict[str, Any], display_name: str | None) -> Any:
        raise AssertionError("a fresh secret is never rewritten")

    def close(self) -> None:
        pass


def test_crashed_check_turns_readyz_503(
    emu: Emulator, key_path: Path, tmp_path: Path, services: list[Service]
) -> None:
    """A check that crashes outright (no outcome at all) counts as failed for /readyz."""
    cfg = write_config(tmp_path, emu, key_path, listen=f"127.0.0.1:{free_port()}")
    settings = config.load(config.Overrides(config=str(cfg)), environ={})
    broken = threading.Event()

    def factory(_: Any) -> _FakeTenant:
        if broken.is_set():
            raise RuntimeError("cannot build the tenant")
        return _FakeTenant(settings)

    with capture_logs() as events:
        service = Service(settings, factory=factory)
        services.append(service)
        service.start()
        base = f"http://{service.server.address}"
        wait_for(lambda: httpx.get(base + "/readyz").status_code == 200, 20, "/readyz 200")
        broken.set()
        service.tenants.clear()  # so the next check builds its tenant again, and crashes
        wait_for(lambda: httpx.get(base + "/readyz").status_code == 503, 20, "/readyz 503")
        assert httpx.get(base + "/healthz").status_code == 200
        failures = service.metrics.registry.get_sample_value(
            "rotator_checks_total",
            {"tenant": emu.domain, "connection": "apple", "result": "failure"},
        )
        assert failures is not None
        assert failures >= 1
        service.stop()

    assert any(e["event"] == "check.crashed" for e in events)
    assert emu.journal == []


def test_stop_without_start_returns_and_frees_the_port(
    emu: Emulator, key_path: Path, tmp_path: Path
) -> None:
    """A Service built but never started stops at once and lets go of its port."""
    listen = f"127.0.0.1:{free_port()}"
    cfg = write_config(tmp_path, emu, key_path, listen=listen)
    settings = config.load(config.Overrides(config=str(cfg)), environ={})
    service = Service(settings)
    done = threading.Event()
    stopper = threading.Thread(target=lambda: (service.stop(), done.set()), daemon=True)
    stopper.start()
    assert done.wait(10), "stop() of a never-started Service hangs"
    host, port = listen.split(":")
    with socket.socket() as sock:
        sock.bind((host, int(port)))


def test_checks_reuse_the_tenant_and_its_token(
    emu: Emulator, key_path: Path, tmp_path: Path
) -> None:
    """Successive checks of a running service share one access token, fetched once."""
    cfg = write_config(tmp_path, emu, key_path, listen=f"127.0.0.1:{free_port()}")
    settings = config.load(config.Overrides(config=str(cfg)), environ={})
    service = Service(settings)
    try:
        for _ in range(3):
            report = service.check()
            assert report.exit_code == 0
    finally:
        service.stop()
    token_requests = [r for r in emu.journal if r.path == "/oauth/token"]
    reads = [r for r in emu.journal if r.method == "GET"]
    assert len(token_requests) == 1
    assert len(reads) == 3
