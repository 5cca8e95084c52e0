"""Tests for rotator.endpoints: the HTTP server of /healthz, /readyz and /metrics."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from auth0_env import EmulatedTenant
from conftest import assert_refused, run_rotator, wait_for

from rotator.endpoints import IDLE_TIMEOUT, MAX_CONNECTIONS, EndpointServer
from rotator.errors import ConfigError
from rotator.metrics import Metrics
from rotator.outcome import Outcome
from rotator.settings import Listen, parse_listen

TENANT = "example.eu.auth0.com"
NOW = 1_790_000_000.0


# -- EndpointServer --------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[Callable[..., tuple[EndpointServer, str]]]:
    """Start an EndpointServer on a port the system picks (no race); each is stopped at teardown."""
    servers: list[EndpointServer] = []

    def serve(healthy: bool = True, ready: bool = True, listen: Listen | None = None,
              metrics: Metrics | None = None) -> tuple[EndpointServer, str]:
        server = EndpointServer(listen or Listen("127.0.0.1", 0),
                                healthy=lambda: (healthy, "h"), ready=lambda: (ready, "r"),
                                metrics=(metrics or Metrics()).render)
        servers.append(server)
        server.start()
        return server, f"http://{server.address}"

    yield serve
    for server in servers:
        server.stop()


def test_server_answers_the_three_endpoints(
    served: Callable[..., tuple[EndpointServer, str]]
) -> None:
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


def test_server_listens_on_ipv6_in_brackets(
    served: Callable[..., tuple[EndpointServer, str]]
) -> None:
    """An IPv6 host in brackets ([::1]:PORT) binds an IPv6 socket and answers there."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    server, base = served(listen=parse_listen("[::1]:8080")._replace(port=0))
    assert base == f"http://[::1]:{server.httpd.server_port}"
    assert httpx.get(base + "/healthz").status_code == 200


def test_server_refuses_a_port_in_use() -> None:
    """Binding a port something listens on is a ConfigError naming server.listen."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        listen = parse_listen(f"127.0.0.1:{sock.getsockname()[1]}")
        with pytest.raises(ConfigError, match=r"^server\.listen = .*cannot listen there"):
            EndpointServer(listen, healthy=lambda: (True, ""), ready=lambda: (True, ""),
                           metrics=Metrics().render)


def test_server_stop_without_start_returns() -> None:
    """stop() on a server never started closes its socket instead of waiting forever."""
    server = EndpointServer(Listen("127.0.0.1", 0), healthy=lambda: (True, ""),
                            ready=lambda: (True, ""), metrics=Metrics().render)
    stopper = threading.Thread(target=server.stop, daemon=True)
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive()


def _closed(socks: list[socket.socket], within: float,
            want: int | None = None) -> set[socket.socket]:
    """Those of ``socks`` the server closed (EOF or reset) within ``within`` s (or ``want``)."""
    closed: set[socket.socket] = set()
    end = time.monotonic() + within
    while len(closed) < (want or len(socks)) and (left := end - time.monotonic()) > 0:
        readable, _, _ = select.select([s for s in socks if s not in closed], [], [], left)
        for sock in readable:
            try:
                if sock.recv(1) == b"":
                    closed.add(sock)
            except OSError:
                closed.add(sock)
    return closed


@pytest.mark.slow
def test_idle_connections_hold_no_more_than_the_bound_and_are_closed(
    served: Callable[..., tuple[EndpointServer, str]]
) -> None:
    """300 idle connections: past 64 each is closed at once, the rest after 5 s of silence.

    (The service's own timeout: with a shorter one, a loaded machine's 300 connects
    outlast it, and a held connection counts as closed at once.)"""
    idle = IDLE_TIMEOUT
    server, base = served()
    before = threading.active_count()
    host, port = server.address.rsplit(":", 1)
    began = time.monotonic()
    socks = [socket.create_connection((host, int(port))) for _ in range(300)]
    try:
        over = _closed(socks, 3, want=300 - MAX_CONNECTIONS)
        threads = threading.active_count() - before
        assert len(over) == 300 - MAX_CONNECTIONS, f"{len(over)} of 300 closed at once"
        assert threads <= MAX_CONNECTIONS, f"{threads} threads for 300 idle connections"
        held = [s for s in socks if s not in over]
        assert len(_closed(held, idle + 5)) == MAX_CONNECTIONS
        assert time.monotonic() - began >= idle - 0.5
        assert httpx.get(base + "/healthz").status_code == 200
        wait_for(lambda: threading.active_count() <= before, 5, "the server's threads to end")
    finally:
        for sock in socks:
            sock.close()


# -- one listen check for start and check-config --------------------------------------------


@pytest.mark.parametrize("listen", ["203.0.113.7:8080", "[::ffff:1.2.3.4]:8080",
                                    "no-such-host.invalid:8080"])
@pytest.mark.parametrize("command", ["check-config", "start"])
def test_an_address_this_host_cannot_listen_on_is_refused_by_check_config_as_by_start(
    command: str, listen: str, tenant: EmulatedTenant
) -> None:
    """A listen address not of this host (or unresolvable): exit 2 naming it, in both commands."""
    config = tenant.write_config(extra=f'[server]\nlisten = "{listen}"\n')
    run = run_rotator(command, "--config", str(config))
    assert_refused(run, "server.listen", repr(listen))
    assert tenant.emu.journal == []


def test_check_config_passes_while_start_already_serves_the_port(tenant: EmulatedTenant) -> None:
    """check-config's trial bind takes a free port: a running service on the port is no error."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tenant.write_config(
            extra=f'[server]\nlisten = "127.0.0.1:{port}"\n')
        run = run_rotator("check-config", "--config", str(config))
    assert run.code == 0, run.output
