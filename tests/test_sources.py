"""Tests for rotator.sources: settings with their origins, and the secrets, keys and CA bundles."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from conftest import KEY_ID, TEAM_ID

from rotator.client_auth import ClientSecret
from rotator.errors import ConfigError
from rotator.sources import Sources, Value, str_value


def test_value_strips_surrounding_whitespace_only() -> None:
    """A string value loses its surrounding whitespace and newline; inner spaces stay."""
    assert Value(" a b\n", "APPLE_TEAM_ID").value == "a b"
    assert Value(3, "x").value == 3


def test_value_path_resolves_against_its_base(tmp_path: Path) -> None:
    """A relative path is relative to the value's base (the config file's folder)."""
    assert Value("keys/k.p8", "apple.private_key_file", base=tmp_path).path("a key") == (
        tmp_path / "keys" / "k.p8")


def test_str_value_refuses_empty_and_non_strings_naming_the_origin() -> None:
    """An empty or non-string value is a ConfigError naming where it came from."""
    assert str_value(Value("x", "auth0.domain"), "a domain") == "x"
    with pytest.raises(ConfigError, match=r"^auth0.domain must be a non-empty string \(a domain\)"):
        str_value(Value("  ", "auth0.domain"), "a domain")
    with pytest.raises(ConfigError, match="AUTH0_DOMAIN must be a non-empty string"):
        str_value(Value(5, "AUTH0_DOMAIN"), "a domain")


def test_client_secret_from_the_environment_wins_over_a_file_with_a_warning(
    tmp_path: Path,
) -> None:
    """AUTH0_CLIENT_SECRET is used over auth0.client_secret_file, and a warning says so."""
    file = tmp_path / "secret"
    file.write_text("from-file\n")
    sources = Sources({"AUTH0_CLIENT_SECRET": "from-env"})
    got = sources.client_auth({"client_secret_file": Value(str(file), "auth0.client_secret_file")})
    assert got == ClientSecret("from-env")
    assert sources.warnings == [
        f"AUTH0_CLIENT_SECRET is set in the environment and wins over auth0.client_secret_file "
        f"({file}); unset AUTH0_CLIENT_SECRET to use the file"]


def test_client_secret_from_a_file_is_stripped(tmp_path: Path) -> None:
    """The M2M secret file's trailing newline is not part of the secret."""
    file = tmp_path / "secret"
    file.write_text("from-file\n")
    got = Sources({}).client_auth({"client_secret_file": Value(str(file), "f")})
    assert got == ClientSecret("from-file")


@pytest.mark.parametrize(("env", "file_text", "words"), [
    ({}, None, "no Auth0 client secret or signing key"),
    ({}, "\n", "is empty; it must hold the M2M client secret"),
    ({"AUTH0_CLIENT_SECRET": "s", "AUTH0_CLIENT_SECRET_FILE": "/f"}, None,
     "AUTH0_CLIENT_SECRET and AUTH0_CLIENT_SECRET_FILE are both set; unset one"),
])
def test_client_secret_refusals(tmp_path: Path, env: dict[str, str], file_text: str | None,
                                words: str) -> None:
    """No secret, an empty secret file, or a variable set twice: a ConfigError saying the fix."""
    auth0 = {}
    if file_text is not None:
        (tmp_path / "secret").write_text(file_text)
        auth0["client_secret_file"] = Value(str(tmp_path / "secret"), "auth0.client_secret_file")
    with pytest.raises(ConfigError, match=words):
        Sources(env).client_auth(auth0)


def test_apple_key_is_read_once_per_file(key_path: Path) -> None:
    """The .p8 file is loaded once for one Sources, however many connections name it."""
    sources = Sources({})
    first = sources.apple_key(Value(str(key_path), "apple.private_key_file"))
    assert first.path == key_path
    assert sources.apple_key(Value(str(key_path), "apple.private_key_file")) is first


def test_apple_key_from_the_environment_unflattens_newlines(key_path: Path) -> None:
    """APPLE_PRIVATE_KEY flattened to one line with \\n escapes loads as the key."""
    flat = key_path.read_text().strip().replace("\n", "\\n")
    key = Sources({"APPLE_PRIVATE_KEY": flat}).apple_key(None)
    assert key.source == "APPLE_PRIVATE_KEY"
    assert key.path is None


def test_apple_key_missing_is_a_config_error() -> None:
    """No key file and no variable: a ConfigError naming the three ways to set one."""
    with pytest.raises(ConfigError, match=r"no Apple key: set apple\.private_key_file"):
        Sources({}).apple_key(None)


def test_key_name_warns_of_another_key_id_or_swapped_ids(tmp_path: Path, key_path: Path) -> None:
    """A key file named for another id warns; named for the team id, the ids look swapped."""
    sources = Sources({})
    for name in (f"AuthKey_{KEY_ID}.p8", "AuthKey_ZZZZZ99999.p8", f"AuthKey_{TEAM_ID}.p8"):
        path = tmp_path / name
        path.write_bytes(key_path.read_bytes())
        path.chmod(0o600)
        key = sources.apple_key(Value(str(path), "apple.private_key_file"))
        sources.key_name(key, Value(KEY_ID, "apple.key_id"), Value(TEAM_ID, "apple.team_id"))
    assert len(sources.warnings) == 2
    assert "differs from the id in the key's file name AuthKey_ZZZZZ99999.p8" in sources.warnings[0]
    assert "apple.team_id and apple.key_id look swapped" in sources.warnings[1]


def test_ca_bundle_accepts_pem_certificates(tmp_path: Path) -> None:
    """A PEM CA certificate file is accepted and returned as an absolute path."""
    path = tmp_path / "ca.pem"
    path.write_bytes(trustme.CA().cert_pem.bytes())
    assert Sources({}).ca_bundle(Value("ca.pem", "auth0.ca_bundle", base=tmp_path)) == path


@pytest.mark.parametrize(("content", "words"), [
    (None, "does not exist"),
    (b"not a certificate\n", "holds no PEM certificate OpenSSL can load"),
])
def test_ca_bundle_refuses_missing_and_unloadable_files(
    tmp_path: Path, content: bytes | None, words: str
) -> None:
    """A missing file, or one OpenSSL cannot load, is a ConfigError naming the setting."""
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"^auth0.ca_bundle: {path} {words}"):
        Sources({}).ca_bundle(Value(str(path), "auth0.ca_bundle"))
