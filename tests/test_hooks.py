"""Tests for rotator.hooks: the post-rotation hook, directly and through `rotator run-now`."""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import conftest
import jwt
import pytest
from auth0_env import live_secret, register_apple
from conftest import (
    KEY_ID,
    SERVICES_ID,
    TEAM_ID,
    pem_lines,
    pieces,
    run_cli,
    script,
    strict_events,
    strict_named,
    wait_for,
)
from structlog.testing import capture_logs

from rotator import config, hooks, secret
from rotator.emulator import Emulator
from rotator.errors import ConfigError

M2M_ID = "rotator-m2m"
M2M_SECRET = "m2m-secret-for-the-hook-tests"
OPTIONS: dict[str, Any] = {
    "client_id": SERVICES_ID,
    "client_secret": "",
    "scope": "openid name email",
}
EXP = 1_800_000_000
EXP_ISO = datetime.fromtimestamp(EXP, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
SECRET = "eyJhbGciOiJFUzI1NiJ9.a-stand-in-for-the-new-secret.c2lnbmF0dXJl"

# Appends what the hook received (stdin, argv, environment) as one JSON line.
_DUMP = """\
import json, os, sys
record = {"stdin": sys.stdin.read(), "argv": sys.argv, "env": dict(os.environ)}
with open(os.path.join(os.path.dirname(sys.argv[0]), "calls.jsonl"), "a") as out:
    out.write(json.dumps(record) + "\\n")
"""


def recording_hook(tmp_path: Path) -> Path:
    """A hook that records its stdin, argv and environment in calls.jsonl beside it."""
    return script(tmp_path / "dump-hook", _DUMP, interpreter=sys.executable)


def calls(hook: Path) -> list[dict[str, Any]]:
    """What each run of a recording hook received."""
    path = hook.parent / "calls.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_config(
    tmp_path: Path,
    key_path: Path,
    *,
    domain: str,
    ca_bundle: str | None = None,
    hook: list[str] | None = None,
    on_failure: list[str] | None = None,
    hook_timeout: str = "5s",
    secrets_in_files: bool = True,
    token_url: str | None = None,
) -> Path:
    """A config TOML for one connection; secrets from files, or left to the environment."""
    lines = ["[auth0]", f'domain = "{domain}"', f'client_id = "{M2M_ID}"']
    if secrets_in_files:
        secret_file = tmp_path / "auth0_client_secret"
        secret_file.write_text(M2M_SECRET)
        lines.append(f"client_secret_file = {json.dumps(str(secret_file))}")
    if ca_bundle:
        lines.append(f"ca_bundle = {json.dumps(ca_bundle)}")
    lines += ["[apple]", f'team_id = "{TEAM_ID}"', f'key_id = "{KEY_ID}"']
    if token_url:
        lines.append(f'token_url = "{token_url}"')
    if secrets_in_files:
        lines.append(f"private_key_file = {json.dumps(str(key_path))}")
    if hook is not None or on_failure is not None:
        lines += ["[hooks]", f'timeout = "{hook_timeout}"']
    if hook is not None:
        lines.append(f"post_rotate = {json.dumps(hook)}")
    if on_failure is not None:
        lines.append(f"on_failure = {json.dumps(on_failure)}")
    lines += ["[[connections]]", 'connection = "apple"', f'client_id = "{SERVICES_ID}"']
    path = tmp_path / "rotator.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def conn(tmp_path: Path, key_path: Path) -> config.ConnectionSettings:
    """A connection's settings, loaded the way every command loads them."""
    cfg = write_config(tmp_path, key_path, domain="example.eu.auth0.com")
    return config.load(config.Overrides(config=str(cfg)), environ={}).connections[0]


