"""Tests for rotator.secret: the .p8 key, the minted secret, and every bad key."""

from __future__ import annotations

import datetime
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from auth0_env import EmulatedTenant
from conftest import (
    KEY_ID,
    SERVICES_ID,
    TEAM_ID,
    Run,
    assert_refused,
    pem_lines,
    run_cli,
    run_rotator,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from joserfc import jwt as jose_jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import ECKey

from rotator import secret
from rotator.errors import AppleKeyError

NOW = 1_700_000_000
LIFETIME = 180 * 86400
# With AUTH0_CONNECTION and the mint environment, enough for `rotator check-config`.
AUTH0_ENV = {
    "AUTH0_DOMAIN": "example.eu.auth0.com",
    "AUTH0_CLIENT_ID": "m2m-client-id",
    "AUTH0_CLIENT_SECRET": "m2m-Secret-Value-7f3a9c",
    "AUTH0_CONNECTION": "apple",
}
# Readable by nobody, root included: procfs permission checks ignore CAP_DAC_OVERRIDE.
WRITE_ONLY_PROC_FILE = Path("/proc/sys/vm/compact_memory")


def pkcs8(key: object, password: bytes | None = None) -> bytes:
    """A private key as PKCS#8 PEM, encrypted when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def certificate_pem() -> bytes:
    """A self-signed P-256 certificate, made with cryptography's x509 builder."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rotator test")])
    start = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def public_pem() -> bytes:
    """The public half of a P-256 key, as SubjectPublicKeyInfo PEM."""
    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def corrupt_pem() -> bytes:
    """A key made now, its PEM armour kept and its body swapped for base64 of nothing useful."""
    lines = pkcs8(ec.generate_private_key(ec.SECP256R1())).splitlines()
    body = b"TUlJQmFkS2V5Tm90UmVhbGx5QUtleUF0QWxsQnV0TG9va3NMaWtlQmFzZTY0"
    return b"\n".join([lines[0], body, lines[-1]]) + b"\n"


def unarmoured() -> bytes:
    """A key made now with its BEGIN/END lines taken off: base64 text, no PEM."""
    lines = pkcs8(ec.generate_private_key(ec.SECP256R1())).splitlines()
    return b"just some text\n" + b"\n".join(lines[1:-1]) + b"\n"


# name -> (PEM bytes, words the refusal must contain)
BAD_KEYS: dict[str, tuple[Callable[[], bytes], tuple[str, ...]]] = {
    "not PEM": (unarmoured, ("is not a PEM key", secret.PKCS8_BEGIN)),
    "encrypted PKCS8": (lambda: pkcs8(ec.generate_private_key(ec.SECP256R1()), b"pw"),
                        ("encrypted PEM key", "openssl pkcs8 -topk8 -nocrypt")),
    "RSA": (lambda: pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            ("holds an RSA key", "P-256")),
    "EC P-384": (lambda: pkcs8(ec.generate_private_key(ec.SECP384R1())),
                 ("EC key on secp384r1", "P-256")),
    "public key": (public_pem, ("holds a public key, not a private key",)),
    "certificate": (certificate_pem, ("holds a certificate, not a private key",)),
    "corrupt body": (corrupt_pem, ("is not a readable PEM private key",)),
}


def jose_public_key(key: secret.AppleKey) -> ECKey:
    """The key's public half as a joserfc key (an independent JOSE implementation)."""
    return ECKey.import_key(key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ))


def mint(key: secret.AppleKey, *, lifetime: int = LIFETIME, now: int = NOW) -> str:
    """A secret from the fixture ids."""
    return secret.mint(key, team_id=TEAM_ID, key_id=KEY_ID, services_id=SERVICES_ID,
                       lifetime=lifetime, now=now)


# --- the minted secret ------------------------------------------------------------


def test_minted_secret_verifies_under_joserfc(apple_key: secret.AppleKey) -> None:
    """joserfc verifies the secret with the public half; header and claims are exactly Apple's."""
    token = jose_jwt.decode(mint(apple_key), jose_public_key(apple_key), algorithms=["ES256"])
    header = dict(token.header)
    assert header.pop("typ", "JWT") == "JWT"
    assert header == {"alg": "ES256", "kid": KEY_ID}
    assert token.claims == {
        "iss": TEAM_ID,
        "iat": NOW - 60,
        "exp": NOW - 60 + LIFETIME,
        "aud": "https://appleid.apple.com",
        "sub": SERVICES_ID,
    }


