"""An Auth0 emulator: a real HTTPS server on loopback, for ``rotator demo`` and tests.

It implements what rotator uses of Auth0, with Auth0's behaviour:

* ``POST /oauth/token`` -- client-credentials tokens with scopes and a lifetime;
* ``GET /api/v2/connections`` (filters, checkpoint and page pagination),
  ``GET /api/v2/connections/{id}`` and ``PATCH /api/v2/connections/{id}``
  (``options`` replaced whole, a left-out ``display_name`` reset to ``name``,
  unknown keys refused, options hidden without ``read:connections_options``);
* Auth0-shaped error bodies, a token-bucket rate limit with the
  ``x-ratelimit-*`` headers, and injectable faults (see :class:`Fault`).

The certificate comes from a throwaway ``trustme`` CA that only clients loading
:attr:`Emulator.ca_pem_path` trust. Only the standard library and ``trustme``
are used; ``trustme`` is imported when the emulator starts.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import math
import secrets
import shutil
import signal
import socket
import socketserver
import ssl
import string
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["DEFAULT_SCOPES", "Emulator", "Fault", "Request", "main"]

DEFAULT_SCOPES: Final = (
    "read:connections",
    "update:connections",
    "read:connections_options",
    "update:connections_options",
)
_PATCH_TYPES: Final[dict[str, type]] = {
    "display_name": str,
    "options": dict,
    "enabled_clients": list,
    "is_domain_connection": bool,
    "show_as_button": bool,
    "realms": list,
    "metadata": dict,
    "authentication": dict,
    "connected_accounts": dict,
}
_REASONS: Final = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_FAULT_ERRORS: Final = {
    429: ("Global limit has been reached", "too_many_requests"),
    500: ("Internal Server Error", "internal_error"),
    503: ("Service Unavailable", "service_unavailable"),
}
_ID_CHARS: Final = string.ascii_letters + string.digits
_IDLE_TIMEOUT: Final = 30.0  # longer than httpx's 5 s keep-alive expiry
_INVALID: Final = object()  # a body that did not parse


@dataclass(frozen=True)
class Request:
    """One request the emulator received (headers and body kept out of ``repr``)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str] = field(repr=False)
    body: object | None = field(repr=False)
    status: int  # what the emulator answered; 0 when the connection was dropped
    time: float  # time.monotonic() at arrival


