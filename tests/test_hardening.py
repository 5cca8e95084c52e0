"""Write exactly what was read, report the truth, leak nothing (issue 9).

Over real HTTPS against the emulator, with its faults: answers dropped after the
write landed, raw and truncated bodies, trickled answers, long Retry-After.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import trustme
from auth0_env import SERVICES_ID, EmulatedTenant
from conftest import assert_refused, named, run_cli, run_rotator, wait_for

from rotator import secret
from rotator.emulator import Fault
from rotator.jsonvalue import same
from rotator.modes import Mode

#: Option keys auth0-python's typed update would rename (to camelCase aliases).
ALIAS_LIKE: dict[str, Any] = {
    "use_oauth_spec_scope": True,
    "useOauthSpecScope": False,
    "password_policy": "good",
    "custom_scripts": {"login": "function () {}"},
    "thumbprints_sha_384": ["ab", "cd"],
    "enabled_database_customization": False,
    "enabledDatabaseCustomization": True,
    "validation": {"username": {"min": 1, "max": 15}, "secret_base_64_encoded": True},
    "typed": {"zero": 0, "false": False, "one": 1, "one_point_oh": 1.0, "true": True,
              "null": None, "list": [0, False, 1.0, None, True]},
}






def pieces(value: str, size: int = 20) -> set[str]:
    """Every ``size``-character piece of a secret."""
    return {value[i:i + size] for i in range(max(1, len(value) - size + 1))}


def assert_no_piece(output: str, *secrets: str) -> None:
    """No secret, nor any 20-character piece of one, anywhere in ``output``."""
    for value in secrets:
        leaked = [p for p in pieces(value) if p in output]
        assert not leaked, leaked[:3]


def dump_hook(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "hook.sh"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


# -- exactly what was read ------------------------------------------------------


def test_alias_like_keys_and_typed_values_are_sent_and_stored_exactly(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys the SDK would rename, nested ones and 0/false/1/1.0/true/null travel unchanged."""
    options = {"client_id": SERVICES_ID, **ALIAS_LIKE}
    conn = tenant.emu.add_connection({"name": "apple", "strategy": "oauth2",
                                      "display_name": "Apple", "options": options})
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    [patch] = tenant.patches()
    sent = dict(patch.body["options"])
    new = sent.pop("client_secret")
    assert same(sent, options)
    stored = tenant.stored(conn["id"])["options"]
    assert stored["client_secret"] == new
    assert same({k: v for k, v in stored.items() if k != "client_secret"}, options)


def test_a_patch_body_other_than_the_one_intended_is_never_sent(tenant: EmulatedTenant) -> None:
    """The Auth0 client refuses to send a PATCH it was not asked for; nothing reaches Auth0."""
    from rotator.auth0 import Tenant as Auth0Tenant
    from rotator.client_auth import ClientSecret
    from rotator.deadline import Deadline
    from rotator.errors import Auth0WriteError
    from rotator.settings import Auth0Settings, Trust

    conn = tenant.add(client_secret=None)
    side = Auth0Tenant(Auth0Settings(domain=tenant.emu.domain, client_id=tenant.client_id,
                                     auth=ClientSecret(tenant.client_secret),
                                     trust=Trust(Path(tenant.emu.ca_pem_path))))
    side.serve(Deadline(30))
    try:
        with pytest.raises(Auth0WriteError, match="refused to send a PATCH"):
            side.http.patch(f"{tenant.emu.base_url}/api/v2/connections/{conn['id']}",
                            json={"options": {"client_id": SERVICES_ID}})
    finally:
        side.close()
    assert tenant.patches() == []


