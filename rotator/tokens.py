"""Management API access tokens: the client-credentials grant, and a small cache.

One :class:`Tokens` per tenant. It is the ``token`` callable handed to
auth0-python's ``ManagementClient`` (its documented way to supply a token):
the first call fetches a token from ``https://{domain}/oauth/token``, later
calls reuse it until a minute before it expires, and :meth:`Tokens.invalidate`
(after a 401) makes the next call fetch a new one. The request is retried like
every other call (429, 5xx, network errors, honouring Retry-After), and a
refusal says which setting to check. The form that authenticates the request
comes from the settings' client authentication (a client secret, or a fresh
Private Key JWT assertion for every request, retries included). The last
assertion sent and each access token are registered for redaction while they
are in use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from rotator import logs, net
from rotator.errors import DeadlineError, TokenError
from rotator.settings import Auth0Settings

#: A token this close to its expiry is not used; a new one is fetched.
LEEWAY = 60.0


class Tokens:
    """The access token of one tenant's M2M application, fetched when needed."""

    def __init__(
        self,
        http: httpx.Client,
        settings: Auth0Settings,
        holder: net.DeadlineHolder,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._settings = settings
        self._holder = holder
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._sent: tuple[str, ...] = ()  # the client authentication last sent
        self._expires = 0.0
        self.scopes: frozenset[str] = frozenset()
        self.url = f"https://{settings.domain}/oauth/token"

    def __call__(self) -> str:
        """A valid access token (fetching one when there is none or it is about to expire)."""
        with self._lock:
            token = self._token
            if token is None or self._clock() >= self._expires - LEEWAY:
                token, expires, scopes = self._fetch()
                self._replace(token, expires, scopes)
            return token

    def invalidate(self) -> None:
        """Forget the token (Auth0 answered 401): the next call fetches a new one."""
        with self._lock:
            self._replace(None, 0.0, frozenset())

    def close(self) -> None:
        """Forget the token and the last client authentication sent."""
        with self._lock:
            self._replace(None, 0.0, frozenset())
            logs.SECRETS.discard(*self._sent)
            self._sent = ()

    def _replace(self, token: str | None, expires: float, scopes: frozenset[str]) -> None:
        logs.SECRETS.discard(self._token)
        logs.SECRETS.add(token)
        self._token, self._expires, self.scopes = token, expires, scopes

    def _fetch(self) -> tuple[str, float, frozenset[str]]:
        deadline = self._holder.current()
        try:
            response = net.send(
                lambda timeout: self._http.post(self.url, data=self._form(), timeout=timeout),
                deadline=deadline,
                url=self.url,
                setting="auth0.domain",
                what=f"the token request to {self.url}",
                error=TokenError,
            )
        except DeadlineError as exc:
            raise TokenError(str(exc)) from None
        if response.status_code != 200:
            raise TokenError(self._refusal(response))
        try:
            data = response.json()
            token = str(data["access_token"])
            lifetime = float(data["expires_in"])
            scopes = frozenset(str(data.get("scope", "")).split())
        except (ValueError, KeyError, TypeError):
            raise TokenError(f"the answer of {self.url} is not a token") from None
        return token, self._clock() + lifetime, scopes

    def _form(self) -> dict[str, str]:
        """The token request, authenticated afresh: a retry carries a new assertion."""
        settings = self._settings
        auth = settings.auth.fields(settings.domain, settings.client_id)
        # An assertion is a credential until it expires: hidden until the next one.
        logs.SECRETS.discard(*self._sent)
        self._sent = tuple(auth.values())
        logs.SECRETS.add(*self._sent)
        return {
            "grant_type": "client_credentials",
            "client_id": settings.client_id,
            **auth,
            "audience": settings.api_audience,
        }

    def _refusal(self, response: httpx.Response) -> str:
        status = response.status_code
        error, detail = _oauth_error(response)
        said = f"{status} {error}" + (f": {detail}" if detail else "")
        text = f"the token request to {self.url} answered {logs.scrub(said, 300)}"
        if status == 403 and "Service not enabled within domain" in detail:
            audience = self._settings.audience
            if audience is not None:
                return (
                    f"{text}; auth0.audience {audience!r} is not an API of this tenant: set it "
                    "to the Management API identifier shown in the Auth0 dashboard (APIs > "
                    "Auth0 Management API), such as https://example.eu.auth0.com/api/v2/ (the "
                    "trailing slash is part of it), or remove it to use "
                    f"https://{self._settings.domain}/api/v2/"
                )
            return (
                f"{text}; {self._settings.domain} looks like a custom domain: set auth0.domain "
                "to the tenant's canonical domain (such as example.eu.auth0.com), or set "
                "auth0.audience to the Management API identifier shown in the Auth0 dashboard "
                "(APIs > Auth0 Management API)"
            )
        if status in (400, 401, 403):
            return f"{text}; {self._settings.auth.refusal_hint(self._settings.client_id)}"
        return f"{text} after {net.ATTEMPTS} tries; Auth0 is not answering well, try again later"


def _oauth_error(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "(no JSON body)", ""
    if not isinstance(body, dict):
        return "(unexpected body)", ""
    detail = body.get("error_description") or body.get("message") or ""
    return str(body.get("error", "")), str(detail)