@dataclass(frozen=True)
class Fault:
    """A fault matched, in queue order, against incoming requests.

    ``after`` counts every matching request, including ones answered by an
    earlier fault in the queue; the first fault past its ``after`` applies.
    """

    method: str | None = None  # None: any method
    path: str | None = None  # prefix of the request path; None: any path
    status: int | None = None  # answer this status with an Auth0-shaped error
    retry_after: float | None = None  # add Retry-After (whole seconds, rounded up)
    drop: bool = False  # close the connection without answering
    delay: float = 0.0  # sleep this long first
    times: int | None = 1  # how many requests it applies to; None: forever
    after: int = 0  # let this many matching requests pass first
    expire_tokens_after: bool = False  # then expire every token issued so far

    def __post_init__(self) -> None:
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"Fault.status must be 400-599, got {self.status}")
        if self.times is not None and self.times < 1:
            raise ValueError("Fault.times must be at least 1, or None for forever")
        if self.after < 0 or self.delay < 0 or (self.retry_after or 0) < 0:
            raise ValueError("Fault.after, delay and retry_after must not be negative")

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault concerns a request with this method and path."""
        method_ok = self.method is None or self.method.upper() == method
        return method_ok and (self.path is None or path.startswith(self.path))


@dataclass
class _FaultState:
    fault: Fault
    seen: int = 0
    used: int = 0


@dataclass
class _Response:
    status: int
    body: object
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Client:
    client_id: str
    secret: str = field(repr=False)
    scopes: tuple[str, ...]
    token_lifetime: int


@dataclass
class _Token:
    client_id: str
    scopes: frozenset[str]
    expires_at: float  # monotonic
    expired: bool = False


class _Bucket:
    """A token bucket of ``burst`` tokens refilled at ``per_second``."""

    def __init__(self, burst: int, per_second: float) -> None:
        if burst < 1 or per_second <= 0:
            raise ValueError("rate limit needs burst >= 1 and per_second > 0")
        self.burst = burst
        self.per_second = per_second
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        self._refill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def headers(self) -> dict[str, str]:
        self._refill()
        full_in = (self.burst - self.tokens) / self.per_second
        return {
            "x-ratelimit-limit": str(self.burst),
            "x-ratelimit-remaining": str(math.floor(self.tokens)),
            "x-ratelimit-reset": str(math.ceil(time.time() + full_in)),
        }

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.per_second)
        self.stamp = now


def _api_error(status: int, message: str, code: str) -> _Response:
    reason = _REASONS.get(status, "Error")
    body = {"statusCode": status, "error": reason, "message": message, "errorCode": code}
    return _Response(status, body)


def _oauth_error(status: int, error: str, description: str) -> _Response:
    return _Response(status, {"error": error, "error_description": description})


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(value), type(value).__name__)


def _bool_param(query: dict[str, list[str]], name: str, default: bool) -> bool | None:
    values = query.get(name)
    if not values:
        return default
    return {"true": True, "false": False}.get(values[-1].lower())


def _int_param(query: dict[str, list[str]], name: str, default: int) -> int | None:
    values = query.get(name)
    if not values:
        return default
    return int(values[-1]) if values[-1].isdigit() else None


def _query_error(message: str) -> _Response:
    return _api_error(400, f"Query validation error: {message}", "invalid_query_string")


class Emulator:
    """An Auth0 tenant on loopback; see the module docstring."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_limit_burst: int | None = None,
        rate_limit_per_second: float | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}
        self._tokens: dict[str, _Token] = {}
        self._connections: dict[str, dict[str, Any]] = {}
        self._faults: list[_FaultState] = []
        self._journal: dict[int, Request] = {}
        self._seq = 0
        self._bucket: _Bucket | None = None
        self.set_rate_limit(rate_limit_burst, rate_limit_per_second)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._bound_port = 0
        self._thread: threading.Thread | None = None
        self._tmpdir: Path | None = None
        self._ca_pem = b""

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> Emulator:
        """Create the CA and certificate, bind, and serve in a daemon thread."""
        import trustme  # imported here to keep `import rotator.emulator` fast

        if self._server is not None:
            raise RuntimeError("emulator already started")
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost", "127.0.0.1").configure_cert(context)
        self._ca_pem = ca.cert_pem.bytes()
        self._tmpdir = Path(tempfile.mkdtemp(prefix="rotator-emulator-"))
        (self._tmpdir / "ca.pem").write_bytes(self._ca_pem)
        self._stopping.clear()
        self._server = _Server((self._host, self._port), self, context)
        self._bound_port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="auth0-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and remove the CA file; idempotent."""
        server, self._server = self._server, None
        self._stopping.set()
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_all()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses and trust -----------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the emulator listens on."""
        if not self._bound_port:
            raise RuntimeError("emulator not started")
        return self._bound_port

    @property
    def domain(self) -> str:
        """``localhost:PORT``: the value for rotator's ``domain`` setting."""
        return f"localhost:{self.port}"

    @property
    def base_url(self) -> str:
        """``https://localhost:PORT``."""
        return f"https://{self.domain}"

    @property
    def audience(self) -> str:
        """The Management API audience a token request must name."""
        return f"https://{self.domain}/api/v2/"

    @property
    def ca_pem_path(self) -> str:
        """Path of the throwaway CA's PEM file (removed at stop)."""
        if self._tmpdir is None:
            raise RuntimeError("emulator not started")
        return str(self._tmpdir / "ca.pem")

    @property
    def ca_pem(self) -> bytes:
        """The throwaway CA certificate, PEM."""
        if not self._ca_pem:
            raise RuntimeError("emulator not started")
        return self._ca_pem

    def client_ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this emulator's CA (and nothing else)."""
        return ssl.create_default_context(cadata=self.ca_pem.decode("ascii"))

    # -- state helpers for tests and the demo -------------------------------

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES,
        token_lifetime: int = 86400,
    ) -> None:
        """Register an M2M application allowed to use the client-credentials grant."""
        with self._lock:
            self._clients[client_id] = _Client(
                client_id, client_secret, tuple(scopes), token_lifetime
            )

    def add_connection(self, conn: dict[str, Any]) -> dict[str, Any]:
        """Store a deep copy of ``conn`` (which needs a ``name``); return what is stored."""
        stored = copy.deepcopy(conn)
        if not isinstance(stored.get("name"), str) or not stored["name"]:
            raise ValueError("a connection needs a non-empty 'name'")
        stored.setdefault("id", "con_" + "".join(secrets.choice(_ID_CHARS) for _ in range(16)))
        stored.setdefault("strategy", "oauth2")
        stored.setdefault("options", {})
        stored.setdefault("enabled_clients", [])
        stored.setdefault("realms", [stored["name"]])
        stored.setdefault("is_domain_connection", False)
        with self._lock:
            for other in self._connections.values():
                if stored["id"] == other["id"] or stored["name"] == other["name"]:
                    raise ValueError(f"connection {stored['name']!r} already exists")
            self._connections[stored["id"]] = stored
            return copy.deepcopy(stored)

    def connection(self, id_or_name: str) -> dict[str, Any]:
        """A deep copy of the stored connection with this id or name (KeyError if none)."""
        with self._lock:
            return copy.deepcopy(self._find(id_or_name))

    def set_connection_options(self, id_or_name: str, options: dict[str, Any]) -> None:
        """Replace a connection's stored options directly (not through HTTP)."""
        with self._lock:
            self._find(id_or_name)["options"] = copy.deepcopy(options)

    @property
    def journal(self) -> list[Request]:
        """Every answered or dropped request, in order of arrival."""
        with self._lock:
            return [self._journal[seq] for seq in sorted(self._journal)]

    def clear_journal(self) -> None:
        """Forget the requests received so far."""
        with self._lock:
            self._journal.clear()

    def inject(self, fault: Fault) -> None:
        """Queue a fault."""
        with self._lock:
            self._faults.append(_FaultState(fault))

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._faults.clear()

    def expire_tokens(self) -> None:
        """Make every token issued so far answer 401 "Expired token..."."""
        with self._lock:
            for token in self._tokens.values():
                token.expired = True

    def set_rate_limit(self, burst: int | None, per_second: float | None) -> None:
        """Limit the Management API to a bucket of ``burst`` refilled at ``per_second``."""
        if (burst is None) != (per_second is None):
            raise ValueError("give both burst and per_second, or neither")
        bucket = None if burst is None or per_second is None else _Bucket(burst, per_second)
        with self._lock:
            self._bucket = bucket

    # -- request plumbing (called from handler threads) -----------------------

    def _find(self, id_or_name: str) -> dict[str, Any]:
        if id_or_name in self._connections:
            return self._connections[id_or_name]
        for conn in self._connections.values():
            if conn["name"] == id_or_name:
                return conn
        raise KeyError(id_or_name)

    def _arrive(self, method: str, path: str) -> tuple[int, Fault | None]:
        """Number an arriving request and pick the fault that applies to it."""
        with self._lock:
            self._seq += 1
            chosen: _FaultState | None = None
            for state in self._faults:
                if not state.fault.matches(method, path):
                    continue
                state.seen += 1
                if chosen is None and state.seen > state.fault.after:
                    chosen = state
            if chosen is None:
                return self._seq, None
            chosen.used += 1
            if chosen.fault.times is not None and chosen.used >= chosen.fault.times:
                self._faults.remove(chosen)
            return self._seq, chosen.fault

    def _record(self, seq: int, request: Request) -> None:
        with self._lock:
            self._journal[seq] = request

    def _fault_response(self, fault: Fault, path: str) -> _Response:
        status = cast(int, fault.status)
        reason = _REASONS.get(status, "Error")
        message, code = _FAULT_ERRORS.get(status, (reason, reason.lower().replace(" ", "_")))
        if path.startswith("/oauth/"):
            return _oauth_error(status, code, message)
        response = _api_error(status, message, code)
        with self._lock:
            if path.startswith("/api/v2/") and self._bucket is not None:
                response.headers.update(self._bucket.headers())
        return response

    def _handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: object,
    ) -> _Response:
        with self._lock:
            if path == "/oauth/token" and method == "POST":
                return self._token(headers, body)
            if not (path == "/api/v2" or path.startswith("/api/v2/")):
                return _api_error(404, "Not Found", "not_found")
            if self._bucket is not None:
                if not self._bucket.take():
                    response = _api_error(429, "Global limit has been reached", "too_many_requests")
                else:
                    response = self._management(method, path, query, headers, body)
                response.headers.update(self._bucket.headers())
                return response
            return self._management(method, path, query, headers, body)

    # -- /oauth/token ------------------------------------------------------

    def _token(self, headers: dict[str, str], body: object) -> _Response:
        params = {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}
        grant = params.get("grant_type")
        if not grant:
            return _oauth_error(400, "invalid_request", "Missing required parameter: grant_type")
        if grant != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", f"Grant type '{grant}' not allowed for the client."
            )
        client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:].strip()).decode("utf-8")
            except ValueError:
                decoded = ""
            client_id, _, secret = decoded.partition(":")
        client = self._clients.get(client_id)
        if client is None or not secrets.compare_digest(client.secret, secret):
            return _oauth_error(401, "access_denied", "Unauthorized")
        audience = params.get("audience", "")
        if audience != self.audience:
            return _oauth_error(
                403, "access_denied", f"Service not enabled within domain: {audience}"
            )
        access_token = secrets.token_urlsafe(32)
        self._tokens[access_token] = _Token(
            client_id, frozenset(client.scopes), time.monotonic() + client.token_lifetime
        )
        body_out = {
            "access_token": access_token,
            "scope": " ".join(client.scopes),
            "expires_in": client.token_lifetime,
            "token_type": "Bearer",
        }
        return _Response(200, body_out, {"cache-control": "no-store", "pragma": "no-cache"})

    # -- /api/v2 -------------------------------------------------------------

    def _management(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: object,
    ) -> _Response:
        auth = headers.get("authorization", "")
        if not auth:
            return _api_error(401, "Missing authentication", "invalid_token")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return _api_error(401, "Bad HTTP authentication header format", "invalid_token")
        token = self._tokens.get(value.strip())
        if token is None:
            return _api_error(401, "Invalid token", "invalid_token")
        if token.expired or time.monotonic() >= token.expires_at:
            message = "Expired token received for JSON Web Token validation"
            return _api_error(401, message, "invalid_token")
        parts = path.split("/")  # ["", "api", "v2", "connections", id?]
        if parts[3:4] != ["connections"] or len(parts) > 5:
            return _api_error(404, "Not Found", "not_found")
        if len(parts) == 4 and method == "GET":
            return self._list(token, query)
        if len(parts) == 5 and parts[4] and method in ("GET", "PATCH"):
            conn_id = unquote(parts[4])
            if method == "GET":
                return self._get(token, conn_id, query)
            return self._patch(token, conn_id, body)
        return _api_error(404, "Not Found", "not_found")

    @staticmethod
    def _scope_error(token: _Token, scope: str) -> _Response | None:
        if scope in token.scopes:
            return None
        return _api_error(
            403, f"Insufficient scope, expected any of: {scope}", "insufficient_scope"
        )

    @staticmethod
    def _show(
        conn: dict[str, Any], token: _Token, query: dict[str, list[str]] | None = None
    ) -> dict[str, Any]:
        shown = {k: copy.deepcopy(v) for k, v in conn.items()}
        if "read:connections_options" not in token.scopes:
            shown.pop("options", None)
        wanted = [f for f in ",".join((query or {}).get("fields", [])).split(",") if f]
        if wanted and query is not None:
            include = _bool_param(query, "include_fields", True) is not False
            shown = {k: v for k, v in shown.items() if (k in wanted) == include}
        return shown

    def _bad_id(self, conn_id: str, action: str) -> _Response | None:
        valid = conn_id in self._connections or (
            len(conn_id) == 20 and conn_id.startswith("con_") and conn_id[4:].isalnum()
        )
        if valid:
            return None
        message = (
            "Path validation error: 'String does not match pattern ^con_[A-Za-z0-9]{16}$' "
            f"on property id (The id of the connection to {action})."
        )
        return _api_error(400, message, "invalid_uri")

    def _list(self, token: _Token, query: dict[str, list[str]]) -> _Response:
        denied = self._scope_error(token, "read:connections")
        if denied:
            return denied
        if _bool_param(query, "include_fields", True) is None:
            return _query_error("'include_fields' must be true or false")
        strategies = {s for v in query.get("strategy", []) for s in v.split(",") if s}
        names = query.get("name", [])
        found = [
            conn
            for conn in self._connections.values()
            if (not strategies or conn.get("strategy") in strategies)
            and (not names or conn["name"] == names[-1])
        ]
        if "from" in query or "take" in query:
            take = _int_param(query, "take", 50)
            if take is None or not 1 <= take <= 100:
                return _query_error("'take' must be an integer from 1 to 100")
            start = 0
            cursor = query.get("from", [""])[-1]
            if cursor:
                try:
                    after_id = base64.urlsafe_b64decode(cursor.encode()).decode()
                except ValueError:
                    after_id = ""
                ids = [conn["id"] for conn in found]
                if after_id not in ids:
                    return _query_error("'from' is not a valid checkpoint")
                start = ids.index(after_id)
            page = [self._show(conn, token, query) for conn in found[start : start + take]]
            result: dict[str, Any] = {"connections": page}
            if start + take < len(found):
                next_id = found[start + take]["id"]
                result["next"] = base64.urlsafe_b64encode(next_id.encode()).decode()
            return _Response(200, result)
        page_no = _int_param(query, "page", 0)
        per_page = _int_param(query, "per_page", 50)
        if page_no is None or per_page is None or not 1 <= per_page <= 100:
            return _query_error("'page' must be >= 0 and 'per_page' from 1 to 100")
        totals = _bool_param(query, "include_totals", False)
        if totals is None:
            return _query_error("'include_totals' must be true or false")
        start = page_no * per_page
        page = [self._show(conn, token, query) for conn in found[start : start + per_page]]
        if totals:
            summary = {"total": len(found), "start": start, "limit": per_page, "connections": page}
            return _Response(200, summary)
        return _Response(200, page)

    def _get(self, token: _Token, conn_id: str, query: dict[str, list[str]]) -> _Response:
        denied = self._scope_error(token, "read:connections") or self._bad_id(conn_id, "retrieve")
        if denied:
            return denied
        if conn_id not in self._connections:
            return _api_error(404, "The connection does not exist.", "inexistent_connection")
        return _Response(200, self._show(self._connections[conn_id], token, query))

    def _patch(self, token: _Token, conn_id: str, body: object) -> _Response:
        denied = self._scope_error(token, "update:connections") or self._bad_id(conn_id, "update")
        if denied:
            return denied
        if body is _INVALID:
            return _api_error(400, "Invalid request payload JSON format", "invalid_body")
        if not isinstance(body, dict):
            found = _json_type(body)
            message = f"Payload validation error: 'Expected type object but found type {found}'."
            return _api_error(400, message, "invalid_body")
        extra = [key for key in body if key not in _PATCH_TYPES]
        if extra:
            listed = ",".join(extra)
            message = f"Payload validation error: 'Additional properties not allowed: {listed}'."
            return _api_error(400, message, "invalid_body")
        for key, value in body.items():
            expected = _PATCH_TYPES[key]
            if not isinstance(value, expected):
                message = (
                    f"Payload validation error: 'Expected type {_json_type(expected())} "
                    f"but found type {_json_type(value)}' on property {key}."
                )
                return _api_error(400, message, "invalid_body")
        if "options" in body:
            denied = self._scope_error(token, "update:connections_options")
            if denied:
                return denied
        conn = self._connections.get(conn_id)
        if conn is None:
            return _api_error(404, "The connection does not exist.", "inexistent_connection")
        conn.update(copy.deepcopy(body))
        if "display_name" not in body:
            conn["display_name"] = conn["name"]
        return _Response(200, self._show(conn, token))


