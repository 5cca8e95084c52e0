"""Helpers shared by the emulator's tests (tests/test_emulator_*.py).

A test module uses the ``emu`` and ``http`` fixtures by importing
:func:`sample_emu` and :func:`sample_http` (pytest registers them under those
names) and naming them once, so that linters see them used.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Run, run_rotator

from rotator.emulator import Emulator

SECRET = "full-secret-value"
NO_OPTIONS_SCOPES = ("read:connections", "update:connections")
OPTIONS = {
    "client_id": "com.example.webapp",
    "client_secret": "old-secret",
    "scope": "openid name email",
}


@contextmanager
def sample_emulator(**kwargs: Any) -> Iterator[Emulator]:
    """An emulator with clients of three scope sets and one oauth2 connection."""
    with Emulator(**kwargs) as emulator:
        emulator.add_client("full", SECRET)
        emulator.add_client("noopts", "noopts-secret", scopes=NO_OPTIONS_SCOPES)
        emulator.add_client("readonly", "readonly-secret", scopes=("read:connections_options",))
        emulator.add_connection(
            {"name": "apple", "display_name": "Apple", "options": dict(OPTIONS)}
        )
        yield emulator


@pytest.fixture(name="emu")
def sample_emu() -> Iterator[Emulator]:
    """Fixture `emu`: a started sample emulator (see sample_emulator)."""
    with sample_emulator() as emulator:
        yield emulator


@pytest.fixture(name="http")
def sample_http(emu: Emulator) -> Iterator[httpx.Client]:
    """Fixture `http`: an httpx client for `emu` that trusts only its CA."""
    with client_for(emu) as client:
        yield client


@contextmanager
def client_for(emu: Emulator, **kwargs: Any) -> Iterator[httpx.Client]:
    """An httpx client for the emulator that trusts only its CA."""
    context = ssl.create_default_context(cafile=emu.ca_pem_path)
    options: dict[str, Any] = {"timeout": 10} | kwargs
    with httpx.Client(base_url=emu.base_url, verify=context, **options) as client:
        yield client


def token_request(emu: Emulator, client_id: str = "full", secret: str = SECRET) -> dict[str, str]:
    """Form fields of a client-credentials token request."""
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "audience": emu.audience,
    }


def get_token(
    http: httpx.Client, emu: Emulator, client_id: str = "full", secret: str = SECRET
) -> str:
    """A fresh access token for the client."""
    response = http.post("/oauth/token", data=token_request(emu, client_id, secret))
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    """An Authorization header for the token."""
    return {"Authorization": f"Bearer {token}"}


def conn_id(emu: Emulator, name: str = "apple") -> str:
    """The stored id of a connection."""
    return str(emu.connection(name)["id"])


def assert_auth0_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is an Auth0-shaped error with this status and errorCode."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body: dict[str, Any] = response.json()
    assert set(body) == {"statusCode", "error", "message", "errorCode"}
    assert body["statusCode"] == status
    assert body["errorCode"] == code
    return body


# -- `rotator emulator` as a child process --------------------------------------------


@contextmanager
def serving(argv: list[str], cwd: Path) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    """An emulator started by ``argv`` in ``cwd``; the lines it printed up to "Ctrl-C to stop."."""
    with subprocess.Popen(
        argv, cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            lines: list[str] = []
            deadline = time.monotonic() + 60
            while not lines or not lines[-1].startswith("Ctrl-C"):
                assert time.monotonic() < deadline, lines
                line = proc.stdout.readline()
                assert line, "".join(lines) + (proc.stderr.read() if proc.stderr else "")
                lines.append(line)
            yield proc, lines
        finally:
            if proc.poll() is None:
                proc.kill()


@contextmanager
def emulator(folder: Path, *args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`rotator emulator ARGS` started in ``folder``; its output up to "Ctrl-C to stop."."""
    folder.mkdir(parents=True, exist_ok=True)
    with serving([sys.executable, "-m", "rotator", "emulator", *args], folder) as (proc, lines):
        yield proc, "".join(lines)


def stop(proc: subprocess.Popen[str], signum: int) -> int:
    """Send ``signum`` and return the exit code (within a deadline)."""
    proc.send_signal(signum)
    return proc.wait(timeout=15)


def elsewhere(tmp_path: Path, *args: str) -> Run:
    """A rotator command run from a folder that is not the configuration's."""
    other = tmp_path / "elsewhere"
    other.mkdir(exist_ok=True)
    return run_rotator(*args, cwd=other)
