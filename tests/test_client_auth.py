"""Client authentication settings: a client secret or a Private Key JWT signing key (issue 17).

Every refusal is exit 2 with one line naming the setting and the fix, checked
by ``run-once`` against a live emulator that must see no request at all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from auth0_env import EmulatedTenant
from conftest import assert_refused, run_rotator
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rotator import config
from rotator.client_auth import ClientSecret, PrivateKeyJWT
from rotator.config import Overrides
from rotator.emulator import Emulator

PKCS8 = serialization.PrivateFormat.PKCS8
PEM = serialization.Encoding.PEM


def write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
              fmt: serialization.PrivateFormat = PKCS8,
              encryption: serialization.KeySerializationEncryption | None = None) -> Path:
    path.write_bytes(key.private_bytes(PEM, fmt, encryption or serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def rsa_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


@pytest.fixture
def pkjwt(emu: Emulator, tmp_path: Path, key_path: Path) -> EmulatedTenant:
    """An emulated tenant whose M2M client has only an RS256 public key."""
    return EmulatedTenant(emu, tmp_path, key_path, signing_alg="RS256")


def key_file_line(tenant: EmulatedTenant) -> str:
    return f'client_assertion_signing_key_file = "{tenant.signing_key_file}"\n'


def refused_run(tenant: EmulatedTenant, toml: str, env: dict[str, str] | None = None,
                *needles: str) -> None:
    """run-once with this config text: exit 2, one line with the needles, no request made."""
    tenant.add()
    path = tenant.tmp / "refused.toml"
    path.write_text(toml)
    run = run_rotator("run-once", "--config", str(path), env=env)
    key_lines = [x for x in tenant.signing_key_file.read_text().splitlines() if "-----" not in x]
    assert_refused(run, *needles, secrets=[*key_lines, tenant.client_secret])
    assert tenant.emu.journal == []


# Each case: how it spoils the tenant's valid Private Key JWT configuration.
Spoil = Callable[[EmulatedTenant, str], tuple[str, dict[str, str], tuple[str, ...]]]


def _both_files(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    t.secret_file.write_text(t.client_secret)
    return (toml.replace("[auth0]\n", f'[auth0]\nclient_secret_file = "{t.secret_file}"\n'), {},
            ("both a client secret", "[auth0] client_secret_file",
             "[auth0] client_assertion_signing_key_file", "remove the client secret"))


def _env_secret(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    return toml, {"AUTH0_CLIENT_SECRET": t.client_secret}, (
        "both a client secret (AUTH0_CLIENT_SECRET)", "client_assertion_signing_key_file")


def _env_key(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    t.secret_file.write_text(t.client_secret)
    toml = toml.replace(key_file_line(t), f'client_secret_file = "{t.secret_file}"\n')
    return toml, {"AUTH0_CLIENT_ASSERTION_SIGNING_KEY": t.signing_key_file.read_text()}, (
        "both a client secret", "(AUTH0_CLIENT_ASSERTION_SIGNING_KEY)")


def _ec_key(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    write_key(t.signing_key_file, ec.generate_private_key(ec.SECP256R1()))
    return toml, {}, ("client_assertion_signing_key_file", "holds an EC key",
                      "RSA key of 2048 to 4096 bits", "openssl genpkey -algorithm RSA")


def _small_key(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    write_key(t.signing_key_file, rsa_key(1024))
    return toml, {}, ("client_assertion_signing_key_file", "a 1024-bit RSA key",
                      "Auth0 accepts 2048 to 4096 bits", "rsa_keygen_bits:2048")


def _large_key(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    write_key(t.signing_key_file, rsa_key(4104))
    return toml, {}, ("client_assertion_signing_key_file", "a 4104-bit RSA key",
                      "Auth0 accepts 2048 to 4096 bits")


def _encrypted(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    write_key(t.signing_key_file, rsa_key(2048),
              encryption=serialization.BestAvailableEncryption(b"passphrase"))
    return toml, {}, ("client_assertion_signing_key_file", "is an encrypted PEM key",
                      "openssl pkey -in KEY -out KEY.pem")


def _unknown_alg(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    return toml.replace('client_assertion_signing_alg = "RS256"',
                        'client_assertion_signing_alg = "HS256"'), {}, (
        "[auth0] client_assertion_signing_alg = 'HS256'", "use RS256, RS384 or PS256")


def _env_alg(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    return toml, {"AUTH0_CLIENT_ASSERTION_SIGNING_ALG": "ES256"}, (
        "AUTH0_CLIENT_ASSERTION_SIGNING_ALG = 'ES256'", "use RS256, RS384 or PS256")


def _not_pem(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    t.signing_key_file.write_text("this is no key at all\n")
    return toml, {}, ("client_assertion_signing_key_file", "is not a PEM key")


def _broken_pem(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    label = "PRIVATE KEY"
    t.signing_key_file.write_text(f"-----BEGIN {label}-----\nAAAAnotakey\n-----END {label}-----\n")
    return toml, {}, ("client_assertion_signing_key_file", "is not a readable PEM private key")


def _public_key(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    public = rsa_key(2048).public_key().public_bytes(
        PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    t.signing_key_file.write_bytes(public)
    return toml, {}, ("client_assertion_signing_key_file", "holds a public key",
                      "give the private key")


def _missing(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    gone = t.tmp / "nowhere" / "key.pem"
    return toml.replace(str(t.signing_key_file), str(gone)), {}, (
        "client_assertion_signing_key_file", f"{gone} does not exist")


def _alg_without_key(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    t.secret_file.write_text(t.client_secret)
    toml = toml.replace(key_file_line(t), f'client_secret_file = "{t.secret_file}"\n')
    return toml, {}, ("client_assertion_signing_alg is set, but no signing key",
                      "set auth0.client_assertion_signing_key_file")


def _key_in_toml(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    return toml.replace(key_file_line(t), 'client_assertion_signing_key = "MIIE..."\n'), {}, (
        "unknown key 'client_assertion_signing_key'", "AUTH0_CLIENT_ASSERTION_SIGNING_KEY")


def _both_env(t: EmulatedTenant, toml: str) -> tuple[str, dict[str, str], tuple[str, ...]]:
    return toml, {"AUTH0_CLIENT_ASSERTION_SIGNING_KEY": t.signing_key_file.read_text(),
                  "AUTH0_CLIENT_ASSERTION_SIGNING_KEY_FILE": str(t.signing_key_file)}, (
        "AUTH0_CLIENT_ASSERTION_SIGNING_KEY and AUTH0_CLIENT_ASSERTION_SIGNING_KEY_FILE",
        "unset one")


CASES: dict[str, Spoil] = {
    "secret-file-and-key-file": _both_files,
    "secret-env-and-key-file": _env_secret,
    "key-env-and-secret-file": _env_key,
    "ec-key": _ec_key,
    "rsa-1024": _small_key,
    "rsa-over-4096": _large_key,
    "encrypted-key": _encrypted,
    "unknown-alg": _unknown_alg,
    "unknown-alg-from-env": _env_alg,
    "not-pem": _not_pem,
    "malformed-pem": _broken_pem,
    "public-key": _public_key,
    "missing-file": _missing,
    "alg-without-key": _alg_without_key,
    "key-in-toml": _key_in_toml,
    "key-and-key-file-in-env": _both_env,
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_bad_client_authentication_is_exit_2_with_nothing_contacted(
    pkjwt: EmulatedTenant, case: str
) -> None:
    """Both kinds, not RSA, too small or large, encrypted, bad alg or PEM, missing: exit 2."""
    toml = pkjwt.write_config().read_text()
    assert key_file_line(pkjwt) in toml
    spoiled, env, needles = CASES[case](pkjwt, toml)
    refused_run(pkjwt, spoiled, env, *needles)


def test_the_key_from_the_environment_in_pkcs1_on_one_line_works_and_hooks_never_see_it(
    pkjwt: EmulatedTenant, tmp_path: Path
) -> None:
    """AUTH0_CLIENT_ASSERTION_SIGNING_KEY: a one-line PKCS#1 PEM works; a hook does not get it."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    key = load_pem_private_key(pkjwt.signing_key_file.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    pkcs1 = write_key(tmp_path / "pkcs1.pem", key, serialization.PrivateFormat.TraditionalOpenSSL)
    flat = pkcs1.read_text().strip().replace("\n", "\\n")
    conn = pkjwt.add(client_secret=None)
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\nenv > {tmp_path / 'hook.env'}\n")
    hook.chmod(0o755)
    toml = pkjwt.write_config(extra=f'[hooks]\npost_rotate = ["{hook}"]\n').read_text()
    path = tmp_path / "env-key.toml"
    path.write_text(toml.replace(key_file_line(pkjwt), ""))
    run = run_rotator("run-now", "--config", str(path),
                      env={"AUTH0_CLIENT_ASSERTION_SIGNING_KEY": flat})
    assert run.code == 0, run.output
    assert "client_secret" in pkjwt.stored(conn["id"])["options"]
    assert "client_assertion" in pkjwt.token_requests()[0]
    body = flat.split("\\n")[1:-1]
    assert all(line not in run.output for line in body)
    hook_env = (tmp_path / "hook.env").read_text()
    assert "ROTATOR_CONNECTION=apple" in hook_env
    assert "AUTH0_CLIENT_ASSERTION_SIGNING_KEY" not in hook_env
    assert all(line not in hook_env for line in body)


