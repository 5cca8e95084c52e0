"""Rotation end to end: rotator's real Auth0 client against the emulator over TLS."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from auth0_env import SERVICES_ID, EmulatedTenant
from conftest import dump_hook, named, run_cli, run_rotator
from fakes import AlteringTenant, FakeTenant

from rotator import cli, secret
from rotator.emulator import Emulator, Fault
from rotator.modes import Mode
from rotator.seams import Connection


def test_run_now_keeps_every_option_and_display_name(
    tenant: EmulatedTenant, public_key: Any
) -> None:
    """run-now writes only the secret: every other option and display_name survive."""
    conn = tenant.add(client_secret=tenant.mint(age=86400))
    config = tenant.write_config()

    result = run_rotator("run-now", "--config", str(config), "--log-format", "json",
                         process=True)

    assert result.code == 0, result.stderr
    stored = tenant.stored(conn["id"])
    new = stored["options"]["client_secret"]
    assert new != conn["options"]["client_secret"]
    assert {k: v for k, v in stored["options"].items() if k != "client_secret"} == (
        tenant.other_options(conn)
    )
    assert stored["display_name"] == conn["display_name"]
    [patch] = tenant.patches()
    assert set(patch.body) == {"options", "display_name"}
    claims = jwt.decode(new, public_key, algorithms=["ES256"], audience="https://appleid.apple.com")
    assert claims["sub"] == SERVICES_ID
    [rotated] = named(result.stderr, "secret.rotated")
    assert rotated["fingerprint"] == secret.fingerprint(new)
    assert rotated["connection"] == "apple"
    assert rotated["tenant"] == tenant.emu.domain


def test_connection_without_display_name_is_patched_with_options_only(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A connection with no display_name gets a PATCH of options alone."""
    conn = tenant.emu.add_connection({
        "name": "apple", "strategy": "oauth2",
        "options": {"client_id": SERVICES_ID, "scope": "name email"},
    })
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    [patch] = tenant.patches()
    assert set(patch.body) == {"options"}
    assert tenant.stored(conn["id"])["options"]["scope"] == "name email"


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
    return jwt.encode({"iss": "ABCDE12345", "sub": SERVICES_ID}, "a-shared-key-32-bytes-long......",
                      algorithm="HS256")