@pytest.mark.parametrize(
    ("stored_as", "sent"),
    [(0, False), (False, 0), (1, True), (True, 1), ("1", 1), (None, "")],
    ids=["0-for-false", "false-for-0", "1-for-true", "true-for-1", "string-for-number",
         "null-for-empty"],
)
def test_verification_sees_a_changed_json_type(
    tenant: EmulatedTenant, stored_as: Any, sent: Any
) -> None:
    """An option stored back with another JSON type than sent fails verification."""

    from fakes import AlteringTenant

    from rotator import config, runner

    side = AlteringTenant(lambda options: {**options, "flag": stored_as},
                          {"client_id": SERVICES_ID, "flag": sent})
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    report = runner.run(settings, runner.Options(mode=Mode.rotating(force=True)),
                        runner.Pool(auth0=lambda _: side))
    [outcome] = report.outcomes
    assert (outcome.rotated, outcome.step) == (False, "verify")
    assert "flag" in (outcome.error or "")


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


# -- leaking nothing -----------------------------------------------------------------


def test_debug_runs_leak_nothing_from_unparseable_answers_hooks_or_echoed_errors(
    tenant: EmulatedTenant, tmp_path: Path, key_path: Path
) -> None:
    """Unparseable answers, a hook echoing the secret, Auth0 echoing the M2M secret: no piece."""
    old = tenant.mint(age=40 * 86400)
    tenant.add(client_secret=old)
    hook = dump_hook(tmp_path, "cat >&2\nexit 1\n")  # echoes the new secret, then fails
    config = str(tenant.write_config(extra=f'[hooks]\npost_rotate = ["{hook}"]\n'))
    debug = ("--config", config, "--log-format", "json", "--log-level", "debug")
    outputs = []

    # An answer cut inside the live secret, on every read: run-once and status fail.
    listed = json.dumps([tenant.stored("apple")])
    cut = listed.index(old) + 40
    tenant.emu.inject(Fault(method="GET", truncate=cut, times=None))
    outputs += [run_rotator(cmd, *debug, process=True) for cmd in ("run-once", "status")]
    tenant.emu.clear_faults()
    # Auth0 echoing the M2M secret in its error answers (token and Management API).
    echo = json.dumps({"error": "access_denied",
                       "error_description": f"bad credentials {tenant.client_secret}",
                       "message": f"no, {tenant.client_secret}"}).encode()
    tenant.emu.inject(Fault(path="/oauth/token", status=401, body=echo, times=None))
    outputs += [run_rotator(cmd, *debug, process=True) for cmd in ("run-once", "status")]
    outputs.append(run_rotator("check-config", "--online", "--config", config, process=True))
    tenant.emu.clear_faults()
    tenant.emu.inject(Fault(method="GET", path="/api/v2/", status=403, body=echo, times=None))
    outputs += [run_rotator("status", *debug, process=True),
                run_rotator("check-config", "--online", "--config", config, process=True)]
    tenant.emu.clear_faults()
    # A rotation whose hook prints the new secret on stderr and fails.
    outputs.append(run_rotator("run-now", *debug, process=True))

    assert [r.code for r in outputs] == [1] * len(outputs), [r.output for r in outputs]
    new = tenant.stored("apple")["options"]["client_secret"]
    assert new != old
    everything = "".join(r.output for r in outputs)
    assert "hook.failed" in everything
    assert "[redacted]" in everything
    key_lines = [x for x in key_path.read_text().splitlines() if "-----" not in x]
    assert_no_piece(everything, old, new, tenant.client_secret, *tenant.access_tokens(),
                    *key_lines)


