"""In-process fakes of rotator's seams, on the emulator's backend: no sockets, no TLS.

:class:`FakeTenant` is a :class:`~rotator.seams.Destination` (Auth0's rules for a
write reused from :class:`~rotator.auth0_rules.Auth0Connections`) and
:class:`FakeApple` an :class:`~rotator.seams.AppleSide` (the question and
the verdict reused from :mod:`rotator.apple`). Each sends its
calls, shaped as on the wire, through a
:class:`~rotator.emulator.backend.Backend` (the emulator minus its server), so
Auth0's and Apple's behaviour, the fault queue and the journal are the
emulator's own. Reach the state through ``fake.backend``, the same API as an
:class:`~rotator.emulator.Emulator`::

    tenant = FakeTenant()
    tenant.backend.add_connection({"name": "apple", "options": {...}})
    tenant.backend.inject(Fault(method="PATCH", status=503, times=2))  # next 2 writes fail
    tenant.backend.inject(Fault(drop=True))                            # next call raises
    tenant.backend.journal                                             # every call made
    apple = FakeApple(tenant.backend)  # one backend can serve both
    apple.backend.apple_register_key(TEAM_ID, KEY_ID, public_key)

A fake makes one attempt per call (no retries, no waiting), except that the
tenant renews a refused token once, as rotator's client does.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import httpx

from rotator import apple
from rotator.auth0_rules import Auth0Connections
from rotator.deadline import Deadline
from rotator.emulator import DEFAULT_SCOPES
from rotator.emulator.apple import TOKEN_PATH
from rotator.emulator.backend import Backend
from rotator.errors import Auth0ReadError, Auth0WriteError, RotatorError, TokenError
from rotator.seams import JSON, AppleAnswer, Connection

_CLOSED = "the connection was closed without an answer"


def _send(
    backend: Backend, method: str, path: str, headers: dict[str, str], raw: bytes,
    query: dict[str, list[str]] | None = None,
) -> tuple[int, Any]:
    """One request through the backend: (status, parsed JSON); ValueError when unusable."""
    answer = backend.exchange(method, path, query or {}, headers, raw)
    if answer.response is None:
        raise ValueError(_CLOSED)
    status, content = answer.response.status, answer.response.content()[: answer.truncate]
    try:
        return status, json.loads(content)
    except ValueError:
        raise ValueError(f"answered {status} with a body that is not JSON") from None


class FakeTenant(Auth0Connections):
    """An Auth0 tenant's Management API, in-process (see the module docstring)."""

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        name: str = "fake.auth0.test",
        scopes: Iterable[str] = DEFAULT_SCOPES,
    ) -> None:
        self.backend = backend or Backend(audience=f"https://{name}/api/v2/")
        self._name = name
        self.client_id, self._client_secret = "fake-m2m", secrets.token_urlsafe(16)
        self.backend.add_client(self.client_id, self._client_secret, scopes=tuple(scopes))
        self._token: str | None = None
        self._scopes: frozenset[str] = frozenset()
        #: The deadline of every run served, in order.
        self.deadlines: list[Deadline] = []
        self.closed = 0

    @property
    def name(self) -> str:
        return self._name

    def serve(self, deadline: Deadline) -> None:
        self.deadlines.append(deadline)

    def close(self) -> None:
        self._token = None
        self.closed += 1

    def granted_scopes(self) -> frozenset[str]:
        self._token_header()
        return self._scopes

    def read(self, ref: str) -> Connection:
        if ref.startswith("con_"):
            found = self._call("GET", f"/api/v2/connections/{ref}", Auth0ReadError,
                               f"reading connection {ref}")
            return _connection(found, Auth0ReadError)
        for strategy in (["oauth2"], []):  # then any strategy, to say what it is
            query = {"name": [ref], "strategy": strategy} if strategy else {"name": [ref]}
            page = self._call("GET", "/api/v2/connections", Auth0ReadError,
                              f"looking up connection {ref!r}", query=query)
            for item in page if isinstance(page, list) else []:
                if isinstance(item, dict) and item.get("name") == ref:
                    return _connection(item, Auth0ReadError)
        raise Auth0ReadError(f"no connection named {ref!r} on {self.name}")

    def write(self, conn_id: str, body: Mapping[str, JSON]) -> Connection:
        stored = self._call("PATCH", f"/api/v2/connections/{conn_id}", Auth0WriteError,
                            f"writing connection {conn_id}", body=dict(body))
        return _connection(stored, Auth0WriteError)

    def _token_header(self) -> dict[str, str]:
        if self._token is None:
            form = {"grant_type": "client_credentials", "client_id": self.client_id,
                    "client_secret": self._client_secret, "audience": self.backend.audience}
            headers = {"content-type": "application/x-www-form-urlencoded"}
            try:
                status, got = _send(self.backend, "POST", "/oauth/token", headers,
                                    urlencode(form).encode())
            except ValueError as exc:
                raise TokenError(f"fetching a token from {self.name}: {exc}") from None
            if status != 200 or not isinstance(got, dict):
                raise TokenError(f"fetching a token from {self.name}: {_said(status, got)}")
            self._token, self._scopes = got["access_token"], frozenset(got["scope"].split())
        return {"authorization": f"Bearer {self._token}", "content-type": "application/json"}

    def _call(
        self, method: str, path: str, error: type[RotatorError], doing: str,
        query: dict[str, list[str]] | None = None, body: object = None,
    ) -> Any:
        """One API call, renewing a refused token once; ``error`` for any failure."""
        raw = b"" if body is None else json.dumps(body).encode()
        for attempt in (1, 2):
            try:
                status, got = _send(self.backend, method, path, self._token_header(), raw, query)
            except ValueError as exc:
                raise error(f"{doing} on {self.name}: {exc}") from None
            if status == 401 and attempt == 1:
                self._token = None
                continue
            if not 200 <= status < 300:
                raise error(f"{doing} on {self.name}: {_said(status, got)}")
            return got
        raise AssertionError("unreachable")


