"""The Auth0 side: one tenant's Management API, through auth0-python.

This is the border with auth0-python and httpx. Above it, code sees
:class:`Connection` values and rotator's own errors only.

What auth0-python does for us: the client-credentials token and its cache
(``TokenProvider``), and retries of 429, 5xx and dropped connections with
backoff that honours ``Retry-After`` and ``x-ratelimit-reset`` (its HTTP
client). What this module adds: TLS that trusts the system store,
``SSL_CERT_FILE`` and ``ca_bundle`` for every call, the token request
included; one renewal of a token that expired between two calls; and pacing
by the ``x-ratelimit-*`` headers, so a long run waits for the bucket to refill
instead of spending requests on 429 answers.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from auth0.management import ManagementClient
from auth0.management.core.api_error import ApiError
from auth0.management.core.request_options import RequestOptions
from auth0.management.token_provider import TokenProvider

from rotator.config import Auth0Settings
from rotator.errors import Auth0ReadError, Auth0WriteError, RotatorError

T = TypeVar("T")

#: Each call is retried this many times on 429, 5xx and dropped connections
#: (auth0-python's backoff: about 1 s, 2 s, 4 s, or what the server asks for,
#: capped at 60 s each), so one call gives up after a bounded time.
MAX_RETRIES = 3
TIMEOUT = 30.0
#: Longest pause the pacer takes on the server's word before a request.
MAX_PACE = 60.0


@dataclass(frozen=True)
class Connection:
    """A connection as the Management API returned it."""

    id: str
    name: str
    strategy: str
    display_name: str | None
    options: dict[str, Any] | None  # None: left out (token lacks read:connections_options)


def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Verify against the system store (or ``SSL_CERT_FILE``), plus ``ca_bundle``."""
    context = ssl.create_default_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


class _Tokens(TokenProvider):
    """auth0-python's token cache, fetching through our verified HTTP client."""

    def __init__(self, http: httpx.Client, settings: Auth0Settings) -> None:
        super().__init__(
            domain=settings.domain,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
        )
        self._http = http

    def _fetch_token(self) -> None:
        url = f"https://{self._domain}/oauth/token"
        payload = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "audience": self._audience,
        }
        try:
            response = self._http.post(url, data=payload)
        except httpx.HTTPError as exc:
            raise Auth0ReadError(
                f"token request to https://{self._domain}/oauth/token failed: {_describe(exc)}"
            ) from exc
        if response.status_code != 200:
            raise Auth0ReadError(
                f"token request to {self._domain} answered {response.status_code} "
                f"{_token_error(response)}; check auth0.client_id, the client secret and that "
                "the M2M application is authorized for the Management API"
            )
        try:
            data = response.json()
            self._access_token = str(data["access_token"])
            self._expires_at = time.time() + float(data["expires_in"])
        except (ValueError, KeyError, TypeError) as exc:
            raise Auth0ReadError(f"token answer from {self._domain} is not a token") from exc

    def invalidate(self) -> None:
        with self._lock:
            self._access_token = None
            self._expires_at = 0