def test_minted_secret_fails_under_another_key(apple_key: secret.AppleKey) -> None:
    """joserfc refuses the secret with some other key's public half (the check above is real)."""
    other = secret.AppleKey(ec.generate_private_key(ec.SECP256R1()), "other")
    with pytest.raises(BadSignatureError):
        jose_jwt.decode(mint(apple_key), jose_public_key(other), algorithms=["ES256"])


@pytest.mark.parametrize("lifetime", [1, 86400, 30 * 86400, 15_777_000])
def test_exp_minus_iat_is_the_lifetime(apple_key: secret.AppleKey, lifetime: int) -> None:
    """exp - iat equals the lifetime asked for."""
    claims = jose_jwt.decode(mint(apple_key, lifetime=lifetime), jose_public_key(apple_key),
                             algorithms=["ES256"]).claims
    assert claims["exp"] - claims["iat"] == lifetime


@pytest.mark.parametrize("now", [0, 1_234_567_890, 4_102_444_800])
def test_iat_is_the_now_passed_in_back_dated(apple_key: secret.AppleKey, now: int) -> None:
    """iat is the whole-second now given to mint minus 60 s (Apple refuses a future iat)."""
    claims = jose_jwt.decode(mint(apple_key, now=now), jose_public_key(apple_key),
                             algorithms=["ES256"]).claims
    assert claims["iat"] == now - 60
    assert type(claims["iat"]) is int


def test_fingerprint_is_twelve_hex_of_sha256() -> None:
    """fingerprint is the first 12 hex characters of the SHA-256 of the secret."""
    assert secret.fingerprint("abc") == hashlib.sha256(b"abc").hexdigest()[:12]
    assert len(secret.fingerprint("x")) == 12


def test_inspect_reads_a_minted_secret(apple_key: secret.AppleKey) -> None:
    """inspect returns the header and claims of a secret and that its signature verifies."""
    live = secret.inspect(mint(apple_key), apple_key.public_key)
    assert (live.alg, live.kid, live.iss, live.sub, live.aud) == (
        "ES256", KEY_ID, TEAM_ID, SERVICES_ID, "https://appleid.apple.com")
    assert (live.iat, live.exp, live.signature_ok) == (NOW - 60, NOW - 60 + LIFETIME, True)


def test_generated_key_is_a_private_p256_pkcs8_file(key_path: Path) -> None:
    """generate_throwaway_key writes an unencrypted PKCS#8 P-256 key with mode 600."""
    assert key_path.read_bytes().startswith(secret.PKCS8_BEGIN.encode() + b"\n")
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    assert isinstance(secret.load_key(key_path.read_bytes(), "k").private_key.curve,
                      ec.SECP256R1)


def test_key_repr_hides_the_key(apple_key: secret.AppleKey, key_path: Path) -> None:
    """repr(AppleKey) names its source but shows no key material."""
    text = repr(apple_key)
    assert "test key" in text
    for line in pem_lines(key_path):
        assert line not in text


# --- loading keys (the module API) -------------------------------------------------


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_load_key_refuses_bad_keys(case: str) -> None:
    """load_key raises AppleKeyError naming the source, without any key line in the message."""
    make, needles = BAD_KEYS[case]
    pem = make()
    with pytest.raises(AppleKeyError) as info:
        secret.load_key(pem, "APPLE_PRIVATE_KEY")
    message = str(info.value)
    assert message.startswith("APPLE_PRIVATE_KEY ")
    for needle in needles:
        assert needle in message
    for line in pem_lines(pem):
        assert line not in message


def test_load_key_refuses_empty_text() -> None:
    """Blank PEM text is refused as empty."""
    with pytest.raises(AppleKeyError, match="is empty"):
        secret.load_key(b" \n", "apple.private_key_file")


def test_key_file_warning_only_for_group_or_other_access(key_path: Path) -> None:
    """Mode 600 gives no warning; 640 and 604 give one that says chmod 600."""
    assert secret.key_file_warning(key_path) is None
    for mode in (0o640, 0o604):
        key_path.chmod(mode)
        warning = secret.key_file_warning(key_path)
        assert warning is not None
        assert "chmod 600" in warning


