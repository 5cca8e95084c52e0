"""One tenant's Management API, through auth0-python's public surface.

The border with auth0-python. Above it, code sees :class:`Connection` values
and rotator's own errors only (the :class:`~rotator.seams.Destination` seam,
with Auth0's rules for a write from :class:`~rotator.auth0_rules.Auth0Connections`).
auth0-python's ``ManagementClient`` makes the calls and retries 429,
5xx and dropped connections with backoff that honours ``Retry-After`` and
``x-ratelimit-reset``; it gets its token from rotator's :class:`Tokens`
through its documented ``token=`` callable. What this module adds, all through
httpx's public event hooks:

* no request after the run's deadline, and no pacing wait past it;
* pacing by the ``x-ratelimit-*`` headers, so a long run waits for the bucket
  to refill instead of spending requests on 429 answers;
* a guard on every PATCH: the body on the wire must be exactly the intended
  one (the SDK renames option keys that match its own field names; rotator
  hands it the body as ``additional_body_parameters`` so nothing is renamed,
  and refuses to send anything else);
* any ``client_secret`` seen in an answer is redacted from logs, even when the
  answer cannot be parsed.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeVar

import httpx
from auth0.management import ManagementClient
from auth0.management.core.api_error import ApiError
from auth0.management.core.parse_error import ParsingError
from auth0.management.core.request_options import RequestOptions

from rotator import logs, net
from rotator.auth0_rules import Auth0Connections
from rotator.deadline import Deadline
from rotator.errors import Auth0ReadError, Auth0WriteError, DeadlineError, RotatorError
from rotator.jsonvalue import same
from rotator.seams import JSON, Connection
from rotator.settings import Auth0Settings
from rotator.tokens import Tokens

T = TypeVar("T")

#: auth0-python retries each call this many times (about 1 s, 2 s, 4 s apart).
MAX_RETRIES = 3
#: Longest pause the pacer takes on the server's word before a request.
MAX_PACE = 60.0
_SECRET_IN_ANSWER = re.compile(rb'"client_secret"\s*:\s*"([^"\\]{8,})')


class Pacer:
    """Waits for the rate-limit bucket when the last answer said it is empty."""

    def __init__(self, holder: net.DeadlineHolder,
                 sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._holder = holder
        self._sleep = sleep
        self._clock = clock  # wall clock, epoch seconds: x-ratelimit-reset is one
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
                wait = min((self._reset - self._clock()) / max(self._limit, 1), MAX_PACE)
            self._remaining = None
        if wait > 0:
            deadline = self._holder.deadline
            if deadline is not None and not deadline.allows(wait):
                raise DeadlineError(
                    f"the tenant's rate limit asks for a {wait:.1f} s pause, and the run's "
                    f"deadline of {deadline.seconds:g} s comes first"
                )
            logs.waiting(wait, f"the rate limit of {request.url.host} before {request.method} "
                         f"{request.url.path}", "its last answer said no request is left "
                         "until the bucket refills (x-ratelimit-remaining: 0)")
            # A stop request cuts the run's own sleep short.
            (self._sleep or (deadline.sleep if deadline else time.sleep))(wait)

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


class Tenant(Auth0Connections):
    """One Auth0 tenant: a verified HTTP client, a cached token, the connections API."""

    def __init__(self, settings: Auth0Settings) -> None:
        self.settings = settings
        self.holder = net.DeadlineHolder()
        self.pacer = Pacer(self.holder)
        # Both are touched from every thread using this tenant (httpx hooks run in
        # the calling thread, and a worker abandoned at a deadline may still be
        # answering while the next run closes the tenant): only under _lock.
        self._lock = threading.Lock()
        self._intended: dict[int, bytes] = {}  # thread id -> the PATCH body it may send
        self._seen: set[str] = set()  # secrets seen in answers, registered for redaction
        guard = net.WaitGuard(self.holder, MAX_RETRIES)
        self.http = net.client(
            settings.trust,
            self.holder,
            request_hooks=[self.pacer.before, self._guard_body],
            response_hooks=[self.pacer.after, self._watch_secrets, guard],
        )
        self.tokens = Tokens(self.http, settings, self.holder)
        self.api = ManagementClient(
            domain=settings.domain, token=self.tokens, httpx_client=self.http,
            timeout=net.TIMEOUT,
        )
        logs.SECRETS.add(*settings.auth.hidden)

    @property
    def name(self) -> str:
        return self.settings.domain

    def serve(self, deadline: Deadline) -> None:
        """Serve the run whose deadline this is."""
        self.holder.deadline = deadline

    def close(self) -> None:
        self.http.close()
        self.tokens.close()
        with self._lock:
            seen, self._seen = self._seen, set()
        logs.SECRETS.discard(*self.settings.auth.hidden, *seen)

    def granted_scopes(self) -> frozenset[str]:
        self._call(lambda: self.tokens(), Auth0ReadError, "fetching a token")
        return self.tokens.scopes

    def read(self, ref: str) -> Connection:
        """The connection with id ``ref`` (``con_...``), or named ``ref`` among oauth2."""
        if ref.startswith("con_"):
            found = self._call(
                lambda: self.api.connections.get(ref, request_options=self._options()),
                Auth0ReadError, f"reading connection {ref}",
            )
            return _connection(found)
        for strategy in (["oauth2"], None):  # then any strategy, to say what it is
            page = self._call(
                lambda s=strategy: self.api.connections.list(  # type: ignore[misc]
                    name=ref, strategy=s, request_options=self._options()),
                Auth0ReadError, f"looking up connection {ref!r}",
            )
            for item in page.items or []:
                if item.name == ref:
                    return _connection(item)
        raise Auth0ReadError(
            f"no connection named {ref!r} on {self.name}; check the connection setting "
            "(the connection's name or its con_ id)"
        )

    def write(self, conn_id: str, body: Mapping[str, JSON]) -> Connection:
        """PATCH exactly ``body``; the stored connection from the answer."""
        wire = json.dumps(body).encode()
        with self._lock:
            self._intended[threading.get_ident()] = wire
        options = self._options()
        # Handed over as extra body parameters, not as typed arguments: auth0-python
        # would rename option keys that match its own field names (to camelCase).
        options["additional_body_parameters"] = dict(body)
        try:
            updated = self._call(
                lambda: self.api.connections.update(conn_id, request_options=options),
                Auth0WriteError, f"writing connection {conn_id}",
            )
        finally:
            with self._lock:
                self._intended.pop(threading.get_ident(), None)
        return _connection(updated)

    def _options(self) -> RequestOptions:
        timeout = self.holder.deadline.timeout(net.TIMEOUT) if self.holder.deadline else None
        options: RequestOptions = {"max_retries": MAX_RETRIES}
        if timeout is not None:
            options["timeout_in_seconds"] = int(max(1, timeout))
        return options

    def _guard_body(self, request: httpx.Request) -> None:
        """Refuse to send a PATCH whose body differs from the one intended."""
        if request.method != "PATCH":
            return
        with self._lock:
            intended = self._intended.get(threading.get_ident())
        sent: Any = None
        with contextlib.suppress(ValueError):
            sent = json.loads(request.content)
        if intended is None or not same(sent, json.loads(intended)):
            raise Auth0WriteError(
                f"refused to send a PATCH to {request.url.path} whose body is not exactly the "
                "options read with client_secret replaced; nothing was written"
            )

    def _watch_secrets(self, response: httpx.Response) -> None:
        """Redact every client_secret an answer carries, parseable or not."""
        if not response.url.path.startswith("/api/v2/"):
            return
        response.read()
        for match in _SECRET_IN_ANSWER.finditer(response.content):
            value = match.group(1).decode("utf-8", "replace")
            with self._lock:
                new = value not in self._seen
                self._seen.add(value)
            if new:
                logs.SECRETS.add(value)

    def _call(self, fn: Callable[[], T], error: type[RotatorError], doing: str) -> T:
        """Run one API call, renewing a rejected token once, translating errors."""
        for attempt in (1, 2):
            try:
                return fn()
            except ApiError as exc:
                if exc.status_code == 401 and attempt == 1:
                    self.tokens.invalidate()
                    continue
                # ``from None``: the SDK's exception text carries the answer's body.
                raise error(f"{doing} on {self.name}: {_api_message(exc)}") from None
            except ParsingError:
                raise error(
                    f"{doing} on {self.name}: the answer does not have the shape of a "
                    "connection; nothing was changed by rotator"
                ) from None
            except RotatorError:
                raise
            except httpx.HTTPError as exc:
                url = f"https://{self.settings.domain}/api/v2/"
                said = net.describe(exc, url, "auth0.domain", self.holder.deadline)
                raise error(f"{doing} on {self.name} failed: {said}") from exc
            except (ValueError, TypeError, KeyError) as exc:
                raise error(f"{doing} on {self.name}: unexpected answer "
                            f"({type(exc).__name__})") from None
        raise AssertionError("unreachable")


class _Answer(Protocol):
    """What auth0-python's connection models have in common."""

    id: str | None
    name: str | None
    strategy: str | None
    display_name: str | None
    options: dict[str, Any] | None


def _connection(item: _Answer) -> Connection:
    options = item.options
    return Connection(
        id=item.id or "",
        name=item.name or "",
        strategy=item.strategy or "",
        display_name=item.display_name,
        options=dict(options) if isinstance(options, dict) else None,
    )


def _api_message(exc: ApiError) -> str:
    status = exc.status_code or 0
    if 200 <= status < 300:
        return f"answered {status} with a body that is not JSON"
    body = exc.body if isinstance(exc.body, dict) else {}
    said = " ".join(str(body[k]) for k in ("error", "message") if isinstance(body.get(k), str))
    text = f"{status}" + (f" {logs.scrub(said, 300)}" if said else "")
    hints = {
        403: "; grant the M2M application read:connections, update:connections, "
             "read:connections_options and update:connections_options",
        429: "; rate limited after retries, try again later",
        404: "; check the connection setting",
    }
    return text + hints.get(status, "")
