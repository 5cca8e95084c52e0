"""The TLS server and HTTP handler in front of a :class:`~rotator.emulator.backend.Backend`.

The handler is thin: it reads the request, hands it to the backend's
``exchange``, and delivers the :class:`~rotator.emulator.exchange.Answer`
(whole, cut, a byte at a time, or not at all). Each handler thread does its
own TLS handshake, so a slow or failed handshake holds up no one else.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import parse_qs, urlsplit

from rotator.emulator.exchange import JSON_TYPE, REASONS, Answer
from rotator.emulator.management import api_error

if TYPE_CHECKING:
    from rotator.emulator.backend import Backend

_IDLE_TIMEOUT: Final = 30.0  # longer than httpx's 5 s keep-alive expiry


class EmulatorServer(ThreadingHTTPServer):
    """Accepts plain TCP; each handler thread does its own TLS handshake."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        backend: Backend,
        context: ssl.SSLContext,
        stopping: threading.Event,
    ) -> None:
        self.backend = backend
        self.context = context
        self.stopping = stopping
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        self.closing = False
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (can be slow)."""
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def finish_request(self, request: Any, client_address: Any) -> None:
        sock = cast(socket.socket, request)
        sock.settimeout(_IDLE_TIMEOUT)
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with self.open_lock:
            if self.closing:
                tls.close()
                return
            self.open.add(tls)
        try:
            tls.do_handshake()
            Handler(tls, client_address, self)
        except (OSError, ValueError):
            pass  # a failed handshake (a client without the CA) or a cut connection
        finally:
            with self.open_lock:
                self.open.discard(tls)
            tls.close()

    def close_all(self) -> None:
        """Cut every open connection so idle keep-alive handlers end now."""
        with self.open_lock:
            self.closing = True
            for tls in list(self.open):
                with contextlib.suppress(OSError):
                    tls.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet: the emulator never writes to stderr."""


class Handler(BaseHTTPRequestHandler):
    """Reads one request at a time, asks the backend, writes its answer."""

    protocol_version = "HTTP/1.1"
    server_version = "auth0-emulator"
    sys_version = ""
    disable_nagle_algorithm = True  # a trickled answer goes out byte by byte

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: no request logging."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer protocol errors with an Auth0-shaped body and close."""
        self.close_connection = True
        response = api_error(code, message or REASONS.get(code, "Error"), "bad_request")
        self._write(Answer(response), "GET")

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        data = self.rfile.read(length) if length > 0 else b""
        return data if len(data) == length else None

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            raw = self._read_body()
        except ValueError:
            raw = None
        if raw is None:
            self.close_connection = True
            self._write(Answer(api_error(400, "Invalid request body", "invalid_body")), "GET")
            return
        query = parse_qs(split.query, keep_blank_values=True)
        backend = cast(EmulatorServer, self.server).backend
        answer = backend.exchange(self.command, split.path, query, headers, raw)
        if answer.response is None:
            self.close_connection = True
            return
        self._write(answer, self.command)

    def _write(self, answer: Answer, method: str) -> None:
        response = answer.response
        if response is None:  # a dropped connection is handled before this
            self.close_connection = True
            return
        content = response.content()[: answer.truncate]
        phrase = self.responses.get(response.status, ("Error",))[0]
        lines = [
            f"HTTP/1.1 {response.status} {phrase}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {JSON_TYPE}",
            f"Content-Length: {len(content)}",
            *(f"{name}: {value}" for name, value in response.headers.items()),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if method != "HEAD":
            data += content
        if answer.trickle is None:
            self.wfile.write(data)
            self.wfile.flush()
            return
        stopping = cast(EmulatorServer, self.server).stopping
        for index in range(len(data)):
            self.wfile.write(data[index : index + 1])
            self.wfile.flush()
            if stopping.wait(answer.trickle):
                self.close_connection = True
                return
