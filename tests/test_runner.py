"""Tests for rotator.runner: a deadline hit mid-step names the step it interrupted."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import KEY_ID, SERVICES_ID, TEAM_ID
from fakes import FakeApple, FakeTenant

from rotator import config, runner, secret
from rotator.emulator import Fault


def _settings(tmp_path: Path, key_path: Path) -> config.Settings:
    """One connection on a fake tenant, with a run deadline of 1 s."""
    (tmp_path / "m2m").write_text("m2m-secret\n")
    (tmp_path / "rotator.toml").write_text(f"""
[auth0]
domain = "fake.auth0.test"
client_id = "fake-m2m"
client_secret_file = {json.dumps(str(tmp_path / "m2m"))}
[apple]
team_id = "{TEAM_ID}"
key_id = "{KEY_ID}"
private_key_file = {json.dumps(str(key_path))}
[schedule]
deadline = "1s"
[[connections]]
connection = "apple"
client_id = "{SERVICES_ID}"
""")
    return config.load(config.Overrides(config=str(tmp_path / "rotator.toml")), environ={})


@pytest.mark.parametrize(("path", "step"), [
    pytest.param("/oauth/token", "token", id="token"),
    pytest.param("/auth/token", "apple_check", id="apple-on-the-live-secret"),
])
def test_a_deadline_passing_mid_step_names_that_step(
    tmp_path: Path, key_path: Path, path: str, step: str
) -> None:
    """A token request or Apple's word on the live secret outliving the deadline is named."""
    settings = _settings(tmp_path, key_path)
    conn = settings.connections[0]
    side = FakeTenant()
    live = secret.mint(conn.apple.key, team_id=TEAM_ID, key_id=KEY_ID, services_id=SERVICES_ID,
                       lifetime=settings.schedule.secret_lifetime, now=int(time.time()))
    side.backend.add_connection({"name": "apple", "options": {"client_id": SERVICES_ID,
                                                              "client_secret": live}})
    side.backend.apple_register_key(TEAM_ID, KEY_ID, conn.apple.key.public_key)
    side.backend.apple_add_services_id(TEAM_ID, SERVICES_ID)
    side.backend.inject(Fault(path=path, delay=3))  # held past the run's deadline (1 s + 1 s)
    pool = runner.Pool(auth0=lambda _: side, apple=lambda *_: FakeApple(side.backend))
    [outcome] = runner.run(settings, runner.Options(rotate=False), pool).outcomes
    assert outcome.step == step, outcome.error
    assert f"during the {step} step" in (outcome.error or "")
