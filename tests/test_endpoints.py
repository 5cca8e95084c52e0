"""Tests for rotator.endpoints: parse_listen, Metrics, and the three HTTP endpoints."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port, wait_for
from prometheus_client.parser import text_string_to_metric_families

from rotator import secret
from rotator.auth0 import Connection
from rotator.config import (
    AppleSettings,
    Auth0Settings,
    ConnectionSettings,
    Schedule,
    Settings,
)
from rotator.endpoints import Metrics, Server, parse_listen
from rotator.errors import ConfigError
from rotator.rotation import Outcome
from rotator.service import Service

TENANT = "example.eu.auth0.com"
LABELS = {"tenant": TENANT, "connection": "apple"}
SERVICES_ID = "com.example.webapp"
NOW = 1_790_000_000.0
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what parse_listen must return, nothing binds it


def sample(metrics: Metrics, name: str, **extra: str) -> float | None:
    """One sample of the registry for the test connection (None when absent)."""
    return metrics.registry.get_sample_value(name, {**LABELS, **extra})


# -- parse_listen ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:8080", (ALL_INTERFACES, 8080)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("localhost:65535", ("localhost", 65535)),
        (":8080", (ALL_INTERFACES, 8080)),
        ("[::]:8080", ("::", 8080)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_parse_listen_accepts_host_and_port(listen: str, expected: tuple[str, int]) -> None:
    """HOST:PORT, :PORT (all interfaces) and [IPv6]:PORT are understood."""
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen",
    [
        "nonsense",
        "1.2.3.4",
        "127.0.0.1:99999",
        "127.0.0.1:abc",
        "127.0.0.1:0",
        "127.0.0.1:",
        "127.0.0.1:-1",
        "127.0.0.1: 80",
        "127.0.0.1:٨٠٨٠",
        "::1",
        "[::1]",
        "",
    ],
)
def test_parse_listen_refuses_what_is_not_host_and_port(listen: str) -> None:
    """Anything but HOST:PORT with a port from 1 to 65535 is a ConfigError naming server.listen."""
    with pytest.raises(ConfigError, match=r"^server\.listen = .* HOST:PORT") as caught:
        parse_listen(listen)
    assert caught.value.exit_code == 2


# -- Metrics.record --------------------------------------------------------------------


def test_record_of_a_rotation_sets_gauges_and_counts_success() -> None:
    """A rotated outcome sets every gauge and counts a successful check and rotation."""
    metrics = Metrics()
    metrics.record(
        Outcome(connection="apple", tenant=TENANT, checked=True, due=True, reason="age",
                rotated=True, iat=1_000, exp=2_000, due_at=1_500),
        NOW,
    )
    assert sample(metrics, "rotator_checks_total", result="success") == 1
    assert sample(metrics, "rotator_checks_total", result="failure") is None
    assert sample(metrics, "rotator_rotations_total", result="success") == 1
    assert sample(metrics, "rotator_rotations_total", result="failure") is None
    assert sample(metrics, "rotator_secret_issued_timestamp_seconds") == 1_000
    assert sample(metrics, "rotator_secret_expiry_timestamp_seconds") == 2_000
    assert sample(metrics, "rotator_secret_due_timestamp_seconds") == 1_500
    assert sample(metrics, "rotator_last_success_timestamp_seconds") == NOW


def test_record_of_a_not_due_check_counts_no_rotation() -> None:
    """A not-due outcome counts a successful check, no rotation, and sets the gauges."""
    metrics = Metrics()
    outcome = Outcome(connection="apple", tenant=TENANT, checked=True, reason="not_due",
                      iat=1_000, exp=2_000, due_at=1_500)
    metrics.record(outcome, NOW)
    metrics.record(outcome, NOW + 60)
    assert sample(metrics, "rotator_checks_total", result="success") == 2
    assert sample(metrics, "rotator_rotations_total", result="success") is None
    assert sample(metrics, "rotator_rotations_total", result="failure") is None
    assert sample(metrics, "rotator_secret_expiry_timestamp_seconds") == 2_000
    assert sample(metrics, "rotator_secret_due_timestamp_seconds") == 1_500
    assert sample(metrics, "rotator_last_success_timestamp_seconds") == NOW + 60


def test_record_of_a_failed_read_counts_a_failed_check_and_keeps_the_gauges() -> None:
    """A read that failed counts a failed check, leaves the gauges and last success alone."""
    metrics = Metrics()
    metrics.record(
        Outcome(connection="apple", tenant=TENANT, checked=True, iat=1_000, exp=2_000,
                due_at=1_500),
        NOW,
    )
    metrics.record(
        Outcome(connection="apple", tenant=TENANT, step="read", error="500 Internal Server Error"),
        NOW + 60,
    )
    assert sample(metrics, "rotator_checks_total", result="failure") == 1
    assert sample(metrics, "rotator_checks_total", result="success") == 1
    assert sample(metrics, "rotator_rotations_total", result="failure") is None
    assert sample(metrics, "rotator_secret_expiry_timestamp_seconds") == 2_000
    assert sample(metrics, "rotator_last_success_timestamp_seconds") == NOW


def test_record_of_a_failed_write_counts_a_failed_rotation() -> None:
    """A due secret whose write failed: the check succeeded, the rotation failed."""
    metrics = Metrics()
    metrics.record(
        Outcome(connection="apple", tenant=TENANT, checked=True, due=True, reason="age",
                iat=1_000, exp=2_000, due_at=1_500, step="write", error="503"),
        NOW,
    )
    assert sample(metrics, "rotator_checks_total", result="success") == 1
    assert sample(metrics, "rotator_rotations_total", result="failure") == 1
    assert sample(metrics, "rotator_rotations_total", result="success") is None
    assert sample(metrics, "rotator_last_success_timestamp_seconds") is None


def test_metrics_are_labelled_per_tenant_and_connection() -> None:
    """Two connections keep separate series, each labelled tenant and connection."""
    metrics = Metrics()
    metrics.record(Outcome(connection="apple", tenant=TENANT, checked=True, exp=2_000), NOW)
    metrics.record(Outcome(connection="apple-2", tenant="other.auth0.com", checked=True,
                           exp=3_000), NOW)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    expiry = families["rotator_secret_expiry_timestamp_seconds"]
    assert {(s.labels["tenant"], s.labels["connection"], s.value) for s in expiry.samples} == {
        (TENANT, "apple", 2_000), ("other.auth0.com", "apple-2", 3_000)
    }
    assert families["rotator_checks"].type == "counter"


# -- Server ----------------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[Callable[..., tuple[Server, str]]]:
    """Start a Server on a free port; every one is stopped at teardown."""
    servers: list[Server] = []

    def serve(healthy: bool = True, ready: bool = True, listen: str | None = None,
              metrics: Metrics | None = None) -> tuple[Server, str]:
        server = Server(listen or f"127.0.0.1:{free_port()}", healthy=lambda: healthy,
                        ready=lambda: ready, metrics=metrics or Metrics())
        servers.append(server)
        server.start()
        return server, f"http://{server.address}"

    yield serve
    for server in servers:
        server.stop()


def test_server_answers_the_three_endpoints(served: Callable[..., tuple[Server, str]]) -> None:
    """/healthz and /readyz follow their callables, /metrics is Prometheus text, else 404."""
    metrics = Metrics()
    metrics.record(Outcome(connection="apple", tenant=TENANT, checked=True, exp=2_000), NOW)
    _, up = served(metrics=metrics)
    _, down = served(healthy=False, ready=False)
    assert httpx.get(up + "/healthz").status_code == 200
    assert httpx.get(up + "/readyz?verbose=1").status_code == 200
    assert httpx.get(down + "/healthz").status_code == 503
    assert httpx.get(down + "/readyz").status_code == 503
    answer = httpx.get(up + "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert 'rotator_secret_expiry_timestamp_seconds{connection="apple"' in answer.text
    assert httpx.get(up + "/").status_code == 404


def test_server_listens_on_ipv6_in_brackets(served: Callable[..., tuple[Server, str]]) -> None:
    """An IPv6 host in brackets ([::1]:PORT) binds an IPv6 socket and answers there."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback here")
    _, base = served(listen=f"[::1]:{port}")
    assert base == f"http://[::1]:{port}"
    assert httpx.get(base + "/healthz").status_code == 200


