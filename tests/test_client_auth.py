"""Tests for rotator.client_auth: a client secret or a Private Key JWT signing key (issue 17).

Every refusal is exit 2 with one line naming the setting and the fix, checked
by ``run-once`` against a live emulator that must see no request at all. Then
Private Key JWT end to end over TLS against the emulator: a fresh assertion per
token request, what the redactor hides, the rollover runbook.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from auth0_env import EmulatedTenant
from conftest import (
    KEY_ID,
    SERVICES_ID,
    TEAM_ID,
    Run,
    assert_no_piece,
    assert_refused,
    dump_hook,
    named,
    pem_lines,
    rsa_key,
    run_rotator,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from rotator import config
from rotator.client_auth import ClientSecret, PrivateKeyJWT
from rotator.config import Overrides
from rotator.emulator import Emulator
from rotator.emulator.assertion import JWT_BEARER
from rotator.emulator.cli import write_rsa_key

PKCS8 = serialization.PrivateFormat.PKCS8
PEM = serialization.Encoding.PEM


def write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
              fmt: serialization.PrivateFormat = PKCS8,
              encryption: serialization.KeySerializationEncryption | None = None) -> Path:
    path.write_bytes(key.private_bytes(PEM, fmt, encryption or serialization.NoEncryption()))
    path.chmod(0o600)
    return path


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
    key_lines = pem_lines(tenant.signing_key_file)
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
    hook = dump_hook(tmp_path, f"env > {tmp_path / 'hook.env'}\n")
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
        f'[apple]\nteam_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\nprivate_key_file = "{key_path}"\n'
        f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n'
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


# -- Private Key JWT to Auth0, end to end over TLS against the emulator ---------------------


def rotate(tenant: EmulatedTenant, *args: str, command: str = "run-now") -> Run:
    return run_rotator(command, "--config", str(tenant.write_config()), "--log-format", "json",
                       *args)


def assertions(tenant: EmulatedTenant) -> list[str]:
    return [str(form["client_assertion"]) for form in tenant.token_requests()
            if "client_assertion" in form]


@pytest.mark.parametrize("alg", ["RS256", "RS384", "PS256"])
def test_each_algorithm_rotates_with_an_assertion_and_no_client_secret(
    emu: Emulator, tmp_path: Path, key_path: Path, alg: str
) -> None:
    """RS256, RS384, PS256: the rotation lands; the token request carries an assertion only."""
    tenant = EmulatedTenant(emu, tmp_path, key_path, signing_alg=alg)
    conn = tenant.add(client_secret=None)
    run = rotate(tenant)
    assert run.code == 0, run.output
    assert "client_secret" in tenant.stored(conn["id"])["options"]
    [form] = tenant.token_requests()
    assert "client_secret" not in form
    assert form["client_assertion_type"] == JWT_BEARER
    assert form["client_id"] == tenant.client_id
    header = jwt.get_unverified_header(form["client_assertion"])
    claims = jwt.decode(form["client_assertion"], options={"verify_signature": False})
    assert header["alg"] == alg
    assert claims["iss"] == claims["sub"] == tenant.client_id
    assert claims["aud"] == f"https://{emu.domain}/"
    assert 0 < claims["exp"] - claims["iat"] <= 300


def test_two_runs_in_a_row_each_send_a_fresh_assertion_and_a_replay_is_refused(
    emu: Emulator, tmp_path: Path, key_path: Path
) -> None:
    """Two run-now in a row both rotate, with a new jti each; resending one is refused."""
    tenant = EmulatedTenant(emu, tmp_path, key_path, signing_alg="RS256")
    conn = tenant.add(client_secret=None)
    first = rotate(tenant)
    secret_one = tenant.stored(conn["id"])["options"]["client_secret"]
    second = rotate(tenant)
    assert (first.code, second.code) == (0, 0), first.output + second.output
    assert tenant.stored(conn["id"])["options"]["client_secret"] != secret_one
    sent = assertions(tenant)
    jtis = [jwt.decode(a, options={"verify_signature": False})["jti"] for a in sent]
    assert len(sent) == 2
    assert len(set(jtis)) == 2
    replay = {"grant_type": "client_credentials", "client_id": tenant.client_id,
              "client_assertion_type": JWT_BEARER, "client_assertion": sent[0],
              "audience": emu.audience}
    with httpx.Client(verify=emu.client_ssl_context()) as http:
        answer = http.post(f"{emu.base_url}/oauth/token", data=replay)
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert "already been used" in answer.json()["error_description"]


def test_check_config_online_proves_the_whole_path(
    emu: Emulator, tmp_path: Path, key_path: Path
) -> None:
    """check-config --online signs an assertion, gets a token with its scopes, reads."""
    tenant = EmulatedTenant(emu, tmp_path, key_path, signing_alg="PS256")
    tenant.add()
    run = run_rotator("check-config", "--online", "--config", str(tenant.write_config()))
    assert run.code == 0, run.output
    assert len(assertions(tenant)) == 1
    assert tenant.patches() == []


def test_an_unregistered_key_fails_at_the_token_step_naming_what_to_check(
    emu: Emulator, tmp_path: Path, key_path: Path
) -> None:
    """A key whose public half Auth0 does not hold: exit 1, step token, client and alg named."""
    tenant = EmulatedTenant(emu, tmp_path, key_path, signing_alg="RS384")
    conn = tenant.add()
    write_rsa_key(tenant.signing_key_file)  # a new key: its public half is registered nowhere
    run = rotate(tenant, command="run-once")
    assert run.code == 1, run.output
    [failed] = named(run.stderr, "rotation.failed")
    assert failed["step"] == "token"
    assert "answered 401 invalid_client" in failed["error"]
    assert "Private Key JWT was refused" in failed["error"]
    assert f"a credential of client {tenant.client_id}" in failed["error"]
    assert "registered for alg RS384" in failed["error"]
    assert str(tenant.signing_key_file) in failed["error"]
    assert tenant.patches() == []
    assert tenant.stored(conn["id"])["options"]["client_secret"] == conn["options"][
        "client_secret"]


def test_a_custom_domain_is_the_assertions_audience(tmp_path: Path, key_path: Path) -> None:
    """With a custom domain as auth0.domain, aud is that domain with its slash, and it works."""
    canonical = "https://tenant.emulated.auth0.com/api/v2/"
    with Emulator(audience=canonical) as emu:
        tenant = EmulatedTenant(emu, tmp_path, key_path, signing_alg="RS256")
        conn = tenant.add(client_secret=None)
        config = tenant.write_config()
        config.write_text(config.read_text().replace(
            "[auth0]\n", f'[auth0]\naudience = "{canonical}"\n'))
        run = run_rotator("run-now", "--config", str(config))
        assert run.code == 0, run.output
        assert "client_secret" in tenant.stored(conn["id"])["options"]
        [sent] = assertions(tenant)
        aud = jwt.decode(sent, options={"verify_signature": False})["aud"]
        assert aud == f"https://{emu.domain}/"
        assert aud != "https://tenant.emulated.auth0.com/"


@pytest.mark.slow
def test_whole_runs_leak_neither_the_rsa_key_nor_any_assertion(
    emu: Emulator, tmp_path: Path, key_path: Path
) -> None:
    """Debug runs of every command, and a refused key: no piece of the key or of any JWT sent."""
    tenant = EmulatedTenant(emu, tmp_path, key_path, signing_alg="RS256")
    tenant.add(client_secret=tenant.mint(age=40 * 86400))
    config = str(tenant.write_config())
    debug = ("--config", config, "--log-format", "json", "--log-level", "debug")
    runs = [run_rotator(cmd, *debug) for cmd in ("run-once", "status", "run-now")]
    runs.append(run_rotator("check-config", "--online", "--config", config))
    assert [r.code for r in runs] == [0, 0, 0, 0], [r.output for r in runs]
    emu.remove_client_key(tenant.client_id, tenant.credential)
    refused = [run_rotator(cmd, *debug, process=True) for cmd in ("run-once", "status")]
    assert [r.code for r in refused] == [1, 1], [r.output for r in refused]
    sent = assertions(tenant)
    assert len(sent) == 6
    everything = "".join(r.output for r in runs + refused)
    assert "Private Key JWT was refused" in everything
    key_lines = pem_lines(tenant.signing_key_file)
    assert_no_piece(everything, *sent, *key_lines, *tenant.access_tokens())


def test_the_key_and_the_assertion_sent_are_redacted_while_the_tenant_is_in_use(
    emu: Emulator, tmp_path: Path, key_path: Path
) -> None:
    """The redactor hides the key's lines and the last assertion; closing forgets the assertion."""
    from rotator import logs
    from rotator.auth0 import Tenant as Auth0Tenant
    from rotator.client_auth import load_signing_key
    from rotator.deadline import Deadline
    from rotator.settings import Auth0Settings, Trust

    tenant = EmulatedTenant(emu, tmp_path, key_path, signing_alg="PS256")
    auth = load_signing_key(tenant.signing_key_file.read_bytes(), "test", "PS256")
    side = Auth0Tenant(Auth0Settings(domain=emu.domain, client_id=tenant.client_id, auth=auth,
                                     trust=Trust(Path(emu.ca_pem_path))))
    side.serve(Deadline(30))
    key_lines = pem_lines(tenant.signing_key_file)
    try:
        assert side.granted_scopes()
        [sent] = assertions(tenant)
        for value in (sent, *key_lines, tenant.signing_key_file.read_text().strip()):
            assert logs.scrub(f"said {value}") == f"said {logs.REDACTED}"
    finally:
        side.close()
    assert logs.scrub(sent) == sent
    assert logs.scrub(key_lines[0]) == key_lines[0]