def test_a_connections_own_credential_replaces_the_inherited_one(
    tmp_path: Path, key_path: Path
) -> None:
    """[auth0] has a client secret; one entry's own signing key (and alg) wins for it alone."""
    secret = tmp_path / "secret"
    secret.write_text("inherited-client-secret")
    signing = write_key(tmp_path / "partner.pem", rsa_key(2048))
    path = tmp_path / "rotator.toml"
    path.write_text(
        f'[auth0]\ndomain = "example.eu.auth0.com"\nclient_id = "m2m"\n'
        f'client_secret_file = "{secret}"\n'
        f'[apple]\nteam_id = "ABCDE12345"\nkey_id = "ABC123DEFG"\nprivate_key_file = "{key_path}"\n'
        '[[connections]]\nconnection = "apple"\nclient_id = "com.example.webapp"\n'
        '[[connections]]\nconnection = "partner"\nclient_id = "com.example.partner"\n'
        f'[connections.auth0]\ndomain = "partner.us.auth0.com"\nclient_id = "partner-m2m"\n'
        f'client_assertion_signing_key_file = "{signing}"\n'
        'client_assertion_signing_alg = "PS256"\n'
    )
    first, second = config.load(Overrides(config=str(path)), {}).connections
    assert first.auth0 is not None
    assert second.auth0 is not None
    assert first.auth0.auth == ClientSecret("inherited-client-secret")
    assert isinstance(second.auth0.auth, PrivateKeyJWT)
    assert second.auth0.auth.alg == "PS256"
    assert str(signing) in second.auth0.auth.source
    assert "inherited-client-secret" not in repr(first.auth0)


def test_check_config_says_how_the_client_authenticates_and_warns_of_a_0644_key(
    pkjwt: EmulatedTenant
) -> None:
    """check-config names Private Key JWT, its alg and key file; mode 0644 earns a warning."""
    os.chmod(pkjwt.signing_key_file, 0o644)
    run = run_rotator("check-config", "--config", str(pkjwt.write_config()))
    assert run.code == 0, run.output
    assert (f"M2M client {pkjwt.client_id} authenticates with Private Key JWT (RS256, the key "
            "in ") in run.stdout
    assert f"({pkjwt.signing_key_file}))" in run.stdout
    assert "client_assertion_signing_key_file" in run.stderr
    assert "chmod 600" in run.stderr
