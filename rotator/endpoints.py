"""``/healthz``, ``/readyz`` and ``/metrics`` for ``rotator start``: the HTTP server only.

What the answers say is decided by the service (:mod:`rotator.service`) and
the metrics (:mod:`rotator.metrics`); this module serves them. Each probe is a
callable answering ``(ok, reason)``.

Each connection has a thread of its own, so idle or slow clients must not be
able to pile them up: a connection silent for :data:`IDLE_TIMEOUT` seconds is
closed, and at most :data:`MAX_CONNECTIONS` are served at once (one more is
closed as soon as it is accepted, so probes retry instead of queueing behind it).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rotator.errors import ConfigError
from rotator.settings import Listen

Probe = Callable[[], tuple[bool, str]]

#: Seconds a connection may stay silent (no request, or a stalled one) before it is closed.
IDLE_TIMEOUT = 5.0
#: Connections served at once; one more is closed at once.
MAX_CONNECTIONS = 64


class EndpointServer:
    """A small threaded HTTP server answering the three endpoints."""

    def __init__(
        self, listen: Listen, *, healthy: Probe, ready: Probe, metrics: Callable[[], bytes],
        idle_timeout: float = IDLE_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        from prometheus_client.exposition import CONTENT_TYPE_LATEST

        family, address = listen_address(listen)

        class Handler(BaseHTTPRequestHandler):
            timeout = idle_timeout  # each read; a silent connection is closed

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/healthz", "/readyz"):
                    ok, reason = (healthy if path == "/healthz" else ready)()
                    self._send(200 if ok else 503, f"{reason}\n".encode())
                elif path == "/metrics":
                    self._send(200, metrics(), CONTENT_TYPE_LATEST)
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
            server_class = _HTTPServer6 if family == socket.AF_INET6 else _HTTPServer
            self.httpd = server_class(address, Handler)
            self.httpd.slots = threading.BoundedSemaphore(max_connections)
        except OSError as exc:
            raise _cannot(listen, exc) from None
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


def listen_address(listen: Listen) -> tuple[socket.AddressFamily, tuple[str, int]]:
    """Where ``rotator start`` will listen: ``listen`` resolved and proven bindable.

    The one check ``start`` and ``check-config`` share: the host must resolve
    and be an address of this machine (``203.0.113.7``, ``[::ffff:1.2.3.4]``
    and ``no-such-host.invalid`` are not). The trial bind takes a free port,
    so a ``rotator start`` already serving the configured one does not make
    ``check-config`` fail; whether that port is free is known only when
    ``start`` binds it.
    """
    host, port = listen
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET  # "[::]:8080" is IPv6
        found = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(
            f"server.listen = {str(listen)!r}: cannot resolve {host!r} ({exc}); use an address "
            "of this machine, such as 0.0.0.0:8080 or 127.0.0.1:8080 (ROTATOR_LISTEN, --listen)"
        ) from None
    sockaddr = found[0][4]
    address = (str(sockaddr[0]), port)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as trial:
            trial.bind((address[0], 0))
    except OSError as exc:
        raise _cannot(listen, exc) from None
    return socket.AddressFamily(family), address


def _cannot(listen: Listen, exc: OSError) -> ConfigError:
    return ConfigError(
        f"server.listen = {str(listen)!r}: cannot listen there "
        f"({exc.strerror or type(exc).__name__}); "
        "choose a free port or an address of this machine (ROTATOR_LISTEN, --listen)"
    )


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of probes waits in the kernel, not refused
    slots: threading.BoundedSemaphore

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection while fewer than the bound are served; else close it."""
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client gone mid-answer is its own business: no traceback on stderr."""

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _HTTPServer6(_HTTPServer):
    """For an IPv6 host ("[::]:8080"); the stdlib server is IPv4 only."""

    address_family = socket.AF_INET6
