"""Tests for rotator.logs: JSON unless a person watches, one event per line, secrets redacted."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
from pathlib import Path

import pytest
import structlog
from auth0_env import EmulatedTenant
from conftest import (
    assert_no_piece,
    at_terminal,
    dump_hook,
    finish,
    named,
    pem_lines,
    run_cli,
    run_rotator,
)

from rotator import cli, logs, secret
from rotator.emulator import Fault


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_json_when_the_stream_is_not_a_terminal() -> None:
    """With no format asked for, a pipe or file gets one JSON object per line."""
    stream = io.StringIO()
    logs.configure(None, "info", stream)
    logs.get(connection="apple", tenant="t.example").info("rotation.checked", due=False)
    [line] = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "rotation.checked"
    assert (event["connection"], event["tenant"], event["level"]) == ("apple", "t.example", "info")


def test_console_when_the_stream_is_a_terminal() -> None:
    """On a terminal the lines are for people, not JSON."""
    stream = _Terminal()
    logs.configure(None, "info", stream)
    logs.get(connection="apple").info("rotation.checked")
    line = stream.getvalue().strip()
    assert "rotation.checked" in line
    assert not line.startswith("{")


def test_asked_format_wins_over_the_terminal_check() -> None:
    """--log-format json on a terminal still writes JSON."""
    stream = _Terminal()
    logs.configure("json", "info", stream)
    logs.get().info("scheduler.started")
    assert json.loads(stream.getvalue())["event"] == "scheduler.started"


def test_level_filters_lower_events() -> None:
    """At warning level, info events are not written."""
    stream = io.StringIO()
    logs.configure("json", "warning", stream)
    logs.get().info("rotation.checked")
    logs.get().warning("config.warning")
    assert [json.loads(x)["event"] for x in stream.getvalue().splitlines()] == ["config.warning"]


def test_registered_secrets_are_redacted_from_every_field() -> None:
    """A value registered with logs.secret() never reaches a log line, wherever it hides."""
    secret = "eyJhbGciOiJFUzI1NiJ9.not-for-the-logs.c2ln"
    stream = io.StringIO()
    logs.configure("json", "info", stream)
    with logs.secret(secret):
        logs.get().error("rotation.failed", error=f"Auth0 echoed {secret} back", step="write")
    assert secret not in stream.getvalue()
    assert "[redacted]" in stream.getvalue()


def test_rotator_log_format_environment_is_honoured(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], apple_env: dict[str, str]
) -> None:
    """ROTATOR_LOG_FORMAT=json makes warnings JSON even where console would be chosen."""
    for name, value in apple_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROTATOR_LOG_FORMAT", "json")
    monkeypatch.setenv("ROTATOR_SECRET_LIFETIME", "15777000")  # leaves no drift margin: warns
    assert cli.main(["mint"]) == 0
    _, err = capsys.readouterr()
    [warning] = [json.loads(line) for line in err.splitlines()]
    assert warning["event"] == "config.warning"


def test_a_secret_is_forgotten_when_its_block_ends() -> None:
    """logs.secret() redacts only while in use: the redactor holds no secret afterwards."""
    value = "eyJhbGciOiJFUzI1NiJ9.a-secret-in-use.c2ln"
    with logs.secret(value), logs.secret(value):  # registered twice, by two users
        assert logs.scrub(value) == "[redacted]"
    assert len(logs.SECRETS) == 0
    assert logs.scrub(value) == value


def test_redaction_happens_before_a_long_field_is_cut() -> None:
    """A secret straddling the cut point is redacted first, so no piece of it survives."""
    value = "eyJhbGciOiJFUzI1NiJ9.straddling-the-cut.c2lnbmF0dXJl"
    text = "x" * (logs.MAX_FIELD - 10) + value + "y" * 100
    stream = io.StringIO()
    logs.configure("json", "info", stream)
    with logs.secret(value):
        logs.get().error("hook.failed", stderr=text)
    line = stream.getvalue()
    assert value[:10] not in line
    assert "more characters cut" in line


def test_a_failing_stream_is_counted_not_raised() -> None:
    """Writing to a stream whose reader is gone never raises; the failures are counted."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w", encoding="utf-8") as broken:
        logs.configure("json", "info", broken)
        logs.get().info("rotation.checked")
        logs.get().info("rotation.checked")
        assert (logs.STREAM.errors, logs.STREAM.last_failed) == (2, True)
        structlog.reset_defaults()
        with contextlib.suppress(OSError):
            broken.close()


