"""Tests for rotator.due: each condition of the due rule, alone, at stated instants.

Then the rule in whole runs against the emulator: each due condition makes run-once rotate,
and a secret just written is not due.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from auth0_env import EmulatedTenant
from conftest import DAY, KEY_ID, SERVICES_ID, TEAM_ID, named, run_cli
from cryptography.hazmat.primitives.asymmetric import ec

from rotator import due, secret
from rotator.config import Schedule

NOW = 1_700_000_000
SCHEDULE = Schedule(secret_lifetime=180 * DAY, rotate_every=30 * DAY, check_every=3600)
AUDIENCE = "https://appleid.apple.com"


@pytest.fixture
def expected(apple_key: secret.AppleKey) -> due.Expected:
    """What the configuration says a live secret must look like."""
    return due.Expected(team_id=TEAM_ID, key_id=KEY_ID, services_id=SERVICES_ID,
                        public_key=apple_key.public_key, key_source=apple_key.source)


def minted(key: secret.AppleKey, *, iat: int = NOW, lifetime: int = 180 * DAY) -> str:
    """A secret as rotator mints it, issued at ``iat`` (iat is back-dated from the now given)."""
    return secret.mint(key, team_id=TEAM_ID, key_id=KEY_ID, services_id=SERVICES_ID,
                       lifetime=lifetime, now=iat + secret.BACKDATE)


def signed(private_key: Any, *, alg: str = "ES256", kid: str = KEY_ID, **changes: Any) -> str:
    """A JWT with rotator's claims except ``changes``, signed by ``private_key`` with ``alg``."""
    claims = {"iss": TEAM_ID, "iat": NOW, "exp": NOW + 180 * DAY, "aud": AUDIENCE,
              "sub": SERVICES_ID, **changes}
    return jwt.encode(claims, private_key, algorithm=alg, headers={"kid": kid})


def b64(data: dict[str, Any]) -> str:
    """base64url of compact JSON, without padding."""
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def assess(live: object, expected: due.Expected, now: int = NOW) -> due.Verdict:
    """The due rule with the default schedule."""
    return due.assess(live, expected, SCHEDULE, now=now)


@pytest.mark.parametrize("live", [None, "", 0, {"secret": "x"}])
def test_no_secret_is_due(expected: due.Expected, live: object) -> None:
    """A missing, empty or non-string secret is due now, reason no_secret."""
    verdict = assess(live, expected)
    assert (verdict.due, verdict.reason, verdict.due_at) == (True, due.NO_SECRET, NOW)
    assert verdict.live is None


@pytest.mark.parametrize("live", ["not a jwt", "a.b.c", "eyJhbGciOiJFUzI1NiJ9.e30",
                                  "old-static-client-secret-value"])
def test_text_that_is_not_a_jwt_is_due(expected: due.Expected, live: str) -> None:
    """A secret that does not decode as a JWT is due, reason not_es256_jwt."""
    verdict = assess(live, expected)
    assert (verdict.due, verdict.reason, verdict.due_at) == (True, due.NOT_ES256_JWT, NOW)


def test_hs256_jwt_is_due(expected: due.Expected) -> None:
    """A JWT signed with HS256 (right claims, wrong algorithm) is due, reason not_es256_jwt."""
    verdict = assess(signed(b"k" * 64, alg="HS256"), expected)
    assert (verdict.due, verdict.reason) == (True, due.NOT_ES256_JWT)
    assert verdict.live is not None
    assert verdict.live.alg == "HS256"
    assert verdict.explanation == "the client secret is a JWT signed with HS256, not ES256"


def test_es384_jwt_is_due(expected: due.Expected) -> None:
    """A JWT signed with ES384 is not ES256 and is due."""
    verdict = assess(signed(ec.generate_private_key(ec.SECP384R1()), alg="ES384"), expected)
    assert (verdict.due, verdict.reason) == (True, due.NOT_ES256_JWT)