def test_read_key_file_refuses_a_directory(tmp_path: Path) -> None:
    """A directory given as the key file is refused as such."""
    with pytest.raises(AppleKeyError, match="is a directory"):
        secret.read_key_file(tmp_path, "apple.private_key_file")


# --- every bad key through the real CLI ----------------------------------------------


@pytest.fixture
def mint_env(apple_env: dict[str, str]) -> dict[str, str]:
    """The Apple side of one connection without its key source."""
    return {k: v for k, v in apple_env.items() if k != "APPLE_PRIVATE_KEY_FILE"}


@pytest.fixture(params=["mint", "check-config"])
def with_key(request: pytest.FixtureRequest, mint_env: dict[str, str]) -> Callable[..., Run]:
    """Run `rotator mint` or `rotator check-config` with the given key variables added."""

    def run(**key_env: str) -> Run:
        env = {**mint_env, **key_env}
        if request.param == "check-config":
            env.update(AUTH0_ENV)
        return run_rotator(request.param, env=env)

    return run


def refused(run: Run, *needles: str, secrets: list[str] | tuple[()] = ()) -> None:
    """assert_refused, also checking that the M2M client secret is never shown."""
    assert_refused(run, *needles, secrets=[*secrets, AUTH0_ENV["AUTH0_CLIENT_SECRET"]])


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_bad_key_file_is_refused_by_the_cli(
    tmp_path: Path, with_key: Callable[..., Run], case: str
) -> None:
    """A bad key in APPLE_PRIVATE_KEY_FILE exits 2 naming variable and file, showing none of it."""
    make, needles = BAD_KEYS[case]
    pem = make()
    path = tmp_path / "AuthKey.p8"
    path.write_bytes(pem)
    path.chmod(0o600)
    run = with_key(APPLE_PRIVATE_KEY_FILE=str(path))
    refused(run, f"APPLE_PRIVATE_KEY_FILE ({path})", *needles, secrets=pem_lines(pem))


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_bad_key_in_environment_is_refused_by_the_cli(
    with_key: Callable[..., Run], case: str
) -> None:
    """The same bad key as PEM text in APPLE_PRIVATE_KEY exits 2 naming the variable only."""
    make, needles = BAD_KEYS[case]
    pem = make()
    run = with_key(APPLE_PRIVATE_KEY=pem.decode())
    refused(run, "APPLE_PRIVATE_KEY ", *needles, secrets=pem_lines(pem))


def test_bad_key_file_named_in_config_file_is_refused(
    tmp_path: Path, key_path: Path
) -> None:
    """A P-384 key named by [apple] private_key_file exits 2 naming the file and the key."""
    pem = pkcs8(ec.generate_private_key(ec.SECP384R1()))
    bad = tmp_path / "p384.p8"
    bad.write_bytes(pem)
    conf = tmp_path / "rotator.toml"
    conf.write_text(
        f'[apple]\nteam_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\nprivate_key_file = "{bad}"\n'
        f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n'
    )
    run = run_rotator("mint", "--config", str(conf))
    assert_refused(run, f"{conf} [apple] private_key_file ({bad})", "secp384r1",
                   secrets=pem_lines(pem))


def test_missing_key_file_is_refused(tmp_path: Path, with_key: Callable[..., Run]) -> None:
    """A key path that does not exist exits 2 naming the variable and path."""
    path = tmp_path / "AuthKey_missing.p8"
    refused(with_key(APPLE_PRIVATE_KEY_FILE=str(path)),
            f"APPLE_PRIVATE_KEY_FILE: {path} does not exist", "Apple developer portal")


def test_empty_key_file_is_refused(tmp_path: Path, with_key: Callable[..., Run]) -> None:
    """An empty key file exits 2 saying it is empty."""
    path = tmp_path / "AuthKey_empty.p8"
    path.write_bytes(b"")
    refused(with_key(APPLE_PRIVATE_KEY_FILE=str(path)),
            f"APPLE_PRIVATE_KEY_FILE ({path}) is empty", "Apple developer portal")


