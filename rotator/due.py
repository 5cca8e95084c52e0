"""The due rule: is the secret live in a connection due for replacement?

A pure function of the live secret, the configuration and ``now``: the live
connection is the only state rotator keeps, so a restart, a move or a second
cron host never rotates early and never forgets.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec

from rotator import secret
from rotator.seams import Verdict as AppleVerdict
from rotator.settings import Schedule

# Why a connection is (or is not) due; logged as ``reason``.
NO_SECRET = "no_secret"  # noqa: S105 - a reason code, not a password
NOT_ES256_JWT = "not_es256_jwt"
KID_CHANGED = "kid_mismatch"
ISS_CHANGED = "iss_mismatch"
SUB_CHANGED = "sub_mismatch"
AUD_CHANGED = "aud_mismatch"
BAD_SIGNATURE = "signature_mismatch"
BAD_CLAIMS = "bad_claims"
FROM_THE_FUTURE = "issued_in_future"
AGE = "age"
EXPIRING = "expiring"
APPLE_REFUSED = "apple_refused"
NOT_DUE = "not_due"

EXPLAIN = {
    NO_SECRET: "the connection has no client secret",
    NOT_ES256_JWT: "the client secret is not a JWT signed with ES256",
    KID_CHANGED: "the secret's kid differs from apple.key_id",
    ISS_CHANGED: "the secret's iss differs from apple.team_id",
    SUB_CHANGED: "the secret's sub differs from the connection's client_id",
    AUD_CHANGED: "the secret's aud is not https://appleid.apple.com",
    BAD_SIGNATURE: "the secret's signature does not verify with the configured key",
    BAD_CLAIMS: "the secret lacks a numeric iat or exp",
    FROM_THE_FUTURE: "the secret's iat is in the future, which Apple refuses",
    AGE: "the secret is older than rotate_every",
    EXPIRING: "the secret expires sooner than secret_lifetime - rotate_every from now",
    APPLE_REFUSED: "Apple refuses the live secret (invalid_client): Apple logins fail now",
    NOT_DUE: "not due yet",
}


#: A secret issued further ahead than this (clock drift where it was minted)
#: would be refused by Apple, so it is replaced.
FUTURE_SLACK = 300


@dataclass(frozen=True)
class Expected:
    """What a secret published for this connection must look like."""

    team_id: str
    key_id: str
    services_id: str
    public_key: ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class Verdict:
    """The due rule's answer for one connection at one instant."""

    due: bool
    reason: str
    live: secret.LiveSecret | None
    due_at: int  # when it falls (or fell) due, epoch seconds

    @property
    def explanation(self) -> str:
        return EXPLAIN[self.reason]


def assess(
    live: object,
    expected: Expected,
    schedule: Schedule,
    *,
    now: int,
    apple: AppleVerdict = "off",
) -> Verdict:
    """Apply the contract's rules in order and say which held.

    Rules 1 to 4 read the secret; rule 5 is Apple's verdict on it: a secret
    Apple refuses is due whatever its age.
    """
    verdict = _by_the_secret(live, expected, schedule, now)
    if not verdict.due and apple == "refused":
        return Verdict(True, APPLE_REFUSED, verdict.live, now)
    return verdict


def _by_the_secret(live: object, expected: Expected, schedule: Schedule, now: int) -> Verdict:
    if not isinstance(live, str) or not live:
        return Verdict(True, NO_SECRET, None, now)
    try:
        info = secret.inspect(live, expected.public_key)
    except secret.NotAJwt:
        return Verdict(True, NOT_ES256_JWT, None, now)
    if info.alg != secret.ALGORITHM:
        return Verdict(True, NOT_ES256_JWT, info, now)
    mismatch = (
        (info.kid != expected.key_id, KID_CHANGED),
        (info.iss != expected.team_id, ISS_CHANGED),
        (info.sub != expected.services_id, SUB_CHANGED),
        (info.aud not in (secret.APPLE_AUDIENCE, [secret.APPLE_AUDIENCE]), AUD_CHANGED),
        (not info.signature_ok, BAD_SIGNATURE),
    )
    for failed, reason in mismatch:
        if failed:
            return Verdict(True, reason, info, now)
    if info.iat is None or info.exp is None:
        return Verdict(True, BAD_CLAIMS, info, now)
    if info.iat > now + FUTURE_SLACK:
        return Verdict(True, FROM_THE_FUTURE, info, now)
    by_age = info.iat + schedule.rotate_every
    by_expiry = info.exp - (schedule.secret_lifetime - schedule.rotate_every)
    if now >= by_age:
        return Verdict(True, AGE, info, by_age)
    if now >= by_expiry:
        return Verdict(True, EXPIRING, info, by_expiry)
    return Verdict(False, NOT_DUE, info, min(by_age, by_expiry))