class _Server(ThreadingHTTPServer):
    """Accepts plain TCP; each handler thread does its own TLS handshake."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], emulator: Emulator, context: ssl.SSLContext
    ) -> None:
        self.emulator = emulator
        self.context = context
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        self.closing = False
        super().__init__(address, _Handler)

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
            _Handler(tls, client_address, self)
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


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "auth0-emulator"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out as separate writes

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: no request logging."""

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Answer protocol errors with an Auth0-shaped body and close."""
        self.close_connection = True
        self._send(_api_error(code, message or _REASONS.get(code, "Error"), "bad_request"), "GET")

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
        server = cast(_Server, self.server)
        emulator = server.emulator
        arrival = time.monotonic()
        split = urlsplit(self.path)
        path, method = split.path, self.command
        query = parse_qs(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            raw = self._read_body()
        except ValueError:
            raw = None
        if raw is None:
            self.close_connection = True
            self._send(_api_error(400, "Invalid request body", "invalid_body"), method)
            return
        body = _parse_body(raw, headers.get("content-type", ""))
        seq, fault = emulator._arrive(method, path)

        def record(status: int) -> None:
            logged = raw.decode("utf-8", "replace") if body is _INVALID else body
            emulator._record(seq, Request(method, path, query, headers, logged, status, arrival))

        if fault is not None and fault.delay and emulator._stopping.wait(fault.delay):
            fault = Fault(drop=True)  # stopping: give up on the request
        if fault is not None and fault.drop:
            record(0)
            if fault.expire_tokens_after:
                emulator.expire_tokens()
            self.close_connection = True
            return
        if fault is not None and fault.status is not None:
            response = emulator._fault_response(fault, path)
        else:
            response = emulator._handle(method, path, query, headers, body)
        if fault is not None and fault.retry_after is not None:
            response.headers["retry-after"] = str(math.ceil(fault.retry_after))
        if fault is not None and fault.expire_tokens_after:
            emulator.expire_tokens()
        record(response.status)
        self._send(response, method)

    def _send(self, response: _Response, method: str) -> None:
        data = json.dumps(response.body).encode("utf-8")
        self.send_response(response.status, _REASONS.get(response.status))
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()


def _parse_body(raw: bytes, content_type: str) -> object:
    """JSON or form body as Python data; None when empty; _INVALID when unparsable."""
    if not raw.strip():
        return None
    if "application/x-www-form-urlencoded" in content_type:
        pairs = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in pairs.items()}
    try:
        return cast(object, json.loads(raw))
    except ValueError:
        return _INVALID


def main() -> int:
    """Serve an emulator with a sample client and connection until Ctrl-C or SIGTERM."""
    client_id, client_secret = "emulator-client", secrets.token_urlsafe(24)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with Emulator() as emu:
        emu.add_client(client_id, client_secret)
        conn = emu.add_connection(
            {
                "name": "apple",
                "display_name": "Sign in with Apple",
                "options": {
                    "client_id": "com.example.webapp",
                    "client_secret": "",
                    "authorizationURL": "https://appleid.apple.com/auth/authorize",
                    "tokenURL": "https://appleid.apple.com/auth/token",
                    "scope": "openid name email",
                },
            }
        )
        print(f"domain:        {emu.domain}")
        print(f"CA bundle:     {emu.ca_pem_path}")
        print(f"client id:     {client_id}")
        print(f"client secret: {client_secret}  (throwaway, valid only here)")
        print(f"connection:    apple ({conn['id']})")
        print("Ctrl-C to stop.", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
