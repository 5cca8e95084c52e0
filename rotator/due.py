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
from rotator.settings import Schedule, format_duration

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
    key_source: str = "apple.private_key_file"  # where the key came from, for messages


@dataclass(frozen=True)
class Verdict:
    """The due rule's answer for one connection at one instant."""

    due: bool
    reason: str
    live: secret.LiveSecret | None
    due_at: int  # when it falls (or fell) due, epoch seconds
    evidence: str = ""  # the reason with the values that prove it, when there are some

    @property
    def explanation(self) -> str:
        return self.evidence or EXPLAIN[self.reason]


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


def swapped(kid: object, iss: object, expected: Expected) -> bool:
    """A secret's kid and iss are the configured team and key ids the other way round."""
    return (kid, iss) == (expected.team_id, expected.key_id) and kid != iss


def _mismatch(info: secret.LiveSecret, expected: Expected) -> tuple[str, str] | None:
    """The first claim that differs from the configuration: its reason, with both values."""
    if info.kid != expected.key_id and swapped(info.kid, info.iss, expected):
        return KID_CHANGED, (
            f"the secret's kid {info.kid} and iss {info.iss} are apple.team_id and "
            f"apple.key_id the other way round: the two ids look swapped (in the "
            "configuration, or in whatever made the live secret)")
    checks = (
        (info.kid != expected.key_id, KID_CHANGED, "kid", info.kid, "apple.key_id",
         expected.key_id),
        (info.iss != expected.team_id, ISS_CHANGED, "iss", info.iss, "apple.team_id",
         expected.team_id),
        (info.sub != expected.services_id, SUB_CHANGED, "sub", info.sub,
         "the connection's client_id", expected.services_id),
        (info.aud not in (secret.APPLE_AUDIENCE, [secret.APPLE_AUDIENCE]), AUD_CHANGED, "aud",
         info.aud, "Apple's audience", secret.APPLE_AUDIENCE),
    )
    for failed, reason, claim, live, setting, configured in checks:
        if failed:
            shown = "missing" if live is None else _shown(live)
            return reason, (f"the secret's {claim} {shown} differs from {setting} "
                            f"{configured}")
    if not info.signature_ok:
        return BAD_SIGNATURE, (f"the secret's signature does not verify with the configured "
                               f"key ({expected.key_source}): another key signed it (its kid "
                               f"is {info.kid})")
    return None


def _days(seconds: int) -> str:
    return f"{seconds / 86400:.1f} days" if abs(seconds) >= 86400 else f"{seconds} s"


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else f"{text[:80]}..."


def _by_the_secret(live: object, expected: Expected, schedule: Schedule, now: int) -> Verdict:
    if not isinstance(live, str) or not live:
        return Verdict(True, NO_SECRET, None, now)
    try:
        info = secret.inspect(live, expected.public_key)
    except secret.NotAJwt:
        return Verdict(True, NOT_ES256_JWT, None, now)
    if info.alg != secret.ALGORITHM:
        return Verdict(True, NOT_ES256_JWT, info, now,
                       f"the client secret is a JWT signed with {info.alg}, not ES256")
    if mismatch := _mismatch(info, expected):
        reason, evidence = mismatch
        return Verdict(True, reason, info, now, evidence)
    if info.iat is None or info.exp is None:
        return Verdict(True, BAD_CLAIMS, info, now)
    if info.iat > now + FUTURE_SLACK:
        return Verdict(True, FROM_THE_FUTURE, info, now,
                       f"the secret's iat is {info.iat - now} s in the future, which Apple "
                       "refuses")
    by_age = info.iat + schedule.rotate_every
    by_expiry = info.exp - (schedule.secret_lifetime - schedule.rotate_every)
    if now >= by_age:
        return Verdict(True, AGE, info, by_age,
                       f"the secret is {_days(now - info.iat)} old; rotate_every is "
                       f"{format_duration(schedule.rotate_every)}")
    if now >= by_expiry:
        return Verdict(True, EXPIRING, info, by_expiry,
                       f"the secret expires in {_days(info.exp - now)}, within "
                       "secret_lifetime - rotate_every = "
                       f"{format_duration(schedule.secret_lifetime - schedule.rotate_every)}")
    return Verdict(False, NOT_DUE, info, min(by_age, by_expiry))
