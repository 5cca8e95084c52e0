"""Logging: JSON unless a person watches, one event per line, secrets redacted."""

from __future__ import annotations

import io
import json

import pytest

from rotator import cli, logs


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