@pytest.fixture
def emu(apple_key: secret.AppleKey) -> Iterator[Emulator]:
    """An emulator with the M2M client, one oauth2 connection with no secret yet, Apple's keys."""
    with Emulator() as emulator:
        register_apple(emulator, apple_key)
        emulator.add_client(M2M_ID, M2M_SECRET)
        emulator.add_connection({"name": "apple", "display_name": "Apple", "options": OPTIONS})
        yield emulator


# -- validate ----------------------------------------------------------------------


def validate(tmp_path: Path, key_path: Path, argv: list[str] | None) -> config.Settings:
    """Load a configuration whose post_rotate is ``argv``: the one validator every command uses."""
    cfg = write_config(tmp_path, key_path, domain="example.eu.auth0.com", hook=argv)
    return config.load(config.Overrides(config=str(cfg)), environ={"PATH": os.environ["PATH"]})


def test_validate_accepts_no_hook_and_a_command_on_path(tmp_path: Path, key_path: Path) -> None:
    """No hook, an absolute executable and a bare name found on PATH all pass."""
    assert validate(tmp_path, key_path, None).hooks.post_rotate is None
    sh = shutil.which("sh")
    assert sh is not None
    assert validate(tmp_path, key_path, [sh, "-c", "true"]).hooks.post_rotate == (sh, "-c", "true")
    validate(tmp_path, key_path, ["sh", "-c", "true"])


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["/nonexistent/hook"], "does not exist"),
        (["no-such-rotator-hook", "--quiet"], "not on PATH"),
    ],
)
def test_validate_refuses_a_missing_command(
    argv: list[str], says: str, tmp_path: Path, key_path: Path
) -> None:
    """A command that is not there is a ConfigError naming hooks.post_rotate."""
    with pytest.raises(ConfigError, match=r"^hooks\.post_rotate: ") as caught:
        validate(tmp_path, key_path, argv)
    assert says in str(caught.value)


def test_validate_refuses_a_file_that_is_not_executable(tmp_path: Path, key_path: Path) -> None:
    """A hook file without the execute bit is refused with the fix (chmod +x)."""
    plain = tmp_path / "hook.sh"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    with pytest.raises(ConfigError, match=r"hooks.post_rotate: .* chmod \+x"):
        validate(tmp_path, key_path, [str(plain)])


# -- Hook, called directly -------------------------------------------------------------


def test_hook_gets_the_secret_on_stdin_and_context_in_its_environment(
    tmp_path: Path, conn: config.ConnectionSettings, monkeypatch: pytest.MonkeyPatch,
    key_path: Path,
) -> None:
    """stdin carries the secret; ROTATOR_* carry the context; argv and env never the secret."""
    monkeypatch.setenv("AUTH0_CLIENT_SECRET", M2M_SECRET)
    monkeypatch.setenv("APPLE_PRIVATE_KEY", key_path.read_text())  # a throwaway key, made now
    hook = recording_hook(tmp_path)
    with capture_logs() as events:
        ok = hooks.Hook([str(hook), "--from-rotator"], timeout=10)(conn, SECRET, EXP)

    assert ok is True
    [call] = calls(hook)
    assert call["stdin"] == SECRET + "\n"
    assert call["argv"] == [str(hook), "--from-rotator"]
    env = call["env"]
    assert env["ROTATOR_CONNECTION"] == "apple"
    assert env["ROTATOR_TENANT"] == "example.eu.auth0.com"
    assert env["ROTATOR_EXPIRES_AT"] == EXP_ISO
    assert "AUTH0_CLIENT_SECRET" not in env
    assert "APPLE_PRIVATE_KEY" not in env
    assert not [k for k, v in env.items() if SECRET in v or M2M_SECRET in v]
    assert [e["event"] for e in events] == ["hook.succeeded"]
    assert SECRET not in json.dumps(events)