class _Pacer:
    """Waits for the rate-limit bucket when the last answer said it is empty."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sleep = sleep
        self._limit = 1
        self._remaining: int | None = None
        self._reset = 0.0
        self._lock = threading.Lock()

    def before(self, request: httpx.Request) -> None:
        if not request.url.path.startswith("/api/v2/"):
            return
        with self._lock:
            wait = 0.0
            if self._remaining == 0:
                # The bucket refills to ``limit`` by ``reset``; one request needs
                # at most 1/limit of that. Waiting no longer keeps the bucket from
                # ever sitting full (which would waste its refill) and sends no
                # request that would only earn a 429.
                wait = (self._reset - time.time()) / max(self._limit, 1)
            self._remaining = None
        if wait > 0:
            self._sleep(min(wait, MAX_PACE))

    def after(self, response: httpx.Response) -> None:
        headers = response.headers
        try:
            limit = int(headers["x-ratelimit-limit"])
            remaining = int(headers["x-ratelimit-remaining"])
            reset = float(headers["x-ratelimit-reset"])
        except (KeyError, ValueError):
            return
        with self._lock:
            self._limit, self._remaining, self._reset = limit, remaining, reset


class Tenant:
    """One Auth0 tenant: a verified HTTP client, a shared token, the connections API."""

    def __init__(self, settings: Auth0Settings, *, timeout: float = TIMEOUT) -> None:
        self.settings = settings
        self.name = settings.domain
        self.pacer = _Pacer()
        self.http = httpx.Client(
            verify=ssl_context(settings.ca_bundle),
            timeout=timeout,
            event_hooks={"request": [self.pacer.before], "response": [self.pacer.after]},
        )
        self.tokens = _Tokens(self.http, settings)
        self.api = ManagementClient(
            domain=settings.domain,
            token=self.tokens.get_token,
            httpx_client=self.http,
            timeout=timeout,
        )
        self._options: RequestOptions = {"max_retries": MAX_RETRIES}

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Tenant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, ref: str) -> Connection:
        """The connection with id ``ref`` (``con_...``), or named ``ref`` among oauth2."""
        if ref.startswith("con_"):
            found = self._call(
                lambda: self.api.connections.get(ref, request_options=self._options),
                Auth0ReadError,
                f"reading connection {ref}",
            )
            return _connection(found)
        page = self._call(
            lambda: self.api.connections.list(
                name=ref, strategy=["oauth2"], request_options=self._options
            ),
            Auth0ReadError,
            f"looking up connection {ref!r}",
        )
        for item in page.items or []:
            if item.name == ref:
                return _connection(item)
        # Not among oauth2: say what it is, if anything, so the operator can act.
        page = self._call(
            lambda: self.api.connections.list(name=ref, request_options=self._options),
            Auth0ReadError,
            f"looking up connection {ref!r}",
        )
        for item in page.items or []:
            if item.name == ref:
                return _connection(item)
        raise Auth0ReadError(
            f"no connection named {ref!r} on {self.name}; check the connection setting "
            "(the connection's name or its con_ id)"
        )

    def write(self, conn_id: str, options: dict[str, Any], display_name: str | None) -> Connection:
        """PATCH ``options`` (and ``display_name`` when there is one); the stored result."""
        kwargs: dict[str, Any] = {"options": options}
        if display_name is not None:
            kwargs["display_name"] = display_name
        updated = self._call(
            lambda: self.api.connections.update(conn_id, request_options=self._options, **kwargs),
            Auth0WriteError,
            f"writing connection {conn_id}",
        )
        return _connection(updated)

    def _call(self, fn: Callable[[], T], error: type[RotatorError], doing: str) -> T:
        """Run one API call, renewing an expired token once, translating errors."""
        for attempt in (1, 2):
            try:
                return fn()
            except ApiError as exc:
                if exc.status_code == 401 and attempt == 1:
                    self.tokens.invalidate()
                    continue
                raise error(f"{doing} on {self.name}: {_api_message(exc)}") from exc
            except RotatorError:
                raise
            except httpx.HTTPError as exc:
                raise error(f"{doing} on {self.name} failed: {_describe(exc)}") from exc
            except ValueError as exc:  # an answer auth0-python could not parse
                raise error(f"{doing} on {self.name}: unexpected answer") from exc
        raise AssertionError("unreachable")


def _connection(item: Any) -> Connection:
    options = item.options
    return Connection(
        id=item.id or "",
        name=item.name or "",
        strategy=item.strategy or "",
        display_name=item.display_name,
        options=dict(options) if isinstance(options, dict) else None,
    )


def _api_message(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    status = exc.status_code
    parts = [str(status)]
    for key in ("error", "message"):
        if isinstance(body.get(key), str):
            parts.append(body[key])
    text = " ".join(parts[:2]) + (f": {parts[2]}" if len(parts) > 2 else "")
    if status == 403:
        text += (
            "; grant the M2M application read:connections, update:connections, "
            "read:connections_options and update:connections_options"
        )
    elif status == 429:
        text += "; rate limited after retries, try again later"
    elif status == 404:
        text += "; check the connection setting"
    return text


def _token_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return "(no JSON body)"
    if not isinstance(body, dict):
        return ""
    error = body.get("error", "")
    detail = body.get("error_description") or body.get("message") or ""
    return f"{error}: {detail}" if detail else str(error)


def _describe(exc: httpx.HTTPError) -> str:
    """A one-line, secret-free description of a transport failure."""
    if isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc):
        return (
            "TLS certificate not trusted; add the issuing CA with auth0.ca_bundle or "
            "SSL_CERT_FILE (verification cannot be turned off)"
        )
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the server closed the connection without answering"
    return type(exc).__name__
