"""HTTPS for every call rotator makes: trust, deadlines, retries, plain-words errors.

The border with httpx. Every client made here verifies TLS against the system
store (or ``SSL_CERT_FILE``) plus ``ca_bundle``, honours ``HTTPS_PROXY`` and
``NO_PROXY``, refuses to start a request once the run's deadline has passed,
and never waits past it. Transport failures leave as one secret-free line that
names what failed (name resolution, a refused port, the proxy, the
certificate) and the setting to check.

The Management API's own retries are auth0-python's (see ``rotator.auth0``);
:func:`send` retries the two calls that library does not make for us: the
client-credentials token request and the question to Apple.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
import os
import random
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from rotator import environment, files, logs
from rotator.deadline import Deadline
from rotator.errors import ConfigError, DeadlineError, RotatorError
from rotator.settings import Trust

#: The longest one request may take (less when the deadline is nearer).
TIMEOUT = 30.0
#: Tries of one call: the first and three retries (1 s, 2 s, 4 s apart, or as asked).
ATTEMPTS = 4
BACKOFF = 1.0
#: The longest single wait taken on a server's word (Retry-After).
MAX_WAIT = 60.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


#: The deadline of the request each thread is sending (set by :meth:`DeadlineHolder.guard`).
_SENDING = threading.local()


class DeadlineHolder:
    """The deadline of the run a long-lived client currently serves."""

    def __init__(self, deadline: Deadline | None = None) -> None:
        self.deadline = deadline

    def current(self) -> Deadline:
        """The deadline of the run being served (a client serves runs only)."""
        if self.deadline is None:
            raise RuntimeError("no run is being served: serve(deadline) comes first")
        return self.deadline

    def guard(self, request: httpx.Request) -> None:
        """httpx request hook: no request starts after the deadline, and none outlives it."""
        _SENDING.deadline = self.deadline
        if self.deadline is not None:
            self.deadline.check(f"{request.method} {request.url.host}{request.url.path}")


class _DeadlineSocket(ssl.SSLSocket):
    """A TLS socket whose every read, write and handshake ends by the request's deadline.

    httpx has no total timeout: its read timeout bounds each read, so an answer
    trickling a byte at a time (each within the timeout) would hold the request,
    its thread and its socket for as long as the server likes. Every call
    rotator makes is HTTPS through a context of :func:`ssl_context`, whose
    sockets are of this class (``SSLContext.sslsocket_class``): each socket
    operation waits at most until the deadline of the request its thread is
    sending, and fails as a timeout once that has passed (httpx then closes the
    connection).
    """

    def _bound(self) -> None:
        deadline: Deadline | None = getattr(_SENDING, "deadline", None)
        if deadline is None:
            return
        left = deadline.remaining()
        if left <= 0:
            raise TimeoutError("the run's deadline passed")
        timeout = self.gettimeout()
        if timeout is None or timeout > left:
            self.settimeout(left)

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        self._bound()
        return super().recv(buflen, flags)

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        self._bound()
        return super().recv_into(buffer, nbytes, flags)

    def send(self, data: Any, flags: int = 0) -> int:
        self._bound()
        return super().send(data, flags)

    def do_handshake(self, block: bool = False) -> None:
        self._bound()
        super().do_handshake(block)


def ssl_context(trust: Trust) -> ssl.SSLContext:
    """Verify against the system store, ``SSL_CERT_FILE`` when set, and ``trust.ca_bundle``.

    OpenSSL reads ``SSL_CERT_FILE`` *instead of* the system's CA file; the system
    store is loaded as well, so setting it adds trust and takes none away.

    One context serves every client with the same trust: building one parses
    every system CA (about 0.8 MiB a time, which ``rotator start`` would pay at
    each check). A CA file that changes on disk gets a new context.
    """
    stamp, ca_bundle = None, trust.ca_bundle
    if ca_bundle is not None:
        with contextlib.suppress(OSError):
            info = ca_bundle.stat()
            stamp = (info.st_mtime_ns, info.st_size)
    return _context(ca_bundle, stamp, *environment.tls_files())


@functools.lru_cache(maxsize=32)
def _context(
    ca_bundle: Path | None, stamp: object, cert_file: str | None, cert_dir: str | None
) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.sslsocket_class = _DeadlineSocket
    system = ssl.get_default_verify_paths()
    if cert_file and system.openssl_cafile \
            and os.path.isfile(system.openssl_cafile):
        context.load_verify_locations(cafile=system.openssl_cafile)
    if ca_bundle is not None:
        # Read here (bounded, a regular file, an open that cannot block), not by
        # OpenSSL, which would block on a FIFO put in the file's place.
        try:
            pem = files.read_bounded(ca_bundle, files.CA_BUNDLE_MAX).decode("ascii")
            context.load_verify_locations(cadata=pem)
        except (files.Unreadable, ssl.SSLError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(  # it was valid when the configuration loaded
                f"auth0.ca_bundle {ca_bundle} can no longer be loaded ({exc}); it must be a "
                "regular file of PEM CA certificates"
            ) from None
    return context


class WaitGuard:
    """httpx response hook: an answer asking for a wait past the deadline ends the call now.

    auth0-python would otherwise sleep as long as ``Retry-After`` says (up to a
    minute a try) before its next try, holding the run past its deadline.
    """

    def __init__(self, holder: DeadlineHolder, max_retries: int = 0) -> None:
        self._holder = holder
        self._max_retries = max_retries
        self._retries: dict[int, int] = {}  # thread id -> retryable answers in a row

    def __call__(self, response: httpx.Response) -> None:
        deadline = self._holder.deadline
        if response.status_code not in RETRY_STATUSES:
            self._retries.pop(threading.get_ident(), None)  # the retries, if any, are over
            return
        if deadline is None:
            return
        if deadline.interrupt.is_set():
            raise DeadlineError(f"{response.url.host} answered {response.status_code}, and a "
                                "stop was asked for: no retry")
        asked = wait_asked(response, 0, 0.0)
        if asked > 0 and not deadline.allows(asked):
            raise DeadlineError(
                f"{response.url.host} answered {response.status_code} and "
                f"{too_long(asked, deadline)}"
            )
        # The SDK (auth0-python) retries now, after the wait asked for or its own
        # backoff (1 s, 2 s, 4 s, with jitter); say so before it sleeps.
        if not response.url.path.startswith("/api/v2/"):
            return  # the token request: net.send retries it, and says so itself
        tries = self._retries.pop(threading.get_ident(), 0)
        if tries < self._max_retries:  # else the SDK gives up: this was its last try
            self._retries[threading.get_ident()] = tries + 1
            expected = min(asked, MAX_WAIT) or BACKOFF * 2**tries
            logs.waiting(expected, f"the retry of {response.request.method} "
                         f"{response.url.host}{response.url.path}",
                         f"it answered {response.status_code}"
                         + (" with Retry-After" if "retry-after" in response.headers else ""))


def client(
    trust: Trust,
    holder: DeadlineHolder,
    *,
    request_hooks: list[Callable[[httpx.Request], None]] | None = None,
    response_hooks: list[Callable[[httpx.Response], None]] | None = None,
) -> httpx.Client:
    """A verifying client whose requests stop at ``holder``'s deadline."""
    return httpx.Client(
        verify=ssl_context(trust),
        timeout=TIMEOUT,
        trust_env=True,
        event_hooks={
            "request": [holder.guard, *(request_hooks or [])],
            "response": list(response_hooks or []),
        },
    )


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTPS_PROXY, NO_PROXY), if any."""
    host = urlsplit(url).hostname or ""
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(urlsplit(url).scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(host):
        return None
    return proxy


def describe(
    exc: httpx.HTTPError, url: str, setting: str, deadline: Deadline | None = None
) -> str:
    """A one-line, secret-free account of a transport failure, naming what to check.

    ``setting`` is the setting that chose ``url`` (``auth0.domain``, ``apple.token_url``);
    a timeout cut short by ``deadline`` says so.
    """
    parts = urlsplit(url)
    where = parts.netloc
    text = str(exc)
    proxy = proxy_for(url)
    shown_proxy = urlsplit(proxy).hostname if proxy else None
    if isinstance(exc, httpx.ProxyError):
        if "407" in text:
            return (f"the proxy {shown_proxy} answered 407 (proxy authentication required); "
                    "put its credentials in HTTPS_PROXY (https://user:password@host:port)")
        return f"the proxy {shown_proxy} refused to connect to {where}; check HTTPS_PROXY"
    if isinstance(exc, httpx.ConnectError) and proxy is not None and not _tls(text):
        return (f"cannot reach the proxy {shown_proxy} named by HTTPS_PROXY; check HTTPS_PROXY "
                f"(or add {parts.hostname} to NO_PROXY)")
    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(text, where, parts.hostname or where, setting)
    if isinstance(exc, httpx.TimeoutException):
        if deadline is not None and deadline.remaining() < 1:
            return (f"{where} gave no answer before the run's deadline of {deadline.seconds:g} s "
                    "(schedule.deadline)")
        return f"{where} timed out ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{where} closed the connection without answering"
    return f"{where}: {type(exc).__name__}"


def _permanent(exc: httpx.HTTPError) -> bool:
    """A failure no retry can cure: an untrusted certificate, a proxy wanting credentials."""
    text = str(exc)
    return "CERTIFICATE_VERIFY_FAILED" in text or (isinstance(exc, httpx.ProxyError)
                                                    and "407" in text)


def _tls(text: str) -> bool:
    return "CERTIFICATE_VERIFY_FAILED" in text or "SSL" in text


def _connect_failure(text: str, where: str, host: str, setting: str) -> str:
    if "mismatch" in text.lower() and "CERTIFICATE_VERIFY_FAILED" in text:
        return (f"the TLS certificate of {where} is for another host name; check {setting} "
                "(a wrong name, or a proxy intercepting TLS)")
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"the TLS certificate of {where} is not trusted; add the issuing CA with "
            "auth0.ca_bundle or SSL_CERT_FILE (verification cannot be turned off)"
        )
    if any(s in text for s in ("Name or service not known", "nodename nor servname",
                               "Temporary failure in name resolution", "No address associated")):
        return f"cannot resolve the host name {host}; check {setting}"
    if "Connection refused" in text:
        return f"connection refused by {where}: nothing listens there; check {setting}"
    return f"cannot connect to {where}; check {setting} and the network"


def too_long(asked: float, deadline: Deadline) -> str:
    """Words for a wait the deadline does not allow, as long as it really was asked."""
    left = max(0.0, deadline.remaining())
    return (f"asked to wait {asked:.0f} s before retrying, more than the {left:.0f} s left of "
            f"the run's deadline of {deadline.seconds:g} s")


def wait_asked(response: httpx.Response, attempt: int, backoff: float = BACKOFF) -> float:
    """Seconds to wait before retrying: Retry-After, else x-ratelimit-reset, else backoff."""
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    if value:
        try:
            return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            pass  # neither seconds nor a date: fall back to the next rule
    reset = response.headers.get("x-ratelimit-reset", "").strip()
    if reset.isdigit() and int(reset) > time.time():
        return int(reset) - time.time()
    return float(backoff * 2**attempt * (0.9 + random.random() / 5))  # noqa: S311 - jitter


def send(
    request: Callable[[float], httpx.Response],
    *,
    deadline: Deadline,
    url: str,
    setting: str,
    what: str,
    error: type[RotatorError],
    backoff: float = BACKOFF,
) -> httpx.Response:
    """Call ``request(timeout)``, retrying 408/429/5xx and transport errors.

    Waits honour Retry-After and x-ratelimit-reset (at most :data:`MAX_WAIT`
    each) and never pass ``deadline``. Returns the last answer (a retryable
    status included, once the tries are spent); a transport failure on the
    last try raises ``error``.
    """
    for attempt in range(ATTEMPTS):
        deadline.check(what)
        failure: str | None = None
        try:
            response = request(deadline.timeout(TIMEOUT))
        except DeadlineError:
            raise
        except httpx.HTTPError as exc:
            failure = describe(exc, url, setting, deadline)
            if _permanent(exc):
                raise error(f"{what} failed: {failure}") from exc
            wait = backoff * 2**attempt
        else:
            if response.status_code not in RETRY_STATUSES or attempt == ATTEMPTS - 1:
                return response
            wait = wait_asked(response, attempt, backoff)
        if attempt == ATTEMPTS - 1:
            break
        if not deadline.allows(wait):  # the server's word, as asked (capped only below)
            if failure is None:
                raise DeadlineError(f"{what}: the answer was {response.status_code} and "
                                    f"{too_long(wait, deadline)}")
            raise DeadlineError(f"{what}: failed ({failure}), and the run's deadline of "
                                f"{deadline.seconds:g} s comes before the next try")
        wait = min(wait, MAX_WAIT)
        because = failure or f"it answered {response.status_code}" + (
            " with Retry-After" if "retry-after" in response.headers else "")
        logs.waiting(wait, f"try {attempt + 2} of {ATTEMPTS} of {what}", because)
        deadline.sleep(wait)
    raise error(f"{what} failed after {ATTEMPTS} tries: {failure}")