def test_a_ten_megabyte_error_message_becomes_a_short_log_line(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A huge Auth0 error message is cut: no log line over a few kilobytes."""
    tenant.add(client_secret=None)
    huge = json.dumps({"statusCode": 400, "error": "Bad Request",
                       "message": "x" * 10_000_000, "errorCode": "huge"}).encode()
    tenant.emu.inject(Fault(method="GET", path="/api/v2/", status=400, body=huge))
    code, out, err = run_cli("run-once", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    assert max(len(line) for line in (out + err).splitlines()) < 4000
    [failed] = named(err, "rotation.failed")
    assert "more characters cut" in failed["error"]


def signalled(tenant: EmulatedTenant, args: list[str], when: Any, what: str, signum: int
              ) -> tuple[int, str, float]:
    """Run ``rotator ARGS`` as a process, send ``signum`` once ``when()`` holds.

    Returns the exit code, stderr, and how long the process took after the signal.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTH0_", "APPLE_"))}
    proc = subprocess.Popen([sys.executable, "-m", "rotator", *args, "--log-format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(when, 20, what)
        asked = time.monotonic()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=30)
        return proc.returncode, err, time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()


# -- signals --------------------------------------------------------------------------


def test_sigterm_while_the_patch_is_in_flight_finishes_the_rotation_then_says_so(
    tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """SIGTERM during the PATCH: the write completes, is logged and hooked; exit 143."""
    conn = tenant.add(client_secret=tenant.mint(age=40 * 86400))
    got = tmp_path / "got"
    hook = dump_hook(tmp_path, f'cat > "{got}"\n')
    config = tenant.write_config(extra=f'[hooks]\npost_rotate = ["{hook}"]\n')
    tenant.emu.inject(Fault(method="PATCH", delay=1.5))
    code, err, _ = signalled(
        tenant, ["run-once", "--config", str(config)],
        lambda: ("PATCH", f"/api/v2/connections/{conn['id']}") in tenant.emu.in_flight(),
        "the PATCH to be in flight", signal.SIGTERM)
    assert code == 143, err
    stored = tenant.stored(conn["id"])["options"]["client_secret"]
    [rotated] = named(err, "secret.rotated")
    assert rotated["fingerprint"] == secret.fingerprint(stored)
    assert got.read_text().strip() == stored


def test_sigint_before_the_write_abandons_it(tenant: EmulatedTenant) -> None:
    """SIGINT while Apple is being asked: nothing is written, the log says so, exit 130."""
    old = tenant.mint(age=40 * 86400)
    conn = tenant.add(client_secret=old)
    tenant.emu.inject(Fault(path="/auth/token", delay=1.5, after=1))  # the new secret's check
    code, err, _ = signalled(
        tenant, ["run-now", "--config", str(tenant.write_config())],
        lambda: len([r for r in tenant.emu.journal if r.path == "/auth/token"]) == 1
        and tenant.emu.in_flight(), "the new secret's Apple check in flight", signal.SIGINT)
    assert code == 130, err
    assert tenant.patches() == []
    assert tenant.stored(conn["id"])["options"]["client_secret"] == old
    assert named(err, "rotation.abandoned")


def test_sigterm_cuts_a_retry_wait_short(tenant: EmulatedTenant) -> None:
    """SIGTERM while Apple's 503s are being waited out: the process ends at once, 143, no PATCH."""
    tenant.add(client_secret=None)
    tenant.emu.inject(Fault(path="/auth/token", status=503, retry_after=30, times=None))
    code, err, took = signalled(
        tenant, ["run-now", "--config", str(tenant.write_config())],
        lambda: [r for r in tenant.emu.journal if r.path == "/auth/token"],
        "the first answer from Apple (a 503 asking for 30 s)", signal.SIGTERM)
    assert code == 143, err
    assert took < 5
    assert tenant.patches() == []
    assert named(err, "rotation.abandoned")


# -- one connection twice ----------------------------------------------------------------


def test_one_connection_by_name_and_by_id_is_refused_naming_both(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same connection listed by name and by con_ id: no PATCH, exit 1, both entries named."""
    conn = tenant.add(client_secret=None)
    config = tenant.write_config([("apple", SERVICES_ID), (conn["id"], SERVICES_ID)])
    code, _, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 1
    assert tenant.patches() == []
    failed = named(err, "rotation.failed")
    assert len(failed) == 2
    for event in failed:
        assert "#1 ('apple')" in event["error"]
        assert f"#2 ('{conn['id']}')" in event["error"]


# -- the deadline -------------------------------------------------------------------------


@pytest.mark.parametrize("fault", [
    pytest.param(Fault(method="GET", path="/api/v2/", status=429, retry_after=3600),
                 id="retry-after-3600"),
    pytest.param(Fault(method="GET", path="/api/v2/", trickle=0.5), id="trickling-answer"),
])
def test_the_run_ends_by_its_deadline(
    tenant: EmulatedTenant, fault: Fault, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Retry-After of an hour, or an answer a byte at a time: the run ends at its deadline."""
    tenant.add(client_secret=None)
    tenant.emu.inject(fault)
    config = tenant.write_config(extra='[schedule]\ndeadline = "3s"\n')
    began = time.monotonic()
    code, _, err = run_cli("run-once", "--config", str(config), capsys=capsys)
    assert time.monotonic() - began < 6
    assert code == 1
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "read"
    assert "deadline of 3 s" in failed["error"]
    assert tenant.patches() == []


# -- smaller things ------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["APPLE_PRIVATE_KEY_FILE", "AUTH0_CLIENT_SECRET_FILE"])
def test_a_secret_file_at_dev_zero_is_refused_at_once(
    variable: str, apple_env: dict[str, str]
) -> None:
    """/dev/zero as a key or secret file: exit 2 naming the variable, read no further."""
    env = {**apple_env, "AUTH0_DOMAIN": "example.eu.auth0.com", "AUTH0_CLIENT_ID": "m2m",
           "AUTH0_CONNECTION": "apple", "AUTH0_CLIENT_SECRET": "m2m-secret-value", variable:
           "/dev/zero"}
    if variable == "AUTH0_CLIENT_SECRET_FILE":
        del env["AUTH0_CLIENT_SECRET"]
    began = time.monotonic()
    assert_refused(run_rotator("check-config", env=env), variable, "/dev/zero",
                   "character device")
    assert time.monotonic() - began < 10


def test_an_absurd_hook_timeout_is_refused(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """hooks.timeout = "999999999999999d" is refused naming the key (at most 1h)."""
    config = tenant.write_config(extra='[hooks]\ntimeout = "999999999999999d"\n')
    code, _, err = run_cli("check-config", "--config", str(config), capsys=capsys)
    assert code == 2
    assert "[hooks] timeout" in err
    assert "1h" in err


def test_a_key_with_literal_backslash_n_escapes_is_taken_as_meant(
    apple_env: dict[str, str], key_path: Path
) -> None:
    """APPLE_PRIVATE_KEY flattened to one line with \\n escapes works like the PEM itself."""
    env = {k: v for k, v in apple_env.items() if k != "APPLE_PRIVATE_KEY_FILE"}
    env["APPLE_PRIVATE_KEY"] = key_path.read_text().strip().replace("\n", "\\n")
    run = run_rotator("mint", env=env)
    assert run.code == 0, run.output
    assert run.stdout.count(".") == 2


def test_a_certificate_for_another_host_name_is_called_that(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server whose certificate names another host: said so, not 'untrusted CA'."""
    import socket
    import ssl

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("somewhere-else.example").configure_cert(context)
    bundle = tmp_path / "other-ca.pem"
    bundle.write_bytes(ca.cert_pem.bytes())
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            try:
                context.wrap_socket(conn, server_side=True).close()
            except (OSError, ssl.SSLError):
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        text = tenant.write_config(extra='[schedule]\ndeadline = "3s"\n').read_text()
        text = (text.replace(tenant.emu.domain, f"localhost:{port}")
                .replace(tenant.emu.ca_pem_path, str(bundle)))
        config = tmp_path / "wrong-name.toml"
        config.write_text(text)
        code, _, err = run_cli("run-once", "--config", str(config), capsys=capsys)
    finally:
        listener.close()
    assert code == 1
    [failed] = named(err, "rotation.failed")
    assert "is for another host name" in failed["error"]
    assert "check auth0.domain" in failed["error"]
