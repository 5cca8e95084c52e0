"""Everything behind the emulator's socket: Auth0 and Apple, the faults, the journal.

A :class:`Backend` answers one request in-process with :meth:`Backend.exchange`:
it numbers the request, asks the fault queue, routes it (``/auth/token`` to
Apple, ``/_emulator/`` to the admin endpoints, anything else to Auth0), and
journals what was answered. :class:`~rotator.emulator.Emulator` serves one
over TLS; the unit tests' fakes use one directly, with no socket at all.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from typing import Any

from rotator.emulator import admin
from rotator.emulator.apple import TOKEN_PATH, Apple, KeyLike
from rotator.emulator.auth0 import DEFAULT_SCOPES, Auth0
from rotator.emulator.exchange import (
    INVALID,
    Answer,
    EmulatedService,
    Journal,
    Request,
    Response,
    parse_body,
)
from rotator.emulator.faults import Fault, FaultQueue

Query = dict[str, list[str]]


class Backend:
    """Auth0 and Apple with faults and a journal, answering requests in-process.

    ``audience`` is the Management API identifier token requests must name;
    :class:`~rotator.emulator.Emulator` defaults it to its own address.
    """

    def __init__(
        self,
        rate_limit_burst: int | None = None,
        rate_limit_per_second: float | None = None,
        audience: str | None = None,
    ) -> None:
        self.auth0 = Auth0(audience)
        self.apple = Apple()
        self.faults = FaultQueue()
        self._journal = Journal()
        self._admin_token = secrets.token_urlsafe(24)
        self._stopping = threading.Event()
        self.set_rate_limit(rate_limit_burst, rate_limit_per_second)

    @property
    def audience(self) -> str:
        """The Management API audience a token request must name."""
        if self.auth0.audience is None:
            raise RuntimeError("no audience yet: start the emulator, or give audience=")
        return self.auth0.audience

    # -- Auth0's state -------------------------------------------------------------

    def add_client(
        self,
        client_id: str,
        client_secret: str | None,
        scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES,
        token_lifetime: int = 86400,
    ) -> None:
        """Register an M2M application allowed to use the client-credentials grant.

        ``client_secret`` None: only its RSA credentials (:meth:`add_client_key`)
        authenticate it, with Private Key JWT.
        """
        self.auth0.add_client(client_id, client_secret, scopes, token_lifetime)

    def add_client_key(self, client_id: str, public_key: object, alg: str = "RS256") -> str:
        """Give the client an RSA public key credential (object, or PEM) for ``alg``.

        Returns the credential's id. Auth0's limits apply: 2048 to 4096 bits,
        RS256, RS384 or PS256, at most two credentials (ValueError otherwise).
        """
        return self.auth0.add_client_key(client_id, public_key, alg)

    def remove_client_key(self, client_id: str, credential_id: str) -> None:
        """Take a credential away from the client (KeyError if it has none by that id)."""
        self.auth0.remove_client_key(client_id, credential_id)

    def add_connection(self, conn: dict[str, Any]) -> dict[str, Any]:
        """Store a deep copy of ``conn`` (which needs a ``name``); return what is stored."""
        return self.auth0.add_connection(conn)

    def connection(self, id_or_name: str) -> dict[str, Any]:
        """A deep copy of the stored connection with this id or name (KeyError if none)."""
        return self.auth0.connection(id_or_name)

    def set_connection_options(self, id_or_name: str, options: dict[str, Any]) -> None:
        """Replace a connection's stored options directly (not through HTTP)."""
        self.auth0.set_connection_options(id_or_name, options)

    def expire_tokens(self) -> None:
        """Make every token issued so far answer 401 "Expired token..."."""
        self.auth0.expire_tokens()

    def set_rate_limit(self, burst: int | None, per_second: float | None) -> None:
        """Limit the Management API to a bucket of ``burst`` refilled at ``per_second``.

        None for both: the default, a paid tenant's bucket that nothing here exhausts.
        """
        self.auth0.set_rate_limit(burst, per_second)

    # -- Apple's state ---------------------------------------------------------------

    def apple_register_key(self, team_id: str, key_id: str, public_key: KeyLike) -> None:
        """Register (or replace) the team's key: an EC key object, or PEM public or private.

        Secrets with this ``kid`` must be signed by it and name ``team_id`` as ``iss``.
        """
        self.apple.register_key(team_id, key_id, public_key)

    def apple_revoke_key(self, key_id: str) -> None:
        """Revoke a registered key (KeyError if none): Apple refuses its secrets from now on."""
        self.apple.revoke_key(key_id)

    def apple_add_services_id(self, team_id: str, services_id: str) -> None:
        """Register a Services ID (a secret's ``sub`` and ``client_id``) for a team."""
        self.apple.add_services_id(team_id, services_id)

    @property
    def apple_clock_offset(self) -> float:
        """Seconds Apple's clock runs ahead of this host's (negative: behind); 0 by default."""
        return self.apple.clock_offset

    @apple_clock_offset.setter
    def apple_clock_offset(self, seconds: float) -> None:
        self.apple.clock_offset = seconds

    # -- faults and the journal ------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Queue a fault."""
        self.faults.inject(fault)

    def clear_faults(self) -> None:
        """Drop every queued fault."""
        self.faults.clear()

    @property
    def journal(self) -> list[Request]:
        """Every answered or dropped request, in order of arrival."""
        return self._journal.entries()

    def in_flight(self) -> list[tuple[str, str]]:
        """(method, path) of each request being handled now (a delay fault holds one open)."""
        return self._journal.in_flight()

    def clear_journal(self) -> None:
        """Forget the requests received so far."""
        self._journal.clear()

    @property
    def admin_token(self) -> str:
        """The bearer token the ``/_emulator/`` admin endpoints ask for."""
        return self._admin_token

    # -- answering -------------------------------------------------------------------

    def exchange(
        self, method: str, path: str, query: Query, headers: dict[str, str], raw: bytes
    ) -> Answer:
        """Answer one request (``headers`` lower-cased, ``raw`` the body as received)."""
        arrival = time.monotonic()
        body = parse_body(raw, headers.get("content-type", ""))
        if path.startswith(admin.PREFIX):
            return Answer(admin.handle(self.apple, self._admin_token, method, path, headers, body))
        seq = self._journal.arrive(method, path)
        fault = self.faults.pick(method, path)
        if fault is None:
            answer = Answer(self._route(method, path, query, headers, body))
        else:
            answer = self._faulted(fault, method, path, query, headers, body)
        logged = raw.decode("utf-8", "replace") if body is INVALID else body
        status = answer.response.status if answer.response else 0
        self._journal.record(
            seq, Request(method, path, query, headers, logged, status, arrival, answer.response)
        )
        return answer

    def _service(self, path: str) -> EmulatedService:
        return self.apple if path == TOKEN_PATH else self.auth0

    def _route(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: object
    ) -> Response:
        return self._service(path).handle(method, path, query, headers, body)

    def _faulted(
        self,
        fault: Fault,
        method: str,
        path: str,
        query: Query,
        headers: dict[str, str],
        body: object,
    ) -> Answer:
        """Apply a fault, in the order the faults module describes."""
        if fault.delay and self._stopping.wait(fault.delay):
            return Answer(None)  # stopping: give up on the request
        if fault.drop:
            if fault.expire_tokens_after:
                self.expire_tokens()
            return Answer(None)
        if fault.body is not None:
            response = Response(fault.status or 200, raw=fault.body)
        elif fault.status is not None:
            response = self._service(path).fault_response(fault.status, path)
        else:
            response = self._route(method, path, query, headers, body)
        if fault.retry_after is not None:
            response.headers["retry-after"] = str(math.ceil(fault.retry_after))
        if fault.expire_tokens_after:
            self.expire_tokens()
        if fault.answer_dropped:
            return Answer(None)
        return Answer(response, truncate=fault.truncate, trickle=fault.trickle)