def test_hook_that_exits_non_zero_is_logged_as_failed(
    tmp_path: Path, conn: config.ConnectionSettings
) -> None:
    """Exit 3 returns False and logs hook.failed with the exit code and the last stderr line."""
    body = 'cat >/dev/null\necho "starting" >&2\necho "no" >&2\nexit 3\n'
    hook = script(tmp_path / "fail.sh", body)
    with capture_logs() as events:
        ok = hooks.Hook([str(hook)], timeout=10)(conn, SECRET, EXP)

    assert ok is False
    [event] = events
    assert event["event"] == "hook.failed"
    assert event["exit_code"] == 3
    assert event["stderr"] == "no"
    assert (event["connection"], event["tenant"]) == ("apple", "example.eu.auth0.com")


def test_hook_that_outlives_its_timeout_is_killed(
    tmp_path: Path, conn: config.ConnectionSettings
) -> None:
    """A hanging hook is killed at its timeout, returns False and logs hook.failed."""
    pid_file = tmp_path / "pid"
    hook = script(tmp_path / "hang.sh", f'echo $$ > "{pid_file}"\nexec sleep 60\n')
    with capture_logs() as events:
        began = time.monotonic()
        ok = hooks.Hook([str(hook)], timeout=1)(conn, SECRET, EXP)
        took = time.monotonic() - began

    assert ok is False
    assert took < 10
    [event] = events
    assert event["event"] == "hook.failed"
    assert "timed out after 1s" in event["error"]
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_hook_that_cannot_start_is_logged_not_raised(
    tmp_path: Path, conn: config.ConnectionSettings
) -> None:
    """A command gone since start-up, or an argument with a NUL byte, is hook.failed."""
    gone = script(tmp_path / "gone.sh", "exit 0\n")
    gone.unlink()
    true = shutil.which("true")
    assert true is not None
    with capture_logs() as events:
        assert hooks.Hook([str(gone)], timeout=5)(conn, SECRET, EXP) is False
        assert hooks.Hook([true, "bad\x00argument"], timeout=5)(conn, SECRET, EXP) is False

    assert [e["event"] for e in events] == ["hook.failed", "hook.failed"]
    assert all(e["error"].startswith("cannot start") for e in events)


# -- through `rotator run-now` ---------------------------------------------------------


