"""``/healthz``, ``/readyz`` and ``/metrics`` for ``rotator start``.

Metrics live in a registry of their own (not prometheus-client's global one),
so a test can build as many services as it likes in one process.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rotator.errors import ConfigError
from rotator.rotation import Outcome

LABELS = ("tenant", "connection")


class Metrics:
    """The contract's metrics, updated from each connection's outcome."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.expiry = Gauge("rotator_secret_expiry_timestamp_seconds",
                            "exp of the secret live in the connection", LABELS, registry=r)
        self.issued = Gauge("rotator_secret_issued_timestamp_seconds",
                            "iat of the secret live in the connection", LABELS, registry=r)
        self.due = Gauge("rotator_secret_due_timestamp_seconds",
                         "when the live secret falls due for rotation", LABELS, registry=r)
        self.last_success = Gauge("rotator_last_success_timestamp_seconds",
                                  "when the connection was last checked (and, if due, rotated) "
                                  "without error", LABELS, registry=r)
        self.rotations = Counter("rotator_rotations", "rotations attempted, by result",
                                 (*LABELS, "result"), registry=r)
        self.checks = Counter("rotator_checks", "checks of a connection, by result",
                              (*LABELS, "result"), registry=r)

    def record(self, outcome: Outcome, now: float) -> None:
        labels = {"tenant": outcome.tenant, "connection": outcome.connection}
        self.checks.labels(**labels, result="success" if outcome.checked else "failure").inc()
        if outcome.rotated:
            self.rotations.labels(**labels, result="success").inc()
        elif outcome.checked and outcome.error is not None:
            self.rotations.labels(**labels, result="failure").inc()
        if outcome.exp is not None:
            self.expiry.labels(**labels).set(outcome.exp)
        if outcome.iat is not None:
            self.issued.labels(**labels).set(outcome.iat)
        if outcome.due_at is not None:
            self.due.labels(**labels).set(outcome.due_at)
        if outcome.ok:
            self.last_success.labels(**labels).set(now)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def parse_listen(listen: str) -> tuple[str, int]:
    """``"0.0.0.0:8080"``, ``"[::]:8080"`` or ``":8080"`` -> (host, port)."""
    host, sep, port_text = listen.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if (
        not sep
        or not (port_text.isascii() and port_text.isdigit())  # not "٨٠٨٠"
        or not 0 < int(port_text) < 65536
        or (":" in host and not bracketed)  # "::1" is no HOST:PORT; "[::1]:8080" is
    ):
        raise ConfigError(
            f"server.listen = {listen!r} is not HOST:PORT with a port from 1 to 65535; "
            'use e.g. "0.0.0.0:8080" (an IPv6 host in brackets: "[::]:8080")'
        )
    host = host[1:-1] if bracketed else host
    return host or "0.0.0.0", int(port_text)  # noqa: S104 - all interfaces is the default


class Server:
    """A small threaded HTTP server answering the three endpoints."""

    def __init__(
        self, listen: str, *, healthy: Callable[[], bool], ready: Callable[[], bool],
        metrics: Metrics,
    ) -> None:
        host, port = parse_listen(listen)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    ok = healthy()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"scheduler stopped\n")
                elif path == "/readyz":
                    ok = ready()
                    self._send(200 if ok else 503, b"ready\n" if ok else b"not ready\n")
                elif path == "/metrics":
                    self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
                else:
                    self._send(404, b"not found\n")

            def _send(self, status: int, body: bytes, ctype: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        try:
            server_class = _HTTPServer6 if ":" in host else _HTTPServer
            self.httpd = server_class((host, port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"server.listen = {listen!r}: cannot listen there "
                f"({exc.strerror or type(exc).__name__}); "
                "choose a free port or another address (ROTATOR_LISTEN, --listen)"
            ) from None
        bound_host, bound_port = str(self.httpd.server_address[0]), self.httpd.server_port
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.address = f"{shown}:{bound_port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="endpoints",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits forever for a loop never started
            self.httpd.shutdown()
        self.httpd.server_close()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True


class _HTTPServer6(_HTTPServer):
    """For an IPv6 host ("[::]:8080"); the stdlib server is IPv4 only."""

    address_family = socket.AF_INET6
