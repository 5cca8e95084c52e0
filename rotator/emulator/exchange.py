"""What passes through the emulator: requests as journalled, answers as given.

A :class:`Request` is what the journal keeps of one request; a :class:`Response`
is what a behaviour (Auth0, Apple) answers; an :class:`Answer` is how the
server is to deliver it (or not), after faults had their say.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Final, Protocol, cast
from urllib.parse import parse_qs

JSON_TYPE: Final = "application/json; charset=utf-8"
REASONS: Final = {
    200: "OK",
    201: "Created",
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


class _Invalid:
    """The type of :data:`INVALID`."""

    def __repr__(self) -> str:
        return "INVALID"


#: A request body that did not parse.
INVALID: Final = _Invalid()


@dataclass(frozen=True)
class Request:
    """One request the emulator received (headers and body kept out of ``repr``).

    ``body`` is the parsed JSON or form (a dict for ``/oauth/token`` and
    ``/auth/token`` forms), None when empty, the text when it did not parse.
    ``answer`` is the response given (None when nothing was answered), for
    tests that hold the emulator's answers against Auth0's published description.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str] = field(repr=False)
    body: object | None = field(repr=False)
    status: int  # what the emulator answered; 0 when nothing was answered
    time: float  # time.monotonic() at arrival
    answer: Response | None = field(default=None, repr=False)


@dataclass
class Response:
    """A status, a JSON body (or ``raw`` bytes instead) and extra headers."""

    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = field(default=None, repr=False)

    def content(self) -> bytes:
        """The body as sent."""
        return self.raw if self.raw is not None else json.dumps(self.body).encode("utf-8")


@dataclass(frozen=True)
class Answer:
    """How to deliver a response: whole, cut, slowly, or not at all (``response`` None)."""

    response: Response | None
    truncate: int | None = None  # send only the body's first N bytes
    trickle: float | None = None  # send one byte every this many seconds


class EmulatedService(Protocol):
    """An emulated service: Auth0 or Apple."""

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: object,
    ) -> Response:
        """Answer one request; ``headers`` lower-cased, ``body`` parsed (or INVALID)."""
        ...

    def fault_response(self, status: int, path: str) -> Response:
        """What an injected fault with this status answers, in the service's shape."""
        ...


class Journal:
    """Requests in order of arrival, recorded when answered; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = 0
        self._entries: dict[int, Request] = {}
        self._open: dict[int, tuple[str, str]] = {}

    def arrive(self, method: str = "", path: str = "") -> int:
        """A sequence number for an arriving request (in flight until recorded)."""
        with self._lock:
            self._seq += 1
            self._open[self._seq] = (method, path)
            return self._seq

    def record(self, seq: int, request: Request) -> None:
        """Keep what was answered to request number ``seq``."""
        with self._lock:
            self._open.pop(seq, None)
            self._entries[seq] = request

    def in_flight(self) -> list[tuple[str, str]]:
        """(method, path) of every request that arrived and is not answered yet."""
        with self._lock:
            return [self._open[seq] for seq in sorted(self._open)]

    def entries(self) -> list[Request]:
        """Every recorded request, in order of arrival."""
        with self._lock:
            return [self._entries[seq] for seq in sorted(self._entries)]

    def clear(self) -> None:
        """Forget every request recorded so far."""
        with self._lock:
            self._entries.clear()


def parse_body(raw: bytes, content_type: str) -> object:
    """JSON or form body as Python data; None when empty; :data:`INVALID` when unparsable."""
    if not raw.strip():
        return None
    if "application/x-www-form-urlencoded" in content_type:
        pairs = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in pairs.items()}
    try:
        return cast(object, json.loads(raw))
    except ValueError:
        return INVALID