def test_run_now_hands_the_new_secret_to_the_hook(
    emu: Emulator, key_path: Path, tmp_path: Path, rotator: Any
) -> None:
    """run-now pipes the secret it wrote to the hook, and no rotator secret leaks to it."""
    hook = recording_hook(tmp_path)
    cfg = write_config(
        tmp_path, key_path, domain=emu.domain, ca_bundle=emu.ca_pem_path,
        token_url=emu.apple_token_url,
        hook=[str(hook), "--quiet"], secrets_in_files=False,
    )
    pem = key_path.read_text()
    run = rotator(
        "run-now", "--config", str(cfg), "--log-format", "json",
        env={"AUTH0_CLIENT_SECRET": M2M_SECRET, "APPLE_PRIVATE_KEY": pem},
    )

    assert run.code == 0, run.output
    written = live_secret(emu)
    [call] = calls(hook)
    assert call["stdin"].strip() == written
    assert call["argv"] == [str(hook), "--quiet"]
    env = call["env"]
    assert env["ROTATOR_CONNECTION"] == "apple"
    assert env["ROTATOR_TENANT"] == emu.domain
    exp = jwt.decode(written, options={"verify_signature": False})["exp"]
    assert env["ROTATOR_EXPIRES_AT"] == datetime.fromtimestamp(exp, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert "AUTH0_CLIENT_SECRET" not in env
    assert "APPLE_PRIVATE_KEY" not in env
    for value in (written, M2M_SECRET, pem.strip()):
        assert not [k for k, v in env.items() if value in v]
        assert not [a for a in call["argv"] if value in a]
    assert "hook.succeeded" in run.stderr
    assert written not in run.output


def test_run_now_keeps_the_rotation_when_the_hook_fails(
    emu: Emulator, key_path: Path, tmp_path: Path, rotator: Any
) -> None:
    """A hook exiting 3 after run-now: hook.failed, exit 1, and the new secret stays."""
    hook = script(tmp_path / "fail.sh", "exit 3\n")
    cfg = write_config(
        tmp_path, key_path, domain=emu.domain, ca_bundle=emu.ca_pem_path,
        token_url=emu.apple_token_url, hook=[str(hook)]
    )
    run = rotator("run-now", "--config", str(cfg), "--log-format", "json")

    assert run.code == 1, run.output
    events = strict_events(run.stderr)
    names = [e["event"] for e in events]
    assert names.count("secret.rotated") == 1
    assert names.count("hook.failed") == 1
    assert "rotation.failed" not in names
    rotated = next(e for e in events if e["event"] == "secret.rotated")
    live = jwt.decode(live_secret(emu), options={"verify_signature": False})
    assert live["iat"] == rotated["iat"]


def test_run_now_dry_run_does_not_call_the_hook(
    emu: Emulator, key_path: Path, tmp_path: Path, rotator: Any
) -> None:
    """--dry-run writes nothing, so there is nothing to hand to the hook."""
    hook = recording_hook(tmp_path)
    cfg = write_config(
        tmp_path, key_path, domain=emu.domain, ca_bundle=emu.ca_pem_path,
        token_url=emu.apple_token_url, hook=[str(hook)]
    )
    run = rotator("run-now", "--dry-run", "--config", str(cfg), "--log-format", "json")

    assert run.code == 0, run.output
    assert calls(hook) == []
    assert live_secret(emu) == ""


# -- on_failure ------------------------------------------------------------------------


def run_logged(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[dict[str, Any]]]:
    """conftest's run_cli: the exit code and the log events."""
    run = run_cli(*args, capsys=capsys)
    return run.code, conftest.events(run.stderr)


def refuse_at_read(emu: Emulator, key_path: Path) -> str:
    """Give the connection a live secret and another Services ID: rotator refuses it at read."""
    live = secret.mint(secret.load_key(key_path.read_bytes(), "test key"), team_id=TEAM_ID,
                       key_id=KEY_ID, services_id=SERVICES_ID, lifetime=180 * 86400,
                       now=int(time.time()))
    emu.set_connection_options("apple", {**OPTIONS, "client_id": "com.example.somebody-else",
                                         "client_secret": live})
    return live


def test_on_failure_gets_the_failure_in_its_environment_and_no_secret(
    emu: Emulator, key_path: Path, tmp_path: Path, rotator: Any
) -> None:
    """A rotation refused at read runs on_failure once with connection, tenant, step and error.

    No secret reaches it: not the M2M secret nor the .p8 key (both given to
    rotator in its environment here), nor the secret live in the connection;
    not in its environment, its argv or its standard input.
    """
    live = refuse_at_read(emu, key_path)
    page = recording_hook(tmp_path)
    cfg = write_config(
        tmp_path, key_path, domain=emu.domain, ca_bundle=emu.ca_pem_path,
        token_url=emu.apple_token_url, on_failure=[str(page), "--page"], secrets_in_files=False,
    )
    pem = key_path.read_text()
    run = rotator(
        "run-now", "--config", str(cfg), "--log-format", "json",
        env={"AUTH0_CLIENT_SECRET": M2M_SECRET, "APPLE_PRIVATE_KEY": pem},
    )

    assert run.code == 1, run.output
    [call] = calls(page)
    env = call["env"]
    assert env["ROTATOR_CONNECTION"] == "apple"
    assert env["ROTATOR_TENANT"] == emu.domain
    assert env["ROTATOR_STEP"] == "read"
    assert "com.example.somebody-else" in env["ROTATOR_ERROR"]
    assert "not the configured Services ID" in env["ROTATOR_ERROR"]
    assert call["argv"] == [str(page), "--page"]
    assert call["stdin"] == ""
    assert "AUTH0_CLIENT_SECRET" not in env
    assert "APPLE_PRIVATE_KEY" not in env
    for value in (M2M_SECRET, live, *pem_lines(key_path)):
        assert not [k for k, v in env.items() if value in v], "a secret in on_failure's env"
        assert not [a for a in call["argv"] if value in a]
        assert value not in call["stdin"]
    events = strict_events(run.stderr)
    [succeeded] = [e for e in events if e["event"] == "hook.succeeded"]
    assert succeeded["hook"] == "on_failure"
    assert live_secret(emu) == live, "nothing was written"


def test_on_failure_runs_when_the_post_rotate_hook_fails(
    emu: Emulator, key_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A failing post_rotate: the rotation stands, on_failure gets ROTATOR_STEP=hook, exit 1."""
    failing = script(tmp_path / "fail.sh", "cat >/dev/null\nexit 3\n")
    (tmp_path / "pager").mkdir()
    page = recording_hook(tmp_path / "pager")
    cfg = write_config(
        tmp_path, key_path, domain=emu.domain, ca_bundle=emu.ca_pem_path,
        token_url=emu.apple_token_url, hook=[str(failing)], on_failure=[str(page)],
    )
    code, events = run_logged("run-now", "--config", str(cfg), capsys=capsys)

    assert code == 1
    written = live_secret(emu)
    assert written != ""
    [call] = calls(page)
    assert call["env"]["ROTATOR_STEP"] == "hook"
    assert call["env"]["ROTATOR_CONNECTION"] == "apple"
    assert call["env"]["ROTATOR_ERROR"] == "the post_rotate hook failed"
    assert not [k for k, v in call["env"].items() if written in v]
    assert call["stdin"] == ""
    names = [(e["event"], e.get("hook")) for e in events]
    assert ("secret.rotated", None) in names
    assert names.index(("hook.failed", "post_rotate")) < names.index(("hook.succeeded",
                                                                      "on_failure"))


def test_on_failure_does_not_run_when_all_is_well(
    emu: Emulator, key_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rotation that succeeds (its post_rotate too) and a run with nothing due: no on_failure."""
    true = shutil.which("true")
    assert true is not None
    page = recording_hook(tmp_path)
    cfg = write_config(
        tmp_path, key_path, domain=emu.domain, ca_bundle=emu.ca_pem_path,
        token_url=emu.apple_token_url, hook=[true], on_failure=[str(page)],
    )
    assert run_cli("run-now", "--config", str(cfg), capsys=capsys)[0] == 0
    assert run_cli("run-once", "--config", str(cfg), capsys=capsys)[0] == 0

    assert calls(page) == []


def test_a_failing_on_failure_hook_is_logged_and_the_exit_code_stays_1(
    emu: Emulator, key_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """on_failure exiting 4 is logged hook.failed with hook on_failure; run-once still exits 1."""
    refuse_at_read(emu, key_path)
    page = script(tmp_path / "page.sh", 'echo "pager unreachable" >&2\nexit 4\n')
    cfg = write_config(
        tmp_path, key_path, domain=emu.domain, ca_bundle=emu.ca_pem_path,
        token_url=emu.apple_token_url, on_failure=[str(page)],
    )
    code, events = run_logged("run-once", "--config", str(cfg), capsys=capsys)

    assert code == 1
    [failed] = [e for e in events if e["event"] == "hook.failed"]
    assert failed["hook"] == "on_failure"
    assert failed["exit_code"] == 4
    assert failed["stderr"] == "pager unreachable"
    assert (failed["connection"], failed["tenant"]) == ("apple", emu.domain)
    [rotation_failed] = [e for e in events if e["event"] == "rotation.failed"]
    assert rotation_failed["step"] == "read"


@pytest.mark.slow
def test_on_failure_runs_once_for_a_connection_the_deadline_cut_short(
    emu: Emulator, key_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A post_rotate hook outliving the run's deadline: one on_failure call, not a second later.

    The run reports the connection failed at the deadline (step hook) and runs
    on_failure; when the hook then fails too, its worker must not page again.
    """
    release, done = tmp_path / "release", tmp_path / "done"
    slow = script(tmp_path / "slow.sh", (
        "cat >/dev/null\n"
        f'n=0; while [ ! -e "{release}" ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done\n'
        f'touch "{done}"\nexit 1\n'
    ))
    (tmp_path / "pager").mkdir()
    page = recording_hook(tmp_path / "pager")
    cfg = write_config(
        tmp_path, key_path, domain=emu.domain, ca_bundle=emu.ca_pem_path,
        token_url=emu.apple_token_url, hook=[str(slow)], on_failure=[str(page)],
        hook_timeout="20s",
    )
    earlier = set(threading.enumerate())
    code, _ = run_logged("run-now", "--config", str(cfg), "--deadline", "1s", capsys=capsys)
    assert code == 1
    release.touch()
    wait_for(done.exists, 15, "the slow post_rotate hook to end")
    wait_for(lambda: not [t for t in threading.enumerate()
                          if t.name.startswith("tenant-") and t not in earlier],
             15, "the run's worker to finish")

    [call] = calls(page)
    assert call["env"]["ROTATOR_STEP"] == "hook"
    assert "deadline" in call["env"]["ROTATOR_ERROR"]


# -- fragments of a secret in text rotator did not write ---------------------------------


def test_a_hook_printing_part_of_the_new_secrets_signature_is_redacted(
    emu: Emulator, key_path: Path, tmp_path: Path, rotator: Any
) -> None:
    """hook.failed carries no 16-character run of the secret a failing hook echoed in part."""
    hook = script(tmp_path / "leaky.sh",
                  'read s; sig=${s##*.}; echo "bad signature $(echo "$sig" | cut -c3-42)" >&2\n'
                  "exit 1\n")
    cfg = write_config(tmp_path, key_path, domain=emu.domain, ca_bundle=emu.ca_pem_path,
                       token_url=emu.apple_token_url, hook=[str(hook)])
    run = rotator("run-now", "--config", str(cfg), "--log-format", "json")
    assert run.code == 1, run.output
    [failed] = strict_named(run.stderr, "hook.failed")
    assert failed["stderr"].startswith("bad signature ")
    assert "[redacted]" in failed["stderr"]
    new = live_secret(emu)
    assert not [p for p in pieces(new, 16) if p in run.output]


def test_an_auth0_error_quoting_the_client_secret_in_escaped_json_is_redacted(
    emu: Emulator, key_path: Path, tmp_path: Path, rotator: Any
) -> None:
    """A token error echoing part of the M2M secret in escaped JSON: redacted in rotation.failed
    and in the on_failure hook's ROTATOR_ERROR."""
    from rotator.emulator import Fault

    echoed = json.dumps({"client_id": M2M_ID, "client_secret": M2M_SECRET[:24]},
                        separators=(",", ":"))
    description = f"Unauthorized: {json.dumps(echoed)[1:-1]}"  # JSON inside a JSON string
    assert '\\"client_secret\\":\\"m2m-secret' in description
    body = json.dumps({"error": "access_denied", "error_description": description})
    emu.inject(Fault(path="/oauth/token", status=401, body=body.encode(), times=None))
    page = recording_hook(tmp_path)
    cfg = write_config(tmp_path, key_path, domain=emu.domain, ca_bundle=emu.ca_pem_path,
                       token_url=emu.apple_token_url, on_failure=[str(page)])
    run = rotator("run-now", "--config", str(cfg), "--log-format", "json")
    assert run.code == 1, run.output
    [failed] = strict_named(run.stderr, "rotation.failed")
    [call] = calls(page)
    for text in (failed["error"], call["env"]["ROTATOR_ERROR"]):
        assert "Unauthorized" in text
        assert not [p for p in pieces(M2M_SECRET, 16) if p in text], text
    assert not [p for p in pieces(M2M_SECRET, 16) if p in run.output]
