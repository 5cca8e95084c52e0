"""Apple's token endpoint, in-process: which client secrets Sign in with Apple accepts.

``POST /auth/token`` with the form fields ``client_id``, ``client_secret``,
``grant_type`` and ``code``. Apple authenticates the client before it looks at
the grant, so the secret is judged first. It must be a JWT with:

* header ``alg`` ES256 and a ``kid`` some team registered and did not revoke;
* a signature that verifies with that key's public key;
* ``iss`` the team that owns the key; ``aud`` ``https://appleid.apple.com``;
* ``sub`` the posted ``client_id``, a Services ID registered for that team;
* ``exp`` in the future and at most 15,777,000 s from now;
* ``iat`` not in the future (:data:`IAT_GRACE` seconds of grace).

A secret that breaks a rule earns 400 ``{"error": "invalid_client"}``; an
accepted one earns 400 ``{"error": "invalid_grant"}``, since no code was ever
issued here. "Now" is this host's clock plus :attr:`Apple.clock_offset`. Each
refusal also carries the emulator's own ``x-emulator-reason`` header naming
the rule, for tests and people (Apple says no more than ``invalid_client``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from rotator.emulator.exchange import Response

TOKEN_PATH: Final = "/auth/token"  # noqa: S105 - a path, not a password
AUDIENCE: Final = "https://appleid.apple.com"
MAX_LIFETIME: Final = 15_777_000
IAT_GRACE: Final = 5
GRANT_TYPES: Final = ("authorization_code", "refresh_token")
#: PyJWT checks the signature only; the claims are judged here, against Apple's clock.
_SIGNATURE_ONLY: Final[Any] = {
    "verify_signature": True,
    **dict.fromkeys(("verify_exp", "verify_iat", "verify_nbf", "verify_aud"), False),
    **dict.fromkeys(("verify_iss", "verify_sub", "verify_jti"), False),
}

#: A key as accepted by :meth:`Apple.register_key`.
KeyLike = ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey | bytes | str


@dataclass
class _Key:
    team_id: str
    public_key: ec.EllipticCurvePublicKey
    revoked: bool = False


def public_key_of(key: KeyLike) -> ec.EllipticCurvePublicKey:
    """The P-256 public key of a key object or of PEM text (public or private); ValueError."""
    if isinstance(key, str):
        key = key.encode()
    if isinstance(key, bytes):
        loaded: Any
        try:
            loaded = serialization.load_pem_public_key(key)
        except ValueError:
            try:
                loaded = serialization.load_pem_private_key(key, password=None)
            except (ValueError, TypeError):
                raise ValueError("not a PEM public key or unencrypted private key") from None
        key = loaded
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("Apple keys are P-256 (secp256r1) EC keys")
    return key


def _error(error: str, reason: str | None = None) -> Response:
    headers = {"x-emulator-reason": reason} if reason else {}
    return Response(400, {"error": error}, headers)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class Apple:
    """Teams' keys and Services IDs, and the token endpoint's answers; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, _Key] = {}
        self._services: dict[str, str] = {}  # Services ID -> team id
        #: Seconds Apple's clock is ahead of this host's (negative: behind).
        self.clock_offset = 0.0

    def register_key(self, team_id: str, key_id: str, public_key: KeyLike) -> None:
        """Register (or replace, unrevoked) the team's key ``key_id``."""
        key = _Key(team_id, public_key_of(public_key))
        with self._lock:
            self._keys[key_id] = key

    def revoke_key(self, key_id: str) -> None:
        """Revoke a registered key: secrets it signed are refused from now on (KeyError if none)."""
        with self._lock:
            self._keys[key_id].revoked = True

    def add_services_id(self, team_id: str, services_id: str) -> None:
        """Register a Services ID for a team (ValueError if another team has it)."""
        with self._lock:
            owner = self._services.setdefault(services_id, team_id)
        if owner != team_id:
            raise ValueError(f"Services ID {services_id!r} belongs to team {owner}")

    def now(self) -> float:
        """Apple's time: this host's clock plus :attr:`clock_offset`."""
        return self._clock() + self.clock_offset

    def refusal(self, secret: str, client_id: str) -> str | None:
        """Why Apple refuses ``secret`` for ``client_id``; None when it accepts it."""
        try:
            header = jwt.get_unverified_header(secret)
        except jwt.PyJWTError:
            return "not a JWT"
        if header.get("alg") != "ES256":
            return "alg is not ES256"
        with self._lock:
            key = self._keys.get(str(header.get("kid")))
            team_services = self._services.get(client_id)
        if key is None:
            return "kid is not a registered key"
        if key.revoked:
            return "kid is a revoked key"
        try:
            claims = jwt.decode(
                secret, key.public_key, algorithms=["ES256"], options=_SIGNATURE_ONLY
            )
        except jwt.PyJWTError:
            return "signature does not verify with the key"
        return self._claims_refusal(claims, key.team_id, client_id, team_services)

    def _claims_refusal(
        self, claims: dict[str, Any], team_id: str, client_id: str, owner: str | None
    ) -> str | None:
        now = self.now()
        exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
        checks = (
            (claims.get("iss") == team_id, "iss is not the team that owns the key"),
            (claims.get("aud") == AUDIENCE, f"aud is not {AUDIENCE}"),
            (claims.get("sub") == client_id, "sub is not the client_id sent"),
            (owner == team_id, "client_id is not a Services ID of the key's team"),
            (exp is not None and exp > now, "exp is missing or past"),
            (exp is not None and exp - now <= MAX_LIFETIME, "exp is more than 15777000 s away"),
            (iat is not None and iat <= now + IAT_GRACE, "iat is missing or in the future"),
        )
        return next((reason for ok, reason in checks if not ok), None)

    def handle(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: object,
    ) -> Response:
        """Answer a request to the token endpoint, as Apple does."""
        if path != TOKEN_PATH:
            return Response(404, {"error": "not_found"})
        if method != "POST":
            return Response(405, {"error": "invalid_request"}, {"allow": "POST"})
        is_form = "application/x-www-form-urlencoded" in headers.get("content-type", "")
        form = body if is_form and isinstance(body, dict) else {}
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        grant = fields.get("grant_type", "")
        if not grant or not fields.get("client_id"):
            return _error("invalid_request", "no form, or grant_type or client_id missing")
        if grant not in GRANT_TYPES:
            return _error("unsupported_grant_type", f"grant_type {grant!r}")
        reason = self.refusal(fields.get("client_secret", ""), fields["client_id"])
        if reason is not None:
            return _error("invalid_client", reason)
        if not fields.get("code" if grant == "authorization_code" else "refresh_token"):
            return _error("invalid_request", "no code or refresh_token")
        return _error("invalid_grant")  # no code or refresh token was ever issued here

    def fault_response(self, status: int, path: str) -> Response:
        """The answer of an injected fault: an OAuth-style error code, as Apple sends."""
        if status == 429:
            return Response(status, {"error": "too_many_requests"})
        return Response(status, {"error": "server_error" if status >= 500 else "invalid_request"})
