"""Auth0's behaviour, in-process: a tenant that answers requests as plain Python.

What rotator uses of Auth0, the way Auth0 does it:

* ``POST /oauth/token``: client-credentials tokens with scopes and a lifetime,
  for the one audience (Management API identifier) the tenant serves; a client
  authenticates with its secret, or with a Private Key JWT assertion signed by
  one of its RSA credentials (:mod:`~rotator.emulator.assertion` holds the rules);
* ``GET /api/v2/connections`` (filters, checkpoint and page pagination),
  ``GET /api/v2/connections/{id}`` and ``PATCH /api/v2/connections/{id}``
  (``options`` replaced whole, a left-out ``display_name`` reset to ``name``,
  unknown keys refused, options hidden without ``read:connections_options``,
  a PATCH with ``options`` refused without ``update:connections_options``);
* Auth0-shaped error bodies, and a token bucket on ``/api/v2`` whose
  ``x-ratelimit-*`` headers every Management API answer carries, as Auth0's
  do (https://auth0.com/docs/troubleshoot/customer-support/operational-policies/rate-limit-policy);
  by default a paid tenant's generous bucket, which nothing here exhausts.

No socket is involved: :meth:`Auth0.handle` takes a parsed request and returns
a :class:`~rotator.emulator.exchange.Response`. This module holds the state,
the tokens and the rate limit; :mod:`~rotator.emulator.management` answers the
connections endpoints for a valid token.
"""

from __future__ import annotations

import base64
import copy
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from rotator.emulator import assertion
from rotator.emulator.exchange import REASONS, Response
from rotator.emulator.faults import Bucket
from rotator.emulator.management import Query, api_error, route

DEFAULT_SCOPES: Final = (
    "read:connections",
    "update:connections",
    "read:connections_options",
    "update:connections_options",
)
_FAULT_ERRORS: Final = {
    429: ("Global limit has been reached", "too_many_requests"),
    500: ("Internal Server Error", "internal_error"),
    503: ("Service Unavailable", "service_unavailable"),
}
_ID_CHARS: Final = string.ascii_letters + string.digits
#: The bucket when none is set: burst and refill of a paid production tenant
#: (1000 a minute, 50 a second), so answers carry real headers and no test meets it.
DEFAULT_RATE_LIMIT: Final = (1000, 50.0)


@dataclass
class _Client:
    client_id: str
    secret: str | None = field(repr=False)  # None: Private Key JWT only
    scopes: tuple[str, ...]
    token_lifetime: int
    credentials: list[assertion.Credential] = field(default_factory=list)


@dataclass
class _Token:
    client_id: str
    scopes: frozenset[str]
    expires_at: float  # monotonic
    expired: bool = False


def _oauth_error(status: int, error: str, description: str) -> Response:
    return Response(status, {"error": error, "error_description": description})


