"""Injected faults and the rate limit: what makes the emulator misbehave on purpose.

A :class:`Fault` is matched, in queue order, against each arriving request
(see :class:`FaultQueue`). What one does, in this order:

1. ``delay``: sleep first (cut short, and nothing answered, when the emulator stops);
2. ``drop``: close the connection without answering; the request is not handled;
3. ``body``: answer these raw bytes (``status``, default 200) instead of handling it;
   else ``status``: answer an error shaped like the service's (Auth0 or Apple);
   else handle the request normally (its effect, e.g. a PATCH, is applied);
4. ``retry_after`` adds a Retry-After header; ``expire_tokens_after`` then
   expires every Auth0 token issued so far;
5. ``answer_dropped``: close the connection instead of sending the answer;
   ``truncate``: send only the body's first N bytes (Content-Length says N);
   ``trickle``: send the answer one byte at a time, this many seconds apart.

:class:`Bucket` is the token bucket behind Auth0's ``x-ratelimit-*`` headers.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Fault:
    """A fault matched, in queue order, against incoming requests (see the module docstring).

    ``after`` counts every matching request, including ones answered by an
    earlier fault in the queue; the first fault past its ``after`` applies.
    """

    method: str | None = None  # None: any method
    path: str | None = None  # prefix of the request path; None: any path
    status: int | None = None  # answer this status with a service-shaped error
    retry_after: float | None = None  # add Retry-After (whole seconds, rounded up)
    drop: bool = False  # close the connection without answering
    delay: float = 0.0  # sleep this long first
    times: int | None = 1  # how many requests it applies to; None: forever
    after: int = 0  # let this many matching requests pass first
    expire_tokens_after: bool = False  # then expire every token issued so far
    answer_dropped: bool = False  # handle the request, then close without answering
    body: bytes | None = None  # answer these bytes (JSON content type) without handling
    truncate: int | None = None  # handle, then send only the body's first N bytes
    trickle: float | None = None  # handle, then send one byte every this many seconds

    def __post_init__(self) -> None:
        low = 100 if self.body is not None else 400
        if self.status is not None and not low <= self.status <= 599:
            raise ValueError(f"Fault.status must be {low}-599, got {self.status}")
        if self.times is not None and self.times < 1:
            raise ValueError("Fault.times must be at least 1, or None for forever")
        numbers = (self.after, self.delay, self.retry_after or 0, self.truncate or 0)
        if min(numbers) < 0:
            raise ValueError("Fault.after, delay, retry_after and truncate must not be negative")
        if self.trickle is not None and self.trickle <= 0:
            raise ValueError("Fault.trickle must be positive seconds per byte")
        shaping = self.truncate is not None or self.trickle is not None
        if (self.drop or self.answer_dropped) and (shaping or self.body is not None):
            raise ValueError("Fault.drop and answer_dropped send no answer to shape")

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault concerns a request with this method and path."""
        method_ok = self.method is None or self.method.upper() == method
        return method_ok and (self.path is None or path.startswith(self.path))


@dataclass
class _Queued:
    fault: Fault
    seen: int = 0
    used: int = 0


class FaultQueue:
    """Queued faults with what each has seen and been used for; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[_Queued] = []

    def inject(self, fault: Fault) -> None:
        """Queue a fault."""
        with self._lock:
            self._queued.append(_Queued(fault))

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._queued.clear()

    def pick(self, method: str, path: str) -> Fault | None:
        """The fault that applies to an arriving request, counting it as seen and used."""
        with self._lock:
            chosen: _Queued | None = None
            for queued in self._queued:
                if not queued.fault.matches(method, path):
                    continue
                queued.seen += 1
                if chosen is None and queued.seen > queued.fault.after:
                    chosen = queued
            if chosen is None:
                return None
            chosen.used += 1
            if chosen.fault.times is not None and chosen.used >= chosen.fault.times:
                self._queued.remove(chosen)
            return chosen.fault


class Bucket:
    """A token bucket of ``burst`` tokens refilled at ``per_second`` (not thread-safe)."""

    def __init__(self, burst: int, per_second: float) -> None:
        if burst < 1 or per_second <= 0:
            raise ValueError("rate limit needs burst >= 1 and per_second > 0")
        self.burst = burst
        self.per_second = per_second
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Take a token; False when the bucket is empty."""
        self._refill()
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def headers(self) -> dict[str, str]:
        """Auth0's ``x-ratelimit-*`` headers for the bucket as it is now."""
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