def test_server_refuses_a_port_in_use() -> None:
    """Binding a port something listens on is a ConfigError naming server.listen."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        listen = f"127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(ConfigError, match=r"^server\.listen = .*cannot listen there"):
            Server(listen, healthy=lambda: True, ready=lambda: True, metrics=Metrics())


def test_server_stop_without_start_returns() -> None:
    """stop() on a server never started closes its socket instead of waiting forever."""
    server = Server(f"127.0.0.1:{free_port()}", healthy=lambda: True, ready=lambda: True,
                    metrics=Metrics())
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive()


# -- the endpoints of a running Service ----------------------------------------------------


class _GatedTenant:
    """An Auth0 side whose read waits for ``gate``, then returns a fresh secret."""

    def __init__(self, settings: Settings, gate: threading.Event) -> None:
        conn = settings.connections[0]
        fresh = secret.mint(conn.apple.key, team_id=conn.apple.team_id,
                            key_id=conn.apple.key_id, services_id=SERVICES_ID,
                            lifetime=settings.schedule.secret_lifetime, now=int(time.time()))
        self.name = TENANT
        self.gate = gate
        self.connection = Connection(
            id="con_abcdefghijklmnop", name="apple", strategy="oauth2", display_name="Apple",
            options={"client_id": SERVICES_ID, "client_secret": fresh},
        )

    def read(self, ref: str) -> Connection:
        assert self.gate.wait(20), "the test never opened the gate"
        return self.connection

    def write(self, conn_id: str, options: dict[str, Any], display_name: str | None) -> Any:
        raise AssertionError("a fresh secret is never rewritten")

    def close(self) -> None:
        pass


def _settings(key_path: Path) -> Settings:
    key = secret.load_key(key_path.read_bytes(), "test key")
    conn = ConnectionSettings(
        connection="apple",
        client_id=SERVICES_ID,
        auth0=Auth0Settings(domain=TENANT, client_id="m2m", client_secret="m2m-secret-value"),
        apple=AppleSettings(team_id="ABCDE12345", key_id="ABC123DEFG", key=key),
    )
    return Settings(
        connections=(conn,),
        schedule=Schedule(secret_lifetime=180 * 86400, rotate_every=30 * 86400,
                          check_every=3600),
        listen=f"127.0.0.1:{free_port()}",
        post_rotate=None,
        hook_timeout=30,
        log_format=None,
        log_level="info",
    )


def test_service_is_healthy_at_once_and_ready_after_its_first_check(key_path: Path) -> None:
    """/healthz is 200 while the scheduler runs; /readyz is 503 until the first check ends."""
    settings = _settings(key_path)
    gate = threading.Event()
    service = Service(settings, factory=lambda _: _GatedTenant(settings, gate))
    base = f"http://{settings.listen}"
    service.start()
    try:
        assert httpx.get(base + "/healthz").status_code == 200
        assert httpx.get(base + "/readyz").status_code == 503
        gate.set()
        wait_for(lambda: httpx.get(base + "/readyz").status_code == 200, 20, "/readyz 200")
        assert httpx.get(base + "/healthz").status_code == 200
        checks = service.metrics.registry.get_sample_value(
            "rotator_checks_total", {**LABELS, "result": "success"}
        )
        assert checks == 1
    finally:
        gate.set()
        service.stop()
    assert not service.healthy()