class Auth0:
    """One Auth0 tenant's state and behaviour; thread-safe.

    ``audience`` is the Management API identifier a token request must name
    (``https://DOMAIN/api/v2/``); a request naming another is refused with 403
    ``Service not enabled within domain``, as Auth0 does for a custom domain.
    """

    def __init__(self, audience: str | None = None) -> None:
        self.audience = audience
        #: Hosts (with port) the tenant answers on besides the audience's: a client
        #: assertion's ``aud`` may name any of them (the emulator adds its own).
        self.domains: set[str] = set()
        self._lock = threading.Lock()
        self._clients: dict[str, _Client] = {}
        self._jtis: set[str] = set()
        self._tokens: dict[str, _Token] = {}
        self._connections: dict[str, dict[str, Any]] = {}
        self._bucket = Bucket(*DEFAULT_RATE_LIMIT)

    # -- state -------------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        client_secret: str | None,
        scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES,
        token_lifetime: int = 86400,
    ) -> None:
        """Register an M2M application allowed to use the client-credentials grant.

        ``client_secret`` None: it has no secret, only the credentials
        :meth:`add_client_key` gives it (Private Key JWT).
        """
        with self._lock:
            self._clients[client_id] = _Client(
                client_id, client_secret, tuple(scopes), token_lifetime
            )

    def add_client_key(self, client_id: str, public_key: object, alg: str = "RS256") -> str:
        """Give the client an RSA public key credential for ``alg``; its credential id.

        Like Auth0: RSA of 2048 to 4096 bits, RS256/RS384/PS256, at most two per
        client (ValueError otherwise; KeyError for an unknown client).
        """
        cred = assertion.credential(public_key, alg)
        with self._lock:
            client = self._clients[client_id]
            if len(client.credentials) >= assertion.MAX_CREDENTIALS:
                raise ValueError(f"client {client_id} already has "
                                 f"{assertion.MAX_CREDENTIALS} credentials; remove one first")
            client.credentials.append(cred)
        return cred.id

    def remove_client_key(self, client_id: str, credential_id: str) -> None:
        """Take a credential away from the client (KeyError if it has none by that id)."""
        with self._lock:
            client = self._clients[client_id]
            kept = [c for c in client.credentials if c.id != credential_id]
            if len(kept) == len(client.credentials):
                raise KeyError(credential_id)
            client.credentials = kept

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
        """Replace a connection's stored options directly (not through a request)."""
        with self._lock:
            self._find(id_or_name)["options"] = copy.deepcopy(options)

    def expire_tokens(self) -> None:
        """Make every token issued so far answer 401 "Expired token..."."""
        with self._lock:
            for token in self._tokens.values():
                token.expired = True

    def set_rate_limit(self, burst: int | None, per_second: float | None) -> None:
        """Limit ``/api/v2`` to a bucket of ``burst`` refilled at ``per_second``.

        None for both: the default bucket (:data:`DEFAULT_RATE_LIMIT`), full.
        """
        if (burst is None) != (per_second is None):
            raise ValueError("give both burst and per_second, or neither")
        if burst is None or per_second is None:
            burst, per_second = DEFAULT_RATE_LIMIT
        bucket = Bucket(burst, per_second)
        with self._lock:
            self._bucket = bucket

    def _find(self, id_or_name: str) -> dict[str, Any]:
        if id_or_name in self._connections:
            return self._connections[id_or_name]
        for conn in self._connections.values():
            if conn["name"] == id_or_name:
                return conn
        raise KeyError(id_or_name)

    # -- requests ----------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: object
    ) -> Response:
        """Answer one request; ``headers`` lower-cased, ``body`` parsed (or INVALID)."""
        with self._lock:
            if path == "/oauth/token" and method == "POST":
                return self._token(headers, body)
            if not (path == "/api/v2" or path.startswith("/api/v2/")):
                return api_error(404, "Not Found", "not_found")
            if self._bucket.take():
                response = self._management(method, path, query, headers, body)
            else:
                response = api_error(429, "Global limit has been reached", "too_many_requests")
            response.headers.update(self._bucket.headers())
            return response

    def fault_response(self, status: int, path: str) -> Response:
        """The error an injected fault answers: OAuth-shaped on /oauth/, else Auth0-shaped."""
        reason = REASONS.get(status, "Error")
        message, code = _FAULT_ERRORS.get(status, (reason, reason.lower().replace(" ", "_")))
        if path.startswith("/oauth/"):
            return _oauth_error(status, code, message)
        response = api_error(status, message, code)
        with self._lock:
            if path.startswith("/api/v2/"):
                response.headers.update(self._bucket.headers())
        return response

    def _token(self, headers: dict[str, str], body: object) -> Response:
        params = {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}
        grant = params.get("grant_type")
        if not grant:
            return _oauth_error(400, "invalid_request", "Missing required parameter: grant_type")
        if grant != "client_credentials":
            return _oauth_error(
                400, "unsupported_grant_type", f"Grant type '{grant}' not allowed for the client."
            )
        if "client_assertion" in params or "client_assertion_type" in params:
            client = self._asserted_client(params, headers)
        else:
            client = self._secret_client(params, headers)
        if isinstance(client, Response):
            return client
        audience = params.get("audience", "")
        if audience != self.audience:
            return _oauth_error(
                403, "access_denied", f"Service not enabled within domain: {audience}"
            )
        access_token = secrets.token_urlsafe(32)
        self._tokens[access_token] = _Token(
            client.client_id, frozenset(client.scopes), time.monotonic() + client.token_lifetime
        )
        body_out = {
            "access_token": access_token,
            "scope": " ".join(client.scopes),
            "expires_in": client.token_lifetime,
            "token_type": "Bearer",
        }
        return Response(200, body_out, {"cache-control": "no-store", "pragma": "no-cache"})

    def _secret_client(self, params: dict[str, str], headers: dict[str, str]) -> _Client | Response:
        """The client whose id and secret the request carries (form or Basic)."""
        client_id, secret = params.get("client_id", ""), params.get("client_secret", "")
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(basic[6:].strip()).decode("utf-8")
            except ValueError:
                decoded = ""
            client_id, _, secret = decoded.partition(":")
        client = self._clients.get(client_id)
        if client is None or client.secret is None or not secrets.compare_digest(
                client.secret, secret):
            return _oauth_error(401, "access_denied", "Unauthorized")
        return client

    def _asserted_client(self, params: dict[str, str], headers: dict[str, str]
                         ) -> _Client | Response:
        """The client a Private Key JWT assertion proves, by Auth0's rules."""
        if params.get("client_assertion_type") != assertion.JWT_BEARER:
            return _oauth_error(400, "invalid_request",
                                f"client_assertion_type must be {assertion.JWT_BEARER}")
        if not params.get("client_assertion"):
            return _oauth_error(400, "invalid_request",
                                "Missing required parameter: client_assertion")
        if "client_secret" in params or headers.get("authorization"):
            return _oauth_error(400, "invalid_request",
                                "Only one client authentication method may be used")
        try:
            client_id = assertion.claimed_client(params["client_assertion"])
            sent = params.get("client_id")
            if sent is not None and sent != client_id:
                raise assertion.Refused("client_id does not match the assertion's 'iss' claim")
            client = self._clients.get(client_id)
            if client is None or not client.credentials:
                raise assertion.Refused(
                    "the client has no credential for Private Key JWT authentication")
            assertion.verify(params["client_assertion"], client.credentials,
                             self._tenant_urls(), self._jtis)
        except assertion.Refused as why:
            return _oauth_error(401, "invalid_client", str(why))
        return client

    def _tenant_urls(self) -> set[str]:
        """What a client assertion's ``aud`` may be: each domain's URL with its slash."""
        hosts = set(self.domains)
        if self.audience:
            hosts.add(urlsplit(self.audience).netloc)
        return {f"https://{host}/" for host in hosts}

    def _bearer(self, headers: dict[str, str]) -> _Token | Response:
        """The valid token the request carries, or the 401 it earns."""
        auth = headers.get("authorization", "")
        if not auth:
            return api_error(401, "Missing authentication", "invalid_token")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return api_error(401, "Bad HTTP authentication header format", "invalid_token")
        token = self._tokens.get(value.strip())
        if token is None:
            return api_error(401, "Invalid token", "invalid_token")
        if token.expired or time.monotonic() >= token.expires_at:
            message = "Expired token received for JSON Web Token validation"
            return api_error(401, message, "invalid_token")
        return token

    def _management(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: object
    ) -> Response:
        token = self._bearer(headers)
        if isinstance(token, Response):
            return token
        return route(self._connections, token.scopes, method, path, query, body)