def test_unsigned_jwt_is_due(expected: due.Expected) -> None:
    """An alg "none" JWT with otherwise matching claims is due, reason not_es256_jwt."""
    live = f"{b64({'alg': 'none', 'kid': KEY_ID})}.{b64({'iss': TEAM_ID, 'sub': SERVICES_ID})}."
    assert assess(live, expected).reason == due.NOT_ES256_JWT


@pytest.mark.parametrize(
    ("change", "reason", "why"),
    [
        ({"kid": "ZZZ999ZZZZ"}, due.KID_CHANGED,
         f"the secret's kid ZZZ999ZZZZ differs from apple.key_id {KEY_ID}"),
        ({"iss": "ZZZZZ99999"}, due.ISS_CHANGED,
         f"the secret's iss ZZZZZ99999 differs from apple.team_id {TEAM_ID}"),
        ({"sub": "com.example.other"}, due.SUB_CHANGED,
         f"the secret's sub com.example.other differs from the connection's client_id "
         f"{SERVICES_ID}"),
        ({"aud": "https://example.com"}, due.AUD_CHANGED,
         f"the secret's aud https://example.com differs from Apple's audience {AUDIENCE}"),
    ],
)
def test_claim_mismatch_is_due_naming_both_values(
    apple_key: secret.AppleKey, expected: due.Expected, change: dict[str, str], reason: str,
    why: str,
) -> None:
    """A well-signed secret whose kid, iss, sub or aud differ: due, both values named."""
    verdict = assess(signed(apple_key.private_key, **change), expected)
    assert (verdict.due, verdict.reason, verdict.due_at) == (True, reason, NOW)
    assert verdict.explanation == why
    assert verdict.live is not None
    assert verdict.live.signature_ok