def test_directory_as_key_file_is_refused(
    tmp_path: Path, key_path: Path, with_key: Callable[..., Run]
) -> None:
    """A directory as the key file (unreadable as a file, even for root) exits 2 saying so."""
    assert key_path.parent == tmp_path  # a real key sits in that directory
    refused(with_key(APPLE_PRIVATE_KEY_FILE=str(tmp_path)),
            f"APPLE_PRIVATE_KEY_FILE: {tmp_path} is a directory",
            secrets=pem_lines(key_path))


def test_key_path_through_a_file_is_refused(
    key_path: Path, with_key: Callable[..., Run]
) -> None:
    """A key path whose parent is a file (ENOTDIR, fails as root too) exits 2, one line."""
    path = key_path / "AuthKey.p8"
    refused(with_key(APPLE_PRIVATE_KEY_FILE=str(path)),
            f"APPLE_PRIVATE_KEY_FILE: {path} cannot be read (Not a directory)",
            secrets=pem_lines(key_path))


@pytest.fixture
def unreadable_file(key_path: Path) -> Path:
    """A file the current user cannot read: chmod 000, or for root a write-only procfs file."""
    if os.geteuid() != 0:
        key_path.chmod(0)
        return key_path
    if WRITE_ONLY_PROC_FILE.exists() and not os.access(WRITE_ONLY_PROC_FILE, os.R_OK):
        return WRITE_ONLY_PROC_FILE
    pytest.skip("running as root without a write-only procfs file: chmod 000 cannot deny root")


def test_unreadable_key_file_is_refused(
    unreadable_file: Path, with_key: Callable[..., Run]
) -> None:
    """A key file that cannot be read (EACCES) exits 2 saying to make it readable."""
    refused(with_key(APPLE_PRIVATE_KEY_FILE=str(unreadable_file)),
            f"APPLE_PRIVATE_KEY_FILE: {unreadable_file} cannot be read (permission denied)",
            "make it readable")


def test_both_key_sources_are_refused(key_path: Path, apple_env: dict[str, str]) -> None:
    """APPLE_PRIVATE_KEY and APPLE_PRIVATE_KEY_FILE together exit 2 asking to unset one."""
    pem = key_path.read_bytes()
    run = run_rotator("mint", env={**apple_env, "APPLE_PRIVATE_KEY": pem.decode()})
    assert_refused(run, "APPLE_PRIVATE_KEY and APPLE_PRIVATE_KEY_FILE are both set",
                   secrets=pem_lines(pem))


def test_group_readable_key_works_with_a_warning(
    key_path: Path, apple_env: dict[str, str]
) -> None:
    """A key file with mode 0644 still mints (exit 0) and stderr warns to chmod 600 it."""
    key_path.chmod(0o644)
    run = run_rotator("mint", env=apple_env)
    assert run.code == 0, run.output
    assert "readable by group or others" in run.stderr
    assert "chmod 600" in run.stderr
    assert str(key_path) in run.stderr
    assert run.stdout.count(".") == 2
    for line in pem_lines(key_path):
        assert line not in run.output


def test_private_key_file_gives_no_warning(apple_env: dict[str, str]) -> None:
    """A key file with mode 0600 mints with nothing on stderr."""
    run = run_rotator("mint", env=apple_env)
    assert run.code == 0, run.output
    assert run.stderr == ""


def test_a_key_with_literal_backslash_n_escapes_is_taken_as_meant(
    apple_env: dict[str, str], key_path: Path
) -> None:
    """APPLE_PRIVATE_KEY flattened to one line with \\n escapes works like the PEM itself."""
    env = {k: v for k, v in apple_env.items() if k != "APPLE_PRIVATE_KEY_FILE"}
    env["APPLE_PRIVATE_KEY"] = key_path.read_text().strip().replace("\n", "\\n")
    run = run_rotator("mint", env=env)
    assert run.code == 0, run.output
    assert run.stdout.count(".") == 2


def test_the_minted_secret_is_backdated_so_a_clock_a_little_ahead_still_passes(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """With this host 30 s ahead of Apple, the new secret's iat is still in Apple's past."""
    conn = tenant.add(client_secret=None)
    tenant.emu.apple_clock_offset = -30  # Apple's clock 30 s behind ours
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    stored = tenant.stored(conn["id"])["options"]["client_secret"]
    iat = jwt.decode(stored, options={"verify_signature": False})["iat"]
    assert iat <= time.time() - 59