class _Piecemeal(io.StringIO):
    """A stream that writes each string in two pieces, letting other threads in between.

    As a pipe does with a write larger than PIPE_BUF: only the writer's lock
    keeps one line from landing inside another.
    """

    def write(self, text: str) -> int:
        half = len(text) // 2
        super().write(text[:half])
        time.sleep(0)  # yield to any other writer
        return super().write(text[half:]) + half


def test_lines_from_many_threads_stay_whole() -> None:
    """Events logged from eight threads at once come out one whole JSON object per line."""
    stream = _Piecemeal()
    logs.configure("json", "info", stream)

    def chatter(n: int) -> None:
        for i in range(200):
            logs.get(tenant=f"t{n}").info("rotation.checked", i=i, padding="z" * 500)

    threads = [threading.Thread(target=chatter, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1600
    assert all(json.loads(line)["event"] == "rotation.checked" for line in lines)


def test_any_sixteen_character_run_of_a_secret_is_redacted() -> None:
    """A piece of a secret (not the whole) is redacted; text around it and shorter runs stay."""
    value = "m2m-secret-Q8v1Zr7TcXoP4kWm2sLd9Ny"
    with logs.secret(value):
        assert logs.scrub(f"said {value[3:19]} and more") == "said [redacted] and more"
        assert logs.scrub(f"said {value[3:18]}!") == f"said {value[3:18]}!"  # 15: not a run
        assert logs.scrub("com.example.webapp and ordinary words") == \
            "com.example.webapp and ordinary words"


def test_each_segment_of_a_jwt_is_redacted_even_when_short() -> None:
    """A JWT's header, claims and signature segments are each redacted on their own."""
    jwt_like = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
    with logs.secret(jwt_like):
        for segment in jwt_like.split("."):
            assert logs.scrub(f"[{segment}]") == "[[redacted]]"


def test_a_cut_leaves_no_start_of_a_secret_behind() -> None:
    """A secret split by the length cut leaves none of its first characters in the line."""
    value = "eyJhbGciOiJFUzI1NiJ9.straddling-the-cut.c2lnbmF0dXJl"
    text = "words " * 300 + value
    with logs.secret(value):
        cut = logs.scrub(text, len(text) - len(value) + 6)
    assert value[:6] not in cut
    assert cut.endswith("more characters cut]")


# -- leaking nothing from whole runs ----------------------------------------------------


@pytest.mark.slow
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
    assert_no_piece(everything, old, new, tenant.client_secret, *tenant.access_tokens(),
                    *pem_lines(key_path))


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


# -- at a terminal and elsewhere: the real process -------------------------------------


def test_at_a_terminal_the_log_shows_warnings_but_not_info(tenant: EmulatedTenant) -> None:
    """run-once at a terminal: a warning (a group-readable key) shows, rotation.checked does not."""
    tenant.add()
    tenant.key_path.chmod(0o644)
    with at_terminal("run-once", "--config", str(tenant.write_config())) as terminal:
        code, out = finish(terminal)

    assert code == 0, terminal.text
    assert "chmod 600" in terminal.text
    assert "rotation.checked" not in terminal.text
    assert "{" not in terminal.text  # console lines, not JSON
    assert out.splitlines()[-1] == "1 connection: 0 rotated, 1 not due, 0 failed"


def test_at_a_terminal_log_level_info_asks_for_more(tenant: EmulatedTenant) -> None:
    """run-once --log-level info at a terminal: rotation.checked is shown after all."""
    tenant.add()
    with at_terminal("run-once", "--log-level", "info",
                     "--config", str(tenant.write_config())) as terminal:
        code, _ = finish(terminal)

    assert code == 0, terminal.text
    assert "rotation.checked" in terminal.text


def test_elsewhere_the_log_is_json_at_info(tenant: EmulatedTenant) -> None:
    """stderr not a terminal (cron, systemd; here a buffer): JSON lines, info included."""
    tenant.add()
    run = run_rotator("run-once", "--config", str(tenant.write_config()))
    assert run.code == 0, run.stderr
    assert '"event": "rotation.checked"' in run.stderr
    assert '"level": "info"' in run.stderr


@pytest.mark.slow
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