def test_team_and_key_ids_swapped_are_named(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """A secret whose kid is the configured team id and iss the key id: "look swapped"."""
    verdict = assess(signed(apple_key.private_key, kid=TEAM_ID, iss=KEY_ID), expected)
    assert (verdict.due, verdict.reason) == (True, due.KID_CHANGED)
    assert verdict.explanation.startswith(
        f"the secret's kid {TEAM_ID} and iss {KEY_ID} are apple.team_id and apple.key_id the "
        "other way round: the two ids look swapped")


def test_a_missing_claim_is_named_missing(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """A secret without iss: "the secret's iss missing differs from apple.team_id ..."."""
    claims = {"iat": NOW, "exp": NOW + 180 * DAY, "aud": AUDIENCE, "sub": SERVICES_ID}
    live = jwt.encode(claims, apple_key.private_key, algorithm="ES256", headers={"kid": KEY_ID})
    verdict = assess(live, expected)
    assert verdict.explanation == f"the secret's iss missing differs from apple.team_id {TEAM_ID}"


def test_signature_from_another_key_is_due(expected: due.Expected) -> None:
    """A secret with every claim right but signed by another key is due, signature_mismatch."""
    other = ec.generate_private_key(ec.SECP256R1())
    verdict = assess(signed(other), expected)
    assert (verdict.due, verdict.reason, verdict.due_at) == (True, due.BAD_SIGNATURE, NOW)
    assert verdict.explanation == (
        f"the secret's signature does not verify with the configured key (test key): "
        f"another key signed it (its kid is {KEY_ID})")


def test_audience_as_a_list_is_accepted(apple_key: secret.AppleKey, expected: due.Expected) -> None:
    """aud given as a one-element list of Apple's audience counts as matching."""
    verdict = assess(signed(apple_key.private_key, aud=[AUDIENCE]), expected)
    assert (verdict.due, verdict.reason) == (False, due.NOT_DUE)


def test_fresh_secret_is_not_due(apple_key: secret.AppleKey, expected: due.Expected) -> None:
    """A secret minted now is not due, and falls due at iat + rotate_every."""
    verdict = assess(minted(apple_key), expected)
    assert (verdict.due, verdict.reason) == (False, due.NOT_DUE)
    assert verdict.due_at == NOW + SCHEDULE.rotate_every
    assert verdict.live is not None
    assert (verdict.live.iat, verdict.live.exp) == (NOW, NOW + 180 * DAY)


def test_secret_one_second_short_of_rotate_every_is_not_due(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """At iat + rotate_every - 1 the secret is still not due."""
    iat = NOW - SCHEDULE.rotate_every + 1
    verdict = assess(minted(apple_key, iat=iat), expected)
    assert (verdict.due, verdict.due_at) == (False, iat + SCHEDULE.rotate_every)


def test_secret_at_rotate_every_is_due_by_age(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """At exactly iat + rotate_every the secret is due, reason age, due_at = iat + rotate_every."""
    iat = NOW - SCHEDULE.rotate_every
    verdict = assess(minted(apple_key, iat=iat), expected)
    assert (verdict.due, verdict.reason, verdict.due_at) == (True, due.AGE, NOW)


def test_old_expired_secret_is_due_by_age(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """A matching secret that expired long ago is still read and is due by age."""
    iat = NOW - 400 * DAY
    verdict = assess(minted(apple_key, iat=iat), expected)
    assert (verdict.due, verdict.reason, verdict.due_at) == (
        True, due.AGE, iat + SCHEDULE.rotate_every)
    assert verdict.explanation == "the secret is 400.0 days old; rotate_every is 30d"


def test_hand_made_two_day_secret_is_due_as_expiring(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """A two-day secret issued now is due at once, reason expiring, not by age."""
    verdict = assess(minted(apple_key, lifetime=2 * DAY), expected)
    assert (verdict.due, verdict.reason) == (True, due.EXPIRING)
    assert verdict.explanation == (
        "the secret expires in 2.0 days, within secret_lifetime - rotate_every = 150d")
    assert verdict.due_at == NOW + 2 * DAY - (SCHEDULE.secret_lifetime - SCHEDULE.rotate_every)


def test_shorter_lived_secret_falls_due_by_expiry_first(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """A 170-day secret is not due now but falls due at exp - (lifetime - rotate_every)."""
    verdict = assess(minted(apple_key, lifetime=170 * DAY), expected)
    assert (verdict.due, verdict.reason) == (False, due.NOT_DUE)
    assert verdict.due_at == NOW + 20 * DAY
    later = assess(minted(apple_key, lifetime=170 * DAY), expected, now=NOW + 20 * DAY)
    assert (later.due, later.reason) == (True, due.EXPIRING)


def test_every_reason_is_explained() -> None:
    """Each reason the rule can give has an explanation for the log."""
    reasons = (due.NO_SECRET, due.NOT_ES256_JWT, due.KID_CHANGED, due.ISS_CHANGED,
               due.SUB_CHANGED, due.AUD_CHANGED, due.BAD_SIGNATURE, due.BAD_CLAIMS,
               due.FROM_THE_FUTURE, due.AGE, due.EXPIRING, due.APPLE_REFUSED, due.NOT_DUE)
    for reason in reasons:
        assert due.Verdict(True, reason, None, NOW).explanation == due.EXPLAIN[reason]
    assert set(due.EXPLAIN) == set(reasons)


def test_secret_issued_in_the_future_is_due(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """A secret whose iat is ahead of now (minted on a fast clock) is due: Apple refuses it."""
    verdict = assess(minted(apple_key, iat=NOW + 3600), expected)
    assert (verdict.due, verdict.reason) == (True, due.FROM_THE_FUTURE)
    assert verdict.explanation == "the secret's iat is 3600 s in the future, which Apple refuses"


def test_secret_a_little_ahead_is_tolerated(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """A secret a minute ahead (ordinary clock drift) is not due."""
    assert assess(minted(apple_key, iat=NOW + 60), expected).due is False


@pytest.mark.parametrize("apple", ["accepted", "unknown", "off"])
def test_apple_verdict_other_than_refused_changes_nothing(
    apple_key: secret.AppleKey, expected: due.Expected, apple: Any
) -> None:
    """A fresh secret stays not due whether Apple accepted it, could not be asked, or was not."""
    verdict = due.assess(minted(apple_key), expected, SCHEDULE, now=NOW + DAY, apple=apple)
    assert (verdict.due, verdict.reason) == (False, due.NOT_DUE)


def test_fresh_secret_apple_refuses_is_due(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """Rule 5: a secret every local rule calls fresh is due the moment Apple refuses it."""
    verdict = due.assess(minted(apple_key), expected, SCHEDULE, now=NOW + DAY, apple="refused")
    assert (verdict.due, verdict.reason, verdict.due_at) == (True, due.APPLE_REFUSED, NOW + DAY)
    assert verdict.live is not None


def test_local_reason_wins_when_apple_also_refuses(
    apple_key: secret.AppleKey, expected: due.Expected
) -> None:
    """A secret due by a local rule keeps that (more specific) reason when Apple refuses it too."""
    verdict = due.assess(minted(apple_key), expected, SCHEDULE, now=NOW + 31 * DAY,
                         apple="refused")
    assert (verdict.due, verdict.reason) == (True, due.AGE)


# -- the rule in whole runs against the emulator ---------------------------------------------


def test_run_once_after_run_now_sends_no_patch(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Right after a rotation nothing is due, so run-once writes nothing."""
    tenant.add(client_secret=None)
    config = str(tenant.write_config())
    assert run_cli("run-now", "--config", config, capsys=capsys)[0] == 0
    tenant.emu.clear_journal()

    code, _, err = run_cli("run-once", "--config", config, capsys=capsys)

    assert code == 0
    assert tenant.patches() == []
    [checked] = named(err, "rotation.checked")
    assert checked["due"] is False
    assert checked["reason"] == "not_due"


def _hs256(tenant: EmulatedTenant) -> str:
    return jwt.encode({"iss": TEAM_ID, "sub": SERVICES_ID}, "a-shared-key-32-bytes-long......",
                      algorithm="HS256")


def _other_key(tenant: EmulatedTenant, tmp_path: Path) -> str:
    path = tmp_path / "other.p8"
    secret.generate_throwaway_key(path)
    other = secret.load_key(path.read_bytes(), "other")
    return secret.mint(other, team_id=TEAM_ID, key_id=KEY_ID,
                       services_id=SERVICES_ID, lifetime=86400 * 180, now=int(time.time()))


DUE_CASES: dict[str, Any] = {
    "no_secret": lambda t, p: None,
    "not_es256_jwt": lambda t, p: _hs256(t),
    "kid_mismatch": lambda t, p: t.mint(key_id="ZZZZZZZZZZ"),
    "iss_mismatch": lambda t, p: t.mint(team_id="ZZZZZZZZZZ"),
    "sub_mismatch": lambda t, p: t.mint(services_id="com.example.other"),
    "signature_mismatch": _other_key,
    "age": lambda t, p: t.mint(age=31 * 86400),
    "expiring": lambda t, p: t.mint(lifetime=2 * 86400),
}


@pytest.mark.parametrize("reason", sorted(DUE_CASES))
def test_each_due_condition_triggers_a_rotation(
    reason: str, tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each of the four due conditions, alone, makes run-once rotate, and the log says which."""
    live = DUE_CASES[reason](tenant, tmp_path)
    conn = tenant.add(client_secret=live)
    if live is None:
        assert "client_secret" not in conn["options"]

    code, _, err = run_cli("run-once", "--config", str(tenant.write_config()), capsys=capsys)

    assert code == 0, err
    [checked] = named(err, "rotation.checked")
    assert (checked["due"], checked["reason"]) == (True, reason)
    assert len(tenant.patches()) == 1
    assert tenant.stored(conn["id"])["options"]["client_secret"] != live