class AlteringTenant(FakeTenant):
    """A tenant whose PATCH answers come back with the stored options changed by ``alter``.

    For the verification step: what Auth0 says it stored is not what was sent.
    """

    def __init__(self, alter: Callable[[dict[str, JSON]], dict[str, JSON]],
                 options: dict[str, JSON]) -> None:
        super().__init__(name="echo.example")
        self.alter = alter
        self.backend.add_connection({"name": "apple", "display_name": "Apple",
                                     "options": options})

    def write(self, conn_id: str, body: Mapping[str, JSON]) -> Connection:
        stored = super().write(conn_id, body)
        return replace(stored, options=self.alter(dict(stored.options or {})))


class FakeApple:
    """Apple's token endpoint, in-process (see the module docstring)."""

    def __init__(self, backend: Backend | None = None) -> None:
        self.backend = backend or Backend()
        self.closed = 0

    def ask(self, secret: str, services_id: str) -> AppleAnswer:
        """rotator.apple's question, and its verdict on the answer (one attempt)."""
        headers = {"content-type": "application/x-www-form-urlencoded"}
        form = urlencode(apple.question(secret, services_id)).encode()
        answer = self.backend.exchange("POST", TOKEN_PATH, {}, headers, form)
        if answer.response is None:
            return AppleAnswer("unknown", _CLOSED)
        content = answer.response.content()[: answer.truncate]
        return apple.verdict(httpx.Response(answer.response.status, content=content))

    def close(self) -> None:
        self.closed += 1


def _said(status: int, got: object) -> str:
    """A short account of an error answer: its status and error code or message."""
    fields = got if isinstance(got, dict) else {}
    said = " ".join(str(fields[k]) for k in ("error", "message") if isinstance(fields.get(k), str))
    return f"{status} {said}".strip()


def _connection(item: Any, error: type[RotatorError]) -> Connection:
    if not isinstance(item, dict):
        raise error("the answer does not have the shape of a connection")
    options = item.get("options")
    return Connection(
        id=str(item.get("id", "")),
        name=str(item.get("name", "")),
        strategy=str(item.get("strategy", "")),
        display_name=item.get("display_name"),
        options=dict(options) if isinstance(options, dict) else None,
    )
