"""Tests for rotator.reload: settings loaded again when a file they came from changes."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import offline_config

from rotator import config
from rotator.errors import ConfigError
from rotator.reload import Reloader


def write(tmp_path: Path, key_path: Path, check: str = "true") -> tuple[Path, Path]:
    """A config file and its M2M secret file; ``check`` is apple.check as written."""
    return offline_config(tmp_path, key_path, apple=f"check = {check}"), tmp_path / "m2m_secret"


def reloader(path: Path) -> Reloader:
    """A Reloader of the settings in ``path``."""
    return Reloader(lambda: config.load(config.Overrides(config=str(path)), environ={}))


def test_load_remembers_every_file_the_settings_came_from(tmp_path: Path, key_path: Path) -> None:
    """After a load, the config file, the secret file and the key file are watched."""
    path, secret_file = write(tmp_path, key_path)
    r = reloader(path)
    r.load()
    assert {path, secret_file, key_path} <= {p for p, _ in r.files}
    assert r.changed() == []
    assert r.poll() is None


def test_a_changed_secret_file_is_seen_and_loaded(tmp_path: Path, key_path: Path) -> None:
    """A rotated M2M secret file shows in changed(), and poll loads the settings again."""
    path, secret_file = write(tmp_path, key_path)
    r = reloader(path)
    r.load()
    secret_file.write_text("rotated-m2m-secret")
    assert r.changed() == [secret_file]
    polled = r.poll()
    assert polled is not None
    settings, changed = polled
    assert changed == [secret_file]
    auth0 = settings.connections[0].auth0
    assert auth0 is not None
    assert auth0.auth.fields("", "") == {"client_secret": "rotated-m2m-secret"}
    assert r.poll() is None


def test_a_missing_file_counts_as_changed(tmp_path: Path, key_path: Path) -> None:
    """A file that is gone is reported as changed."""
    path, secret_file = write(tmp_path, key_path)
    r = reloader(path)
    r.load()
    secret_file.unlink()
    assert r.changed() == [secret_file]


def test_a_failed_load_is_retried_at_every_poll(tmp_path: Path, key_path: Path) -> None:
    """A config that no longer validates raises; polls retry until it is fixed."""
    path, _ = write(tmp_path, key_path)
    r = reloader(path)
    r.load()
    write(tmp_path, key_path, check='"no"')
    with pytest.raises(ConfigError, match="must be true or false"):
        r.poll()
    assert r.refused
    write(tmp_path, key_path, check="false")
    r.files = ()  # nothing watched: only the failed load makes this poll load
    polled = r.poll()
    assert polled is not None
    assert polled[0].connections[0].apple.check is False
    assert not r.refused


def test_force_loads_again_though_nothing_changed(tmp_path: Path, key_path: Path) -> None:
    """poll(force=True) (SIGHUP) loads the settings again with no file changed."""
    path, _ = write(tmp_path, key_path)
    r = reloader(path)
    r.load()
    polled = r.poll(force=True)
    assert polled is not None
    assert polled[1] == []
