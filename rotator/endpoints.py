"""``/healthz``, ``/readyz`` and ``/metrics`` for ``rotator start``: the HTTP server only.

What the answers say is decided by the service (:mod:`rotator.service`) and
the metrics (:mod:`rotator.metrics`); this module serves them. Each probe is a
callable answering ``(ok, reason)``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST

from rotator.errors import ConfigError
from rotator.settings import Listen

Probe = Callable[[], tuple[bool, str]]


class Server:
    """A small threaded HTTP server answering the three endpoints."""

    def __init__(
        self, listen: Listen, *, healthy: Probe, ready: Probe, metrics: Callable[[], bytes],
    ) -> None:
        host, port = listen

        class Handler(BaseHTTPRequestHandler):
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
            server_class = _HTTPServer6 if ":" in host else _HTTPServer
            self.httpd = server_class((host, port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"server.listen = {str(listen)!r}: cannot listen there "
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