def _other_key(tenant: EmulatedTenant, tmp_path: Path) -> str:
    path = tmp_path / "other.p8"
    secret.generate_throwaway_key(path)
    other = secret.load_key(path.read_bytes(), "other")
    return secret.mint(other, team_id="ABCDE12345", key_id="ABC123DEFG",
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


def test_dry_run_reads_and_mints_but_writes_nothing(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """--dry-run reports what it would write and sends no PATCH."""
    conn = tenant.add(client_secret=None)
    code, _, err = run_cli("run-now", "--dry-run", "--config", str(tenant.write_config()),
                           capsys=capsys)
    assert code == 0
    assert tenant.patches() == []
    [dry] = named(err, "rotation.dry_run")
    assert dry["would_write"] == ["options", "display_name"]
    assert "client_secret" not in tenant.stored(conn["id"])["options"]


def test_connection_can_be_named_by_id(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A con_ id in `connection` reads the connection by id and rotates it."""
    conn = tenant.add(client_secret=None)
    config = tenant.write_config([(conn["id"], SERVICES_ID)])
    code, _, err = run_cli("run-once", "--config", str(config), capsys=capsys)
    assert code == 0, err
    assert any(r.path == f"/api/v2/connections/{conn['id']}" and r.method == "GET"
               for r in tenant.emu.journal)
    assert "client_secret" in tenant.stored(conn["id"])["options"]


# -- refusals ---------------------------------------------------------------


def test_native_apple_connection_is_refused(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A native `apple` strategy connection is refused: no PATCH, exit 1, and why."""
    tenant.emu.add_connection({"name": "apple", "strategy": "apple",
                               "options": {"client_id": SERVICES_ID}})
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    assert tenant.patches() == []
    [failed] = named(err, "rotation.failed")
    assert "strategy 'apple'" in failed["error"]
    assert "makes its own secret" in failed["error"]


def test_options_hidden_by_missing_scope_is_refused(
    emu: Emulator, tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without read:connections_options the options are absent: refuse rather than wipe them."""
    narrow = EmulatedTenant(
        emu, tmp_path, key_path,
        scopes=("read:connections", "update:connections", "update:connections_options"))
    narrow.add(client_secret=None)
    code, _, err = run_cli("run-now", "--config", str(narrow.write_config()), capsys=capsys)
    assert code == 1
    assert narrow.patches() == []
    [failed] = named(err, "rotation.failed")
    assert "read:connections_options" in failed["error"]
    assert failed["step"] == "read"


def test_foreign_services_id_is_refused(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """options.client_id other than the configured Services ID: refuse, no PATCH."""
    tenant.add(client_secret=None, services_id="com.example.someone-else")
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    assert tenant.patches() == []
    [failed] = named(err, "rotation.failed")
    assert "com.example.someone-else" in failed["error"]
    assert SERVICES_ID in failed["error"]


def test_missing_connection_fails_clearly(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A connection name that does not exist fails that connection with a clear message."""
    code, _, err = run_cli("run-once", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    [failed] = named(err, "rotation.failed")
    assert "no connection named 'apple'" in failed["error"]


# -- faults -------------------------------------------------------------------


def test_rate_limited_twice_then_rotates(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two 429 answers to the read are waited out (Retry-After) and the rotation succeeds."""
    conn = tenant.add(client_secret=None)
    tenant.emu.inject(Fault(method="GET", path="/api/v2/connections", status=429, times=2,
                            retry_after=1))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    statuses = [r.status for r in tenant.emu.journal if r.method == "GET"]
    assert statuses == [429, 429, 200]
    assert "client_secret" in tenant.stored(conn["id"])["options"]


def test_patch_always_failing_gives_up_in_bounded_time(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PATCH answering 500 forever fails the run (exit 1) in bounded time; old secret stays."""
    old = tenant.mint(age=40 * 86400)
    conn = tenant.add(client_secret=old)
    tenant.emu.inject(Fault(method="PATCH", status=500, times=None))
    started = time.monotonic()
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 60
    assert len(tenant.patches()) == 4  # the first try and three retries
    assert tenant.stored(conn["id"])["options"]["client_secret"] == old
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "write"
    assert "500" in failed["error"]


def test_token_expiring_between_read_and_write_is_renewed(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token that expires after the read is renewed once and the write goes through."""
    conn = tenant.add(client_secret=None)
    tenant.emu.inject(Fault(method="GET", path="/api/v2/connections", expire_tokens_after=True))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    token_requests = [r for r in tenant.emu.journal if r.path == "/oauth/token"]
    assert len(token_requests) == 2
    assert [r.status for r in tenant.patches()] == [401, 200]
    assert "client_secret" in tenant.stored(conn["id"])["options"]


def test_dropped_connection_is_retried(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PATCH whose connection drops without an answer is retried and succeeds."""
    conn = tenant.add(client_secret=None)
    tenant.emu.inject(Fault(method="PATCH", drop=True))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    assert [r.status for r in tenant.patches()] == [0, 200]
    assert "client_secret" in tenant.stored(conn["id"])["options"]


def test_untrusted_certificate_fails_with_a_clear_message(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the emulator's CA, TLS verification fails and says how to add a CA."""
    tenant.add(client_secret=None)
    config = tenant.write_config()
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if not line.startswith("ca_bundle")))
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 1
    [failed] = named(err, "rotation.failed")
    assert "not trusted" in failed["error"]
    assert tenant.patches() == []


def test_ssl_cert_file_is_trusted(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SSL_CERT_FILE is trusted for every call, the token request included."""
    tenant.add(client_secret=None)
    config = tenant.write_config()
    config.write_text("\n".join(line for line in config.read_text().splitlines()
                                if not line.startswith("ca_bundle")))
    monkeypatch.setenv("SSL_CERT_FILE", tenant.emu.ca_pem_path)
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 0, err


# -- several connections and tenants -------------------------------------------


def test_one_token_serves_every_connection_of_a_tenant(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three connections on one tenant share one access token."""
    for name in ("apple-a", "apple-b", "apple-c"):
        tenant.add(name, client_secret=None)
    config = tenant.write_config([(n, SERVICES_ID) for n in ("apple-a", "apple-b", "apple-c")])
    code, _, err = run_cli("run-once", "--config", str(config), capsys=capsys)
    assert code == 0, err
    assert len([r for r in tenant.emu.journal if r.path == "/oauth/token"]) == 1
    assert len(tenant.patches()) == 3


def test_two_tenants_three_connections_one_failing(
    tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The failing connection fails alone: the other two rotate, exit 1, the log names it."""
    with Emulator() as first_emu, Emulator() as second_emu:
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        first = EmulatedTenant(first_emu, tmp_path / "a", key_path, name="first")
        second = EmulatedTenant(second_emu, tmp_path / "b", key_path, name="second")
        a = first.add("apple-web", client_secret=None)
        first.add("apple-broken", client_secret=None, services_id="com.example.wrong")
        b = second.add("apple-ios", client_secret=None, services_id="com.example.ios")
        config = tmp_path / "rotator.toml"
        config.write_text(
            first.auth0_toml() + "\n" + first.apple_toml() + "\n"
            '[[connections]]\nconnection = "apple-web"\nclient_id = "com.example.webapp"\n\n'
            '[[connections]]\nconnection = "apple-broken"\nclient_id = "com.example.webapp"\n\n'
            '[[connections]]\nconnection = "apple-ios"\nclient_id = "com.example.ios"\n'
            f'domain = "{second_emu.domain}"\nclient_secret_file = "{second.secret_file}"\n'
            f'ca_bundle = "{second_emu.ca_pem_path}"\n'
            f'token_url = "{second_emu.apple_token_url}"\n'
            f'[connections.auth0]\nclient_id = "{second.client_id}"\n'
        )
        code, _, err = run_cli("run-once", "--config", str(config), capsys=capsys)

        assert code == 1
        assert "client_secret" in first.stored(a["id"])["options"]
        assert "client_secret" in second.stored(b["id"])["options"]
        rotated = {(e["connection"], e["tenant"]) for e in named(err, "secret.rotated")}
        assert rotated == {("apple-web", first_emu.domain), ("apple-ios", second_emu.domain)}
        [failed] = named(err, "rotation.failed")
        assert failed["connection"] == "apple-broken"
        assert failed["tenant"] == first_emu.domain


# -- secrets stay secret -------------------------------------------------------


def test_no_secret_appears_in_a_whole_run(tenant: EmulatedTenant, key_path: Path) -> None:
    """Across run-now, run-once, status and check-config, no secret or token is printed."""
    old = tenant.mint(age=40 * 86400)
    conn = tenant.add(client_secret=old)
    config = str(tenant.write_config())
    outputs = [
        run_rotator(cmd, "--config", config, "--log-format", "json", "--log-level", "debug",
                    process=True)
        for cmd in ("run-now", "run-once", "status", "check-config")
    ]
    outputs.append(run_rotator("check-config", "--online", "--config", config, process=True))
    new = tenant.stored(conn["id"])["options"]["client_secret"]
    assert new != old
    everything = "".join(r.output for r in outputs)
    forbidden = [old, new, tenant.client_secret, *tenant.access_tokens()]
    forbidden += [line for line in key_path.read_text().splitlines() if "-----" not in line]
    assert len(tenant.access_tokens()) >= 1
    for value in forbidden:
        assert value not in everything
    # The signature part alone is a secret too (a JWT's first two parts are not).
    assert new.rsplit(".", 1)[1] not in everything
    [rotated] = named(outputs[0].stderr, "secret.rotated")
    assert rotated["fingerprint"] == secret.fingerprint(new)


# -- status and check-config ---------------------------------------------------


def test_status_json_reports_the_live_secret(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """status --json shows kid, sub, issued/expiry, days left and the due verdict."""
    live = tenant.mint(age=10 * 86400)
    tenant.add(client_secret=live)
    code, out, _ = run_cli("status", "--json", "--config", str(tenant.write_config()),
                           capsys=capsys)
    assert code == 0
    [row] = json.loads(out)
    claims = jwt.decode(live, options={"verify_signature": False})
    assert row["kid"] == "ABC123DEFG"
    assert row["sub"] == SERVICES_ID
    assert (row["issued_at"], row["expires_at"]) == (claims["iat"], claims["exp"])
    assert row["due"] is False
    assert 169 < row["days_left"] < 171
    assert row["due_at"] == claims["iat"] + 30 * 86400
    assert tenant.patches() == []


def test_status_exits_1_for_an_expired_secret(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """An expired live secret makes status exit 1, and the table says it is due."""
    tenant.add(client_secret=tenant.mint(age=3 * 86400, lifetime=2 * 86400))
    code, out, _ = run_cli("status", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    assert "apple" in out
    assert "yes" in out


def test_check_config_online_reads_and_never_writes(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """check-config --online fetches a token and reads each connection, writing nothing."""
    tenant.add(client_secret=None)
    code, out, _ = run_cli("check-config", "--online", "--config", str(tenant.write_config()),
                           capsys=capsys)
    assert code == 0, out
    assert [r.path for r in tenant.emu.journal if r.path == "/oauth/token"] == ["/oauth/token"]
    assert tenant.patches() == []


def test_check_config_online_fails_on_a_refused_token(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong M2M secret makes check-config --online exit 1 with the reason."""
    tenant.add(client_secret=None)
    config = tenant.write_config()
    tenant.secret_file.write_text("wrong-secret-value")
    code, out, _ = run_cli("check-config", "--online", "--config", str(config), capsys=capsys)
    assert code == 1
    assert "401" in out
    assert "wrong-secret-value" not in out


def test_demo_runs_the_whole_flow(capsys: pytest.CaptureFixture[str]) -> None:
    """rotator demo rotates against its own emulator, shows status, and exits 0."""
    code = cli.main(["demo"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert "new secret stored: yes" in out
    assert "writes during run-once: 0" in out


class _CrashingTenant(FakeTenant):
    """The shared fake, whose read fails with an error rotator does not know."""

    def read(self, ref: str) -> Connection:
        raise RuntimeError("unexpected internal failure")


@pytest.mark.parametrize(("level", "traceback_logged"), [("info", False), ("debug", True)])
def test_unexpected_error_fails_one_connection_with_traceback_only_at_debug(
    tenant: EmulatedTenant, level: str, traceback_logged: bool
) -> None:
    """An unknown exception fails its connection (exit 1); its traceback is logged at debug only."""
    import io

    from rotator import config, logs, runner

    stream = io.StringIO()
    logs.configure("json", level, stream)
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    report = runner.run(settings, pool=runner.Pool(auth0=lambda _: _CrashingTenant()))
    assert cli.exit_code(report) == 1
    assert report.outcomes[0].error == "unexpected error: RuntimeError"
    logged = named(stream.getvalue(), "rotation.failed")
    assert [e["step"] for e in logged] == ["read"]
    assert ("Traceback" in stream.getvalue()) is traceback_logged


@pytest.mark.parametrize(
    ("alter", "rotated", "event"),
    [
        (lambda o: o, True, "secret.rotated"),
        (lambda o: {**o, "server_default": True}, True, "verify.options_added"),
        (lambda o: {k: v for k, v in o.items() if k != "scope"}, False, "rotation.failed"),
        (lambda o: {**o, "scope": "email"}, False, "rotation.failed"),
    ],
    ids=["exact", "option-added-by-auth0", "option-lost", "option-changed"],
)
def test_verification_fails_on_any_lost_or_changed_option(
    tenant: EmulatedTenant, alter: Any, rotated: bool, event: str
) -> None:
    """A stored option lost or changed fails verification; one Auth0 adds is only logged."""
    import io

    from rotator import config, logs, runner

    stream = io.StringIO()
    logs.configure("json", "info", stream)
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    side = AlteringTenant(alter, {"client_id": SERVICES_ID, "scope": "name email"})
    report = runner.run(settings, runner.Options(mode=Mode.rotating(force=True)),
                        runner.Pool(auth0=lambda _: side))
    assert report.outcomes[0].rotated is rotated
    assert named(stream.getvalue(), event)
    if not rotated:
        [failed] = named(stream.getvalue(), "rotation.failed")
        assert failed["step"] == "verify"
        assert "scope" in failed["error"]


class _EchoingTenant(AlteringTenant):
    """A tenant refusing the PATCH with an error quoting the body's client_secret, cut off,
    in escaped JSON (as a payload validation error might)."""

    def __init__(self) -> None:
        super().__init__(lambda options: options, {"client_id": SERVICES_ID})
        self.sent: list[str] = []

    def write(self, conn_id: str, body: Any) -> Connection:
        from rotator.errors import Auth0WriteError

        new = str(body["options"]["client_secret"])
        self.sent.append(new)
        quoted = json.dumps(json.dumps({"client_secret": new[:60]}))[1:-1]
        raise Auth0WriteError(f"writing connection {conn_id}: 400 Payload validation: {quoted}")


def test_a_write_error_quoting_the_new_secret_is_redacted_after_the_secret_is_forgotten(
    tenant: EmulatedTenant,
) -> None:
    """The step's error is redacted while the new secret is known: rotation.failed, the
    outcome and the on_failure hook's view carry no 16-character piece of it."""
    import io

    from rotator import config, logs, runner

    stream = io.StringIO()
    logs.configure("json", "info", stream)
    seen: list[str] = []
    side = _EchoingTenant()
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    report = runner.run(settings, runner.Options(
        mode=Mode.rotating(force=True),
        on_failure=lambda conn, outcome: seen.append(outcome.error or "")),
        runner.Pool(auth0=lambda _: side))
    [new] = side.sent
    [outcome] = report.outcomes
    [failed] = named(stream.getvalue(), "rotation.failed")
    assert "Payload validation" in failed["error"]
    for text in (failed["error"], outcome.error or "", *seen):
        assert not [new[i:i + 16] for i in range(len(new) - 15) if new[i:i + 16] in text], text


# -- the truth about a write ---------------------------------------------------------


def test_a_write_whose_answer_is_lost_every_time_but_landed_is_a_rotation(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """PATCH applied, answer dropped on every try: exit 0, secret.rotated, the hook gets it."""
    conn = tenant.add(client_secret=tenant.mint(age=40 * 86400))
    got = tmp_path / "got"
    hook = dump_hook(tmp_path, f'cat > "{got}"\n')
    tenant.emu.inject(Fault(method="PATCH", answer_dropped=True, times=None))
    config = tenant.write_config(extra=f'[hooks]\npost_rotate = ["{hook}"]\n')
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 0, err
    stored = tenant.stored(conn["id"])["options"]["client_secret"]
    [rotated] = named(err, "secret.rotated")
    assert rotated["fingerprint"] == secret.fingerprint(stored)
    assert named(err, "write.answer_lost")
    assert got.read_text().strip() == stored
    assert all(r.status == 0 for r in tenant.patches())


def test_a_write_that_did_not_land_is_reported_with_the_old_secret_in_place(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A PATCH refused outright (403): step write, and the check after says the old one stays."""
    old = tenant.mint(age=40 * 86400)
    conn = tenant.add(client_secret=old)
    tenant.emu.inject(Fault(method="PATCH", status=403, times=None))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "write"
    assert "the old secret is still in place" in failed["error"]
    assert tenant.stored(conn["id"])["options"]["client_secret"] == old
