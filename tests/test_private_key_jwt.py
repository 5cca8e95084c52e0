"""Private Key JWT to Auth0, end to end over TLS against the emulator (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from auth0_env import EmulatedTenant
from conftest import Run, assert_no_piece, run_rotator

from rotator.emulator import Emulator
from rotator.emulator.assertion import JWT_BEARER
from rotator.emulator.cli import write_rsa_key


def events(run: Run, event: str) -> list[dict[str, Any]]:
    found = [json.loads(x) for x in run.stderr.splitlines() if x.startswith("{")]
    return [e for e in found if e["event"] == event]


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
    [failed] = events(run, "rotation.failed")
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
    key_lines = [x for x in tenant.signing_key_file.read_text().splitlines() if "-----" not in x]
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
    key_lines = [x for x in tenant.signing_key_file.read_text().splitlines() if "-----" not in x]
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