def test_a_retried_token_request_carries_a_new_assertion(
    emu: Emulator, tmp_path: Path, key_path: Path
) -> None:
    """A 503 on the token request: the retry is signed afresh (new jti), and the run works."""
    from rotator.emulator import Fault

    tenant = EmulatedTenant(emu, tmp_path, key_path, signing_alg="RS256")
    tenant.add(client_secret=None)
    emu.inject(Fault(path="/oauth/token", status=503, times=1))
    run = rotate(tenant)
    assert run.code == 0, run.output
    first, second = assertions(tenant)
    jtis = {jwt.decode(a, options={"verify_signature": False})["jti"] for a in (first, second)}
    assert len(jtis) == 2


def test_the_rollover_runbook_keeps_every_run_working(
    emu: Emulator, tmp_path: Path, key_path: Path
) -> None:
    """Add a second credential, switch rotator to its key, remove the old: no run fails."""
    tenant = EmulatedTenant(emu, tmp_path, key_path, signing_alg="RS256")
    tenant.add()
    config = tenant.write_config()
    old_key, new_key = tenant.signing_key_file, tmp_path / "auth0_m2m_key-2.pem"

    def check() -> int:
        return run_rotator("check-config", "--online", "--config", str(config)).code

    new = emu.add_client_key(tenant.client_id, write_rsa_key(new_key), "PS256")  # 1. add
    assert check() == 0
    config.write_text(config.read_text().replace(str(old_key), str(new_key))
                      .replace('"RS256"', '"PS256"'))  # 2. switch rotator
    assert check() == 0
    emu.remove_client_key(tenant.client_id, tenant.credential)  # 3. remove the old
    assert check() == 0
    emu.remove_client_key(tenant.client_id, new)
    assert check() == 1
