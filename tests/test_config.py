"""Tests for rotator.config: sources, precedence, validation, the example file."""

from __future__ import annotations

import copy
import json
import re
import ssl
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from auth0_env import EmulatedTenant
from conftest import (
    EXAMPLE_CONFIG,
    KEY_ID,
    SERVICES_ID,
    TEAM_ID,
    Run,
    assert_refused,
    pem_lines,
    run_cli,
    run_rotator,
)

from rotator import config, environment
from rotator.client_auth import ClientSecret
from rotator.config import Overrides
from rotator.errors import ConfigError
from rotator.secret import generate_throwaway_key

M2M_SECRET = "m2m-Secret-Value-7f3a9c"  # distinctive, so a leak is easy to spot


# --- helpers -----------------------------------------------------------------


def render_toml(doc: dict[str, Any]) -> str:
    """A small TOML writer for the shapes used here (JSON strings are TOML strings)."""
    lines: list[str] = []
    for name, table in doc.items():
        if name == "connections":
            continue
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    for entry in doc.get("connections", []):
        lines.append("[[connections]]")
        nested = {k: v for k, v in entry.items() if isinstance(v, dict)}
        lines += [f"{k} = {json.dumps(v)}" for k, v in entry.items() if k not in nested]
        for sub, table in nested.items():
            lines.append(f"[connections.{sub}]")
            lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    """A file holding the M2M client secret."""
    path = tmp_path / "auth0_client_secret"
    path.write_text(M2M_SECRET + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def doc(key_path: Path, secret_file: Path) -> dict[str, Any]:
    """A valid configuration, as data to mutate before writing."""
    return {
        "auth0": {
            "domain": "example.eu.auth0.com",
            "client_id": "m2m-client-id",
            "client_secret_file": str(secret_file),
        },
        "apple": {"team_id": TEAM_ID, "key_id": KEY_ID, "private_key_file": str(key_path)},
        "connections": [{"connection": "apple", "client_id": SERVICES_ID}],
    }


@pytest.fixture
def write(tmp_path: Path) -> Any:
    """Write a configuration (data or TOML text) to rotator.toml and return its path."""

    def _write(content: dict[str, Any] | str) -> Path:
        path = tmp_path / "rotator.toml"
        path.write_text(content if isinstance(content, str) else render_toml(content))
        return path

    return _write


@pytest.fixture(name="secrets")
def secrets_fixture(key_path: Path) -> tuple[str, ...]:
    """What must never be printed: the M2M secret and each line of the key.

    Registered as ``secrets``; the function ``secrets(tenant)`` below says the same for an
    emulated tenant, for the tests that refuse a tenant's configuration.
    """
    return (M2M_SECRET, *pem_lines(key_path))


def load_file(path: Path, environ: dict[str, str] | None = None, **kw: Any) -> config.Settings:
    """``config.load`` with only ``path`` and ``environ`` as sources."""
    return config.load(Overrides(config=str(path), **kw), environ or {})


# --- schedule limits -------------------------------------------------------------


def schedule_env(**values: str) -> dict[str, str]:
    """Environment for config.load: a minimal valid connection plus schedule values."""
    return {f"ROTATOR_{k.upper()}": v for k, v in values.items()}


@pytest.fixture
def env(apple_env: dict[str, str], secret_file: Path) -> dict[str, str]:
    """A complete one-connection configuration in the environment alone."""
    return {
        **apple_env,
        "AUTH0_DOMAIN": "example.eu.auth0.com",
        "AUTH0_CLIENT_ID": "m2m-client-id",
        "AUTH0_CLIENT_SECRET_FILE": str(secret_file),
        "AUTH0_CONNECTION": "apple",
    }


def test_defaults_fill_what_nobody_set(env: dict[str, str]) -> None:
    """With the environment only, the schedule and listen address are the documented defaults."""
    settings = config.load(Overrides(), env)
    assert settings.schedule == config.Schedule(
        secret_lifetime=180 * 86400, rotate_every=30 * 86400, check_every=3600
    )
    assert str(settings.listen) == "0.0.0.0:8080"
    assert settings.warnings == ()
    (conn,) = settings.connections
    assert (conn.connection, conn.client_id, conn.tenant) == ("apple", SERVICES_ID,
                                                              "example.eu.auth0.com")
    assert conn.auth0 is not None
    assert conn.auth0.auth == ClientSecret(M2M_SECRET)


def test_lifetime_at_apple_limit_is_accepted_with_a_drift_warning(env: dict[str, str]) -> None:
    """secret_lifetime = 15,777,000 s loads, with a warning that it leaves no room for drift."""
    settings = config.load(Overrides(), {**env, **schedule_env(secret_lifetime="15777000")})
    assert settings.schedule.secret_lifetime == 15_777_000
    assert any("clock drift" in w for w in settings.warnings)


def test_lifetime_over_apple_limit_is_refused(env: dict[str, str]) -> None:
    """secret_lifetime = 15,777,001 s is refused, naming the variable and the limit."""
    with pytest.raises(ConfigError, match=r"ROTATOR_SECRET_LIFETIME.*15777000"):
        config.load(Overrides(), {**env, **schedule_env(secret_lifetime="15777001")})


def test_rotate_every_equal_to_lifetime_is_refused(env: dict[str, str]) -> None:
    """rotate_every must be shorter than secret_lifetime."""
    with pytest.raises(ConfigError, match=r"ROTATOR_ROTATE_EVERY = 100d must be shorter than"):
        config.load(Overrides(), {**env, **schedule_env(secret_lifetime="100d",
                                                        rotate_every="100d")})


def test_rotate_every_longer_than_lifetime_is_refused(env: dict[str, str]) -> None:
    """rotate_every over secret_lifetime is refused, naming the variable that set it."""
    with pytest.raises(ConfigError, match=r"ROTATOR_ROTATE_EVERY = 30d must be shorter"):
        config.load(Overrides(), {**env, **schedule_env(secret_lifetime="10d",
                                                        rotate_every="30d")})


def test_rotate_every_just_under_lifetime_is_accepted(env: dict[str, str]) -> None:
    """rotate_every = secret_lifetime - 2 s loads (with check_every 1 s, the only room left)."""
    lifetime = 100 * 86400
    settings = config.load(Overrides(), {**env, **schedule_env(
        secret_lifetime=str(lifetime), rotate_every=str(lifetime - 2), check_every="1")})
    assert settings.schedule.rotate_every == lifetime - 2


def test_check_every_at_the_margin_is_refused(env: dict[str, str]) -> None:
    """check_every = secret_lifetime - rotate_every is refused, naming check_every."""
    with pytest.raises(ConfigError, match=r"ROTATOR_CHECK_EVERY = 150d must be shorter"):
        config.load(Overrides(), {**env, **schedule_env(
            secret_lifetime="180d", rotate_every="30d", check_every="150d")})


def test_check_every_just_under_the_margin_is_accepted(env: dict[str, str]) -> None:
    """check_every one second under secret_lifetime - rotate_every loads."""
    settings = config.load(Overrides(), {**env, **schedule_env(
        secret_lifetime="180d", rotate_every="30d", check_every=str(150 * 86400 - 1))})
    assert settings.schedule.check_every == 150 * 86400 - 1


# --- precedence --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layers", "check_every", "listen"),
    [
        ("file", 2 * 3600, "127.0.0.1:1001"),
        ("file+env", 3 * 3600, "127.0.0.1:1002"),
        ("file+env+flag", 4 * 3600, "127.0.0.1:1003"),
    ],
)
def test_flag_beats_environment_beats_file(
    doc: dict[str, Any], write: Any, layers: str, check_every: int, listen: str
) -> None:
    """check_every and listen come from the latest source that sets them."""
    doc["schedule"] = {"check_every": "2h"}
    doc["server"] = {"listen": "127.0.0.1:1001"}
    path = write(doc)
    environ = {}
    if "env" in layers:
        environ = {"ROTATOR_CHECK_EVERY": "3h", "ROTATOR_LISTEN": "127.0.0.1:1002"}
    flags: dict[str, Any] = {}
    if "flag" in layers:
        flags = {"check_every": "4h", "listen": "127.0.0.1:1003"}
    settings = load_file(path, environ, **flags)
    assert settings.schedule.check_every == check_every
    assert str(settings.listen) == listen


def test_environment_overrides_apple_section_of_file(doc: dict[str, Any], write: Any) -> None:
    """APPLE_TEAM_ID in the environment overrides [apple] team_id in the file."""
    settings = load_file(write(doc), {"APPLE_TEAM_ID": "ZZZZZ99999"})
    assert settings.connections[0].apple.team_id == "ZZZZZ99999"


def test_connection_entry_overrides_sections_and_environment(
    doc: dict[str, Any], write: Any, tmp_path: Path
) -> None:
    """Keys set in one [[connections]] entry apply to it alone and beat [auth0]/[apple] and env."""
    other_key = tmp_path / "other.p8"
    generate_throwaway_key(other_key)
    other_secret = tmp_path / "other_secret"
    other_secret.write_text("other-tenant-secret")
    doc["connections"].append({
        "connection": "con_abc123", "client_id": "com.example.partner",
        "team_id": "FGHIJ67890", "private_key_file": str(other_key),
        "auth0": {"domain": "partner.us.auth0.com", "client_id": "partner-m2m",
                  "client_secret_file": str(other_secret)},
    })
    settings = load_file(write(doc), {"APPLE_TEAM_ID": "ZZZZZ99999",
                                      "AUTH0_CLIENT_SECRET": "env-secret-value"})
    first, second = settings.connections
    assert (first.apple.team_id, second.apple.team_id) == ("ZZZZZ99999", "FGHIJ67890")
    assert first.auth0 is not None
    assert second.auth0 is not None
    assert (first.auth0.client_id, second.auth0.client_id) == ("m2m-client-id", "partner-m2m")
    assert (first.tenant, second.tenant) == ("example.eu.auth0.com", "partner.us.auth0.com")
    assert (first.auth0.auth, second.auth0.auth) == (
        ClientSecret("env-secret-value"), ClientSecret("other-tenant-secret"))
    assert first.apple.key is not second.apple.key
    assert second.apple.key_id == KEY_ID


def test_config_path_comes_from_flag_before_rotator_config(
    doc: dict[str, Any], write: Any, tmp_path: Path
) -> None:
    """--config wins over $ROTATOR_CONFIG, which is used when there is no flag."""
    path = write(doc)
    other = tmp_path / "missing.toml"
    settings = config.load(Overrides(config=str(path)), {"ROTATOR_CONFIG": str(other)})
    assert settings.connections[0].connection == "apple"
    settings = config.load(Overrides(), {"ROTATOR_CONFIG": str(path)})
    assert settings.connections[0].connection == "apple"
    with pytest.raises(ConfigError, match=r"missing\.toml does not exist"):
        config.load(Overrides(), {"ROTATOR_CONFIG": str(other)})


# --- other validation (config.load directly) ------------------------------------------


def test_secrets_stay_out_of_repr(doc: dict[str, Any], write: Any, key_path: Path) -> None:
    """repr(Settings) shows neither the M2M secret nor any part of the key."""
    text = repr(load_file(write(doc)))
    assert "m2m-client-id" in text
    for secret in (M2M_SECRET, *pem_lines(key_path)):
        assert secret not in text


def test_group_readable_key_file_loads_with_a_warning(
    doc: dict[str, Any], write: Any, key_path: Path
) -> None:
    """A key file with mode 0644 still loads, and the settings carry a chmod 600 warning."""
    key_path.chmod(0o644)
    settings = load_file(write(doc))
    assert any("chmod 600" in w and str(key_path) in w for w in settings.warnings)


def test_connections_in_file_conflict_with_connection_environment(
    doc: dict[str, Any], write: Any
) -> None:
    """AUTH0_CONNECTION alongside a file with [[connections]] is refused, not silently dropped."""
    with pytest.raises(ConfigError, match="AUTH0_CONNECTION is set"):
        load_file(write(doc), {"AUTH0_CONNECTION": "other"})


def test_same_connection_twice_is_refused(doc: dict[str, Any], write: Any) -> None:
    """Listing one connection twice on one tenant is refused, naming both entries."""
    doc["connections"].append(dict(doc["connections"][0]))
    with pytest.raises(ConfigError, match=r"listed twice, in .*#1 and .*#2; remove one"):
        load_file(write(doc))


def test_both_secret_sources_in_environment_are_refused(env: dict[str, str]) -> None:
    """AUTH0_CLIENT_SECRET and AUTH0_CLIENT_SECRET_FILE together are refused."""
    with pytest.raises(ConfigError, match="both set"):
        config.load(Overrides(), {**env, "AUTH0_CLIENT_SECRET": "x" * 20})


def test_empty_client_secret_file_is_refused(env: dict[str, str], secret_file: Path) -> None:
    """An empty M2M secret file is refused, naming the variable."""
    secret_file.write_text("\n")
    with pytest.raises(ConfigError, match=r"AUTH0_CLIENT_SECRET_FILE: .* is empty"):
        config.load(Overrides(), env)


@pytest.mark.parametrize("hook", [[], "reload-app", ["ok", 3], [""]])
def test_post_rotate_must_be_an_argv(doc: dict[str, Any], write: Any, hook: object) -> None:
    """hooks.post_rotate must be a non-empty list of non-empty strings."""
    doc["hooks"] = {"post_rotate": hook}
    with pytest.raises(ConfigError, match="post_rotate"):
        load_file(write(doc))


def test_log_format_must_be_json_or_console(env: dict[str, str]) -> None:
    """ROTATOR_LOG_FORMAT other than json or console is refused, naming it."""
    with pytest.raises(ConfigError, match="ROTATOR_LOG_FORMAT"):
        config.load(Overrides(), {**env, "ROTATOR_LOG_FORMAT": "xml"})


# --- bad configuration through the real CLI ------------------------------------------


def check_config(path: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """`rotator check-config --config path ...`, as a process."""
    return run_rotator("check-config", "--config", str(path), *args, env=env)


def test_valid_file_passes_check_config(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """A valid file makes check-config exit 0 and summarise it, printing no secret."""
    run = check_config(write(doc))
    assert run.code == 0, run.output
    assert "configuration OK: 1 connection(s)" in run.stdout
    for secret in secrets:
        assert secret not in run.output


@pytest.mark.parametrize("bad", ["10x", "-5", "", "1.5d", "abc"])
@pytest.mark.parametrize("setting", ["secret_lifetime", "rotate_every", "check_every"])
def test_bad_duration_in_file_is_refused(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...], setting: str, bad: str
) -> None:
    """A malformed duration in [schedule] exits 2 naming the file, the key and the format."""
    doc["schedule"] = {setting: bad}
    path = write(doc)
    assert_refused(check_config(path), str(path), f"[schedule] {setting}",
                   '"90s", "12h", "180d"', secrets=secrets)


@pytest.mark.parametrize("bad", ["10x", "-5", "1.5d", "abc"])
def test_bad_duration_in_environment_is_refused(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...], bad: str
) -> None:
    """A malformed ROTATOR_ROTATE_EVERY exits 2 naming the variable."""
    run = check_config(write(doc), env={"ROTATOR_ROTATE_EVERY": bad})
    assert_refused(run, "ROTATOR_ROTATE_EVERY", "not a duration", secrets=secrets)


def test_bad_duration_flag_is_refused(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """A malformed --check-every exits 2 naming the flag."""
    run = check_config(write(doc), "--check-every", "1.5h")
    assert_refused(run, "--check-every", "not a duration", secrets=secrets)


@pytest.mark.parametrize("section", sorted(config.SECTIONS))
def test_unknown_key_in_section_is_refused(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...], section: str
) -> None:
    """An unknown key in any section exits 2 naming the key, the section and the known keys."""
    doc.setdefault(section, {})["bogus_key"] = "x"
    path = write(doc)
    assert_refused(check_config(path), str(path), f"[{section}]", "unknown key 'bogus_key'",
                   f"known keys: {', '.join(config.SECTIONS[section])}", secrets=secrets)


def test_unknown_top_level_key_is_refused(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """An unknown top-level table exits 2 naming it."""
    doc["scheduler"] = {"check_every": "1h"}
    path = write(doc)
    assert_refused(check_config(path), str(path), "unknown key 'scheduler'", "known keys",
                   secrets=secrets)


def test_unknown_key_in_connection_is_refused(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """An unknown key in a [[connections]] entry exits 2 naming the entry and the key."""
    doc["connections"][0]["services_id"] = "com.example.webapp"
    path = write(doc)
    assert_refused(check_config(path), str(path), "[[connections]] #1",
                   "unknown key 'services_id'", "known keys", secrets=secrets)


def test_unknown_key_in_nested_connection_table_is_refused(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """An unknown key in a connection's [connections.auth0] table exits 2 naming it."""
    doc["connections"][0]["auth0"] = {"tenant": "x"}
    path = write(doc)
    assert_refused(check_config(path), "[[connections]] #1 auth0", "unknown key 'tenant'",
                   secrets=secrets)


@pytest.mark.parametrize("where", ["auth0", "connection"])
def test_client_secret_in_file_points_to_client_secret_file(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...], where: str
) -> None:
    """client_secret in the file is refused with a hint to use client_secret_file."""
    table = doc["auth0"] if where == "auth0" else doc["connections"][0]
    table["client_secret"] = M2M_SECRET
    path = write(doc)
    assert_refused(check_config(path), str(path), "unknown key 'client_secret'",
                   "client_secret_file", "AUTH0_CLIENT_SECRET", secrets=secrets)


@pytest.mark.parametrize("value", ["ABCDE1234", "ABCDE123456", "abcde12345", ""])
@pytest.mark.parametrize("setting", ["team_id", "key_id"])
def test_apple_ids_must_be_ten_characters(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...], setting: str, value: str
) -> None:
    """team_id and key_id other than 10 of A-Z/0-9 exit 2 naming the key."""
    doc["apple"][setting] = value
    path = write(doc)
    assert_refused(check_config(path), f"{path} [apple] {setting}", "10 characters",
                   "Apple developer portal", secrets=secrets)


@pytest.mark.parametrize("missing", ["connection", "client_id"])
def test_connection_entry_needs_connection_and_client_id(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...], missing: str
) -> None:
    """A [[connections]] entry without connection or client_id exits 2 naming what is missing."""
    del doc["connections"][0][missing]
    path = write(doc)
    assert_refused(check_config(path), f"{path} [[connections]] #1", f"{missing} (",
                   "is missing", secrets=secrets)


def test_entry_with_only_a_nested_table_names_its_file_and_number(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """A [[connections]] entry holding only [connections.auth0] is refused naming file and entry."""
    doc["connections"].append({"auth0": {"client_id": "partner-m2m"}})
    path = write(doc)
    assert_refused(check_config(path), f"{path} [[connections]] #2: client_id (",
                   "add client_id to that entry", secrets=secrets)


@pytest.mark.parametrize(
    ("given", "missing"),
    [("AUTH0_CONNECTION", "APPLE_CLIENT_ID"), ("APPLE_CLIENT_ID", "AUTH0_CONNECTION")],
)
def test_environment_connection_needs_both_variables(
    env: dict[str, str], secrets: tuple[str, ...], given: str, missing: str
) -> None:
    """With no file, one of AUTH0_CONNECTION/APPLE_CLIENT_ID alone exits 2 naming the other."""
    del env[missing]
    assert given in env
    assert_refused(run_rotator("check-config", env=env), f"{missing} (", "is not set",
                   f"set it along with {given}", secrets=secrets)


def test_missing_config_file_is_refused(tmp_path: Path) -> None:
    """A --config path that does not exist exits 2 naming it."""
    path = tmp_path / "nope.toml"
    assert_refused(check_config(path), f"config file {path} does not exist", "--config")


def test_missing_rotator_config_file_is_refused(tmp_path: Path) -> None:
    """A $ROTATOR_CONFIG path that does not exist exits 2 naming it."""
    path = tmp_path / "nope.toml"
    run = run_rotator("check-config", env={"ROTATOR_CONFIG": str(path)})
    assert_refused(run, str(path), "does not exist", "ROTATOR_CONFIG")


def test_config_directory_is_refused(tmp_path: Path) -> None:
    """A --config path that is a directory exits 2 saying it cannot be read."""
    assert_refused(check_config(tmp_path), str(tmp_path), "cannot be read")


def test_invalid_toml_is_refused(write: Any, secrets: tuple[str, ...]) -> None:
    """A file that is not TOML exits 2 naming it and the line at fault."""
    path = write('[auth0]\ndomain = "example.eu.auth0.com\n')
    assert_refused(check_config(path), str(path), "is not valid TOML", "line 2",
                   secrets=secrets)


def test_key_file_given_as_config_is_refused_without_showing_it(key_path: Path) -> None:
    """Pointing --config at the .p8 key exits 2 without echoing any of it."""
    assert_refused(check_config(key_path), "is not valid TOML",
                   secrets=tuple(pem_lines(key_path)))


@pytest.mark.parametrize("domain", ["https://example.eu.auth0.com", "http://example.eu.auth0.com",
                                    "example.eu.auth0.com/api/v2", ""])
def test_domain_must_be_bare(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...], domain: str
) -> None:
    """An auth0 domain with a scheme or path (or none) exits 2 naming auth0.domain."""
    doc["auth0"]["domain"] = domain
    path = write(doc)
    assert_refused(check_config(path), f"{path} [auth0] domain", secrets=secrets)


def test_domain_with_scheme_says_how_to_write_it(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """The https:// refusal shows the bare form to use."""
    doc["auth0"]["domain"] = "https://example.eu.auth0.com"
    assert_refused(check_config(write(doc)), "not a bare domain", "no https://",
                   secrets=secrets)


def test_domain_may_carry_a_port(doc: dict[str, Any], write: Any) -> None:
    """domain = "localhost:8443" is accepted."""
    doc["auth0"]["domain"] = "localhost:8443"
    run = check_config(write(doc))
    assert run.code == 0, run.output
    assert "on localhost:8443" in run.stdout


def test_check_config_needs_an_auth0_domain(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """check-config without auth0.domain exits 2 saying where to set it."""
    del doc["auth0"]["domain"]
    assert_refused(check_config(write(doc)), "auth0.domain is not set", "AUTH0_DOMAIN",
                   secrets=secrets)


def test_connection_flag_must_name_a_configured_connection(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """--connection naming an unconfigured connection exits 2 listing the configured ones."""
    run = check_config(write(doc), "--connection", "google")
    assert_refused(run, "--connection 'google' is not configured", "configured: apple",
                   secrets=secrets)


def test_no_connection_at_all_is_refused(apple_env: dict[str, str]) -> None:
    """With no file and no AUTH0_CONNECTION/APPLE_CLIENT_ID, exit 2 says how to add one."""
    env = {k: v for k, v in apple_env.items() if k != "APPLE_CLIENT_ID"}
    assert_refused(run_rotator("mint", env=env), "no connection configured", "[[connections]]",
                   "AUTH0_CONNECTION")


@pytest.mark.parametrize(
    ("how", "needle"),
    [("env", "ROTATOR_SECRET_LIFETIME"), ("flag", "--secret-lifetime")],
)
def test_lifetime_over_apple_limit_is_refused_by_the_cli(
    apple_env: dict[str, str], key_path: Path, how: str, needle: str
) -> None:
    """A lifetime of 15,777,001 s from the environment or a flag exits 2 naming its source."""
    if how == "env":
        run = run_rotator("mint", env={**apple_env, "ROTATOR_SECRET_LIFETIME": "15777001"})
    else:
        run = run_rotator("mint", "--secret-lifetime", "15777001", env=apple_env)
    assert_refused(run, needle, "over Apple's limit of 15777000 s", "use 180d or less",
                   secrets=tuple(pem_lines(key_path)))


# --- the example file -------------------------------------------------------------


def test_example_documents_every_key() -> None:
    """config/rotator.example.toml mentions every section key, connection key and variable."""
    text = EXAMPLE_CONFIG.read_text()
    assigned = set(re.findall(r"^[#\s]*([a-z0-9_]+)\s*=", text, flags=re.MULTILINE))
    tables = set(re.findall(r"^[#\s]*\[\[?([a-z0-9_.]+)\]\]?", text, flags=re.MULTILINE))
    for section, keys in config.SECTIONS.items():
        assert section in tables
        assert set(keys) <= assigned, set(keys) - assigned
    for key in config.CONNECTION_KEYS:
        assert key in assigned or f"connections.{key}" in tables, key
    for var in sorted(n for n in environment.NAMES if n.startswith(environment.PREFIXES)):
        assert re.search(rf"\b{var}\b", text), var


def test_example_comments_every_key() -> None:
    """Every key line in the example (set or commented out) has a comment beside or above it."""
    lines = EXAMPLE_CONFIG.read_text().splitlines()
    for n, line in enumerate(lines):
        body = line.lstrip("# ")
        if not re.match(r"[a-z0-9_]+\s*=", body):
            continue
        commented = line.startswith("#")
        beside = "#" in (body if commented else line)
        above = n > 0 and lines[n - 1].lstrip().startswith("#")
        assert beside or above, f"line {n + 1} has no comment: {line}"


def _example_with_real_paths(tmp_path: Path, text: str) -> Path:
    """The example's active lines with every /run or /etc path made a real file."""
    made: dict[str, Path] = {}

    def real(match: re.Match[str]) -> str:
        name = Path(match.group(1)).name
        if name not in made:
            path = made[name] = tmp_path / name
            if name.endswith(".p8"):
                generate_throwaway_key(path)
            else:
                path.write_text(f"secret-for-{name}\n")
        return json.dumps(str(made[name]))

    active = "\n".join(
        re.sub(r'"(/(?:run|etc)/[^"]+)"', real, line) if not line.lstrip().startswith("#")
        else line
        for line in text.splitlines()
    )
    assert made, "the example names no files under /run or /etc"
    path = tmp_path / "rotator.toml"
    path.write_text(active)
    return path


def _uncommented_partner(text: str) -> str:
    """The example with its commented-out partner entry uncommented, as its comment says."""
    head, marker, block = text.partition("# [[connections]]")
    assert marker, "the example has no commented-out partner entry"
    lines = (marker + block).splitlines()
    return head + "\n".join(line[2:] if line.startswith("# ") else "" for line in lines) + "\n"


def test_example_copy_passes_check_config_once_its_files_exist(tmp_path: Path) -> None:
    """A copy of the example whose files exist passes check-config: one connection, exit 0."""
    path = _example_with_real_paths(tmp_path, EXAMPLE_CONFIG.read_text())
    run = run_rotator("check-config", "--config", str(path))
    assert run.code == 0, run.output
    assert "1 connection(s) on 1 tenant(s)" in run.stdout
    assert config.load(Overrides(config=str(path)), {}).warnings == ()


def test_example_partner_entry_loads_once_uncommented(tmp_path: Path) -> None:
    """Uncommented, the example's partner entry is a second tenant, team and key."""
    path = _example_with_real_paths(tmp_path, _uncommented_partner(EXAMPLE_CONFIG.read_text()))
    settings = config.load(Overrides(config=str(path)), {})
    assert len(settings.connections) == 2
    first, second = settings.connections
    assert first.auth0 is not None
    assert second.auth0 is not None
    assert first.tenant != second.tenant
    assert first.auth0.client_id != second.auth0.client_id
    assert isinstance(second.auth0.auth, ClientSecret)
    assert second.auth0.auth.secret.startswith("secret-for-")
    assert first.client_id != second.client_id
    assert first.apple.team_id != second.apple.team_id
    assert settings.warnings == ()
    for conn in settings.connections:
        assert re.fullmatch(r"[A-Z0-9]{10}", conn.apple.team_id)


def test_example_is_valid_toml_with_only_known_keys() -> None:
    """The example as shipped fails only on its placeholder paths, not on its keys or syntax."""
    with pytest.raises(ConfigError) as info:
        config.load(Overrides(config=str(EXAMPLE_CONFIG)), {})
    assert "does not exist" in str(info.value)
    assert "unknown key" not in str(info.value)


def test_render_toml_round_trips(doc: dict[str, Any]) -> None:
    """The small TOML writer these tests use writes what tomllib reads back."""
    data = copy.deepcopy(doc)
    data["hooks"] = {"post_rotate": ["/bin/true", "--quiet"], "timeout": "10s"}
    data["connections"][0]["auth0"] = {"client_id": "x"}
    assert tomllib.loads(render_toml(data)) == data


@pytest.mark.parametrize("value", ["0", "257", "many", "1.5", "-3"])
def test_parallel_tenants_must_be_a_sensible_whole_number(env: dict[str, str], value: str) -> None:
    """ROTATOR_PARALLEL_TENANTS outside 1-256 is refused, naming the variable."""
    with pytest.raises(ConfigError, match=r"ROTATOR_PARALLEL_TENANTS = .* from 1 to 256"):
        config.load(Overrides(), {**env, "ROTATOR_PARALLEL_TENANTS": value})


def test_parallel_tenants_from_the_file(doc: dict[str, Any], write: Any) -> None:
    """[schedule] parallel_tenants sets how many tenants are worked on at once (default 32)."""
    assert load_file(write(doc)).schedule.parallel_tenants == 32
    doc["schedule"] = {"parallel_tenants": 4}
    assert load_file(write(doc)).schedule.parallel_tenants == 4


# --- booleans: a TOML boolean in the file, the word true or false in the environment ---


@pytest.mark.parametrize(("in_file", "variable", "expected"), [
    (False, None, False), (True, None, True), (None, "false", False), (None, "TRUE", True),
    (True, " False ", False),
], ids=["toml-false", "toml-true", "env-false", "env-TRUE", "env-beats-file"])
def test_booleans_in_their_own_form_are_accepted(
    doc: dict[str, Any], write: Any, in_file: bool | None, variable: str | None, expected: bool,
) -> None:
    """apple.check takes a TOML boolean in the file and true/false (any case) in APPLE_CHECK."""
    if in_file is not None:
        doc["apple"]["check"] = in_file
    environ = {"APPLE_CHECK": variable} if variable is not None else {}
    [conn] = load_file(write(doc), environ).connections
    assert conn.apple.check is expected


@pytest.mark.parametrize("value", ["false", "true", "no", 0])
def test_a_boolean_in_the_file_that_is_no_toml_boolean_is_refused(
    doc: dict[str, Any], write: Any, value: object, secrets: tuple[str, ...],
) -> None:
    """`check = "false"` (a string) or `check = 0` in the file: exit 2 naming the key."""
    doc["apple"]["check"] = value
    run = run_rotator("check-config", "--config", str(write(doc)))
    assert_refused(run, "[apple] check", "must be true or false", secrets=secrets)
    if isinstance(value, str):
        assert "without quotes" in run.stderr


def test_a_connection_boolean_follows_the_file_rule(
    doc: dict[str, Any], write: Any, secrets: tuple[str, ...],
) -> None:
    """A [[connections]] entry's `check = "no"` is refused like the section's, naming the entry."""
    doc["connections"][0]["check"] = "no"
    run = run_rotator("check-config", "--config", str(write(doc)))
    assert_refused(run, "[[connections]] #1 check", "must be true or false", secrets=secrets)


@pytest.mark.parametrize("value", ["0", "1", "yes", "off", "falsch"])
def test_an_environment_boolean_other_than_true_or_false_is_refused(
    doc: dict[str, Any], write: Any, value: str, secrets: tuple[str, ...],
) -> None:
    """APPLE_CHECK=0 (or 1, yes, off): exit 2 naming APPLE_CHECK, as a TOML string is refused."""
    run = run_rotator("check-config", "--config", str(write(doc)), env={"APPLE_CHECK": value})
    assert_refused(run, "APPLE_CHECK", "must be true or false", secrets=secrets)


# --- one normalisation rule: surrounding whitespace stripped, inner whitespace refused ---


SETTINGS_OF = {  # variable -> how to read its value back from the loaded settings
    "APPLE_TEAM_ID": lambda c: c.apple.team_id,
    "APPLE_KEY_ID": lambda c: c.apple.key_id,
    "APPLE_CLIENT_ID": lambda c: c.client_id,
    "APPLE_TOKEN_URL": lambda c: c.apple.token_url,
    "AUTH0_CONNECTION": lambda c: c.connection,
    "AUTH0_DOMAIN": lambda c: c.auth0.domain,
    "AUTH0_CLIENT_ID": lambda c: c.auth0.client_id,
    "AUTH0_AUDIENCE": lambda c: c.auth0.audience,
}


@pytest.mark.parametrize("variable", sorted(SETTINGS_OF))
@pytest.mark.parametrize("around", ["{}\n", "{}\r\n", " {}\t", "\n{}"])
def test_surrounding_whitespace_of_every_identifier_is_stripped(
    variable: str, around: str, env: dict[str, str]
) -> None:
    """``APPLE_TEAM_ID="ABCDE12345\\n"`` and the like load as the value without the whitespace."""
    env = {**env, "APPLE_TOKEN_URL": "https://appleid.apple.com/auth/token",
           "AUTH0_AUDIENCE": "https://example.eu.auth0.com/api/v2/"}
    clean = env[variable]
    [conn] = config.load(Overrides(), {**env, variable: around.format(clean)}).connections
    assert SETTINGS_OF[variable](conn) == clean


def test_a_team_id_with_a_newline_in_toml_mints_no_newline(
    doc: dict[str, Any], write: Any, key_path: Path
) -> None:
    """TOML ``team_id = "...\\n"``: the minted secret's ``iss`` and ``kid`` carry no newline."""
    import jwt

    doc["apple"]["team_id"] = TEAM_ID + "\n"
    doc["apple"]["key_id"] = KEY_ID + "\n"
    run = run_rotator("mint", "--config", str(write(doc)))
    assert run.code == 0, run.output
    token = run.stdout.strip()
    assert jwt.get_unverified_header(token)["kid"] == KEY_ID
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == TEAM_ID


@pytest.mark.parametrize(("section", "key", "value"), [
    ("connections", "connection", "app\nle"),
    ("connections", "client_id", "com.example\n.webapp"),
    ("auth0", "client_id", "m2m client"),
    ("auth0", "domain", "example.eu.auth0.com\n.evil"),
    ("apple", "team_id", "ABCDE\n12345"),
    ("apple", "token_url", "https://appleid.apple.com/auth\n/token"),
    ("auth0", "audience", "https://example.eu.auth0.com/api/v2/\x00"),
])
def test_whitespace_or_control_characters_inside_a_value_are_refused(
    section: str, key: str, value: str, doc: dict[str, Any], write: Any
) -> None:
    """A line break, space or NUL inside an id, name, domain or URL: exit 2 naming the key."""
    table = doc["connections"][0] if section == "connections" else doc[section]
    table[key] = value
    assert_refused(run_rotator("check-config", "--config", str(write(doc))), key)


def test_the_config_path_and_log_format_from_the_environment_are_stripped_too(
    doc: dict[str, Any], write: Any
) -> None:
    """``ROTATOR_CONFIG`` and ``ROTATOR_LOG_FORMAT`` with a trailing newline work as meant."""
    path = write(doc)
    settings = config.load(Overrides(), {"ROTATOR_CONFIG": f" {path}\n",
                                         "ROTATOR_LOG_FORMAT": "json\n"})
    assert settings.log_format == "json"
    assert [c.connection for c in settings.connections] == ["apple"]
# --- --connection TENANT/NAME ------------------------------------------------------


@pytest.fixture
def two_tenants(doc: dict[str, Any]) -> dict[str, Any]:
    """`apple` on two tenants and `apple-ios` on the first."""
    doc["connections"] = [
        {"connection": "apple", "client_id": SERVICES_ID, "domain": "one.eu.auth0.com"},
        {"connection": "apple-ios", "client_id": "com.example.ios", "domain": "one.eu.auth0.com"},
        {"connection": "apple", "client_id": SERVICES_ID, "domain": "two.eu.auth0.com"},
    ]
    return doc


@pytest.mark.parametrize(("wanted", "chosen"), [
    (("apple",), [("one.eu.auth0.com", "apple"), ("two.eu.auth0.com", "apple")]),
    (("two.eu.auth0.com/apple",), [("two.eu.auth0.com", "apple")]),
    (("apple-ios", "two.eu.auth0.com/apple"),
     [("one.eu.auth0.com", "apple-ios"), ("two.eu.auth0.com", "apple")]),
], ids=["name-in-every-tenant", "tenant-slash-name", "both-kinds"])
def test_connection_flag_selects_by_name_or_tenant_and_name(
    two_tenants: dict[str, Any], write: Any, wanted: tuple[str, ...],
    chosen: list[tuple[str, str]],
) -> None:
    """NAME selects that connection in every tenant; TENANT/NAME in the tenant of that domain."""
    settings = load_file(write(two_tenants), connections=wanted)
    assert [(c.tenant, c.connection) for c in settings.connections] == chosen


def test_an_unknown_tenant_is_refused_naming_the_configured_ones(
    two_tenants: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """--connection three.eu.auth0.com/apple: exit 2 naming the tenants and TENANT/NAME choices."""
    run = check_config(write(two_tenants), "--connection", "three.eu.auth0.com/apple")
    assert_refused(
        run, "--connection 'three.eu.auth0.com/apple' is not configured",
        "no tenant has auth0.domain 'three.eu.auth0.com' (tenants: one.eu.auth0.com, "
        "two.eu.auth0.com)",
        "configured: one.eu.auth0.com/apple, one.eu.auth0.com/apple-ios, "
        "two.eu.auth0.com/apple", secrets=secrets)


def test_a_name_missing_from_the_tenant_given_is_refused(
    two_tenants: dict[str, Any], write: Any, secrets: tuple[str, ...]
) -> None:
    """--connection two.eu.auth0.com/apple-ios (only on one): exit 2 listing what is configured."""
    run = check_config(write(two_tenants), "--connection", "two.eu.auth0.com/apple-ios")
    assert_refused(run, "--connection 'two.eu.auth0.com/apple-ios' is not configured; "
                        "configured: one.eu.auth0.com/apple,", secrets=secrets)


# --- where each secret came from, and what overrides what ------------------------------


def test_check_config_says_where_each_secret_came_from(
    doc: dict[str, Any], write: Any, key_path: Path, secret_file: Path
) -> None:
    """The key and the M2M secret: each named with the file and the setting that chose it."""
    path = write(doc)
    run = check_config(path)
    assert run.code == 0, run.output
    lines = run.stdout.splitlines()
    assert f"    Apple key from {path} [apple] private_key_file ({key_path})" in lines
    assert (f"    M2M client secret from {path} [auth0] client_secret_file ({secret_file})"
            in lines)


def test_an_environment_secret_over_a_configured_file_is_named_and_warned(
    doc: dict[str, Any], write: Any, secret_file: Path
) -> None:
    """AUTH0_CLIENT_SECRET with client_secret_file configured: it wins, and check-config warns."""
    path = write(doc)
    run = check_config(path, env={"AUTH0_CLIENT_SECRET": "from-the-environment"})
    assert run.code == 0, run.output
    assert "    M2M client secret from AUTH0_CLIENT_SECRET" in run.stdout.splitlines()
    warning = (f"AUTH0_CLIENT_SECRET is set in the environment and wins over {path} [auth0] "
               f"client_secret_file ({secret_file}); unset AUTH0_CLIENT_SECRET to use the file")
    assert f"  warning: {warning}" in run.stdout.splitlines()
    assert warning in run.stderr  # and in the log
    assert "from-the-environment" not in run.output


def test_an_environment_key_over_a_configured_key_file_is_warned(
    doc: dict[str, Any], write: Any, key_path: Path
) -> None:
    """APPLE_PRIVATE_KEY with private_key_file configured: the variable wins, with a warning."""
    path = write(doc)
    run = check_config(path, env={"APPLE_PRIVATE_KEY": key_path.read_text()})
    assert run.code == 0, run.output
    assert "    Apple key from APPLE_PRIVATE_KEY" in run.stdout.splitlines()
    assert (f"APPLE_PRIVATE_KEY is set in the environment and wins over {path} [apple] "
            f"private_key_file ({key_path})") in run.stdout


def test_a_configured_file_alone_gives_no_override_warning(
    doc: dict[str, Any], write: Any
) -> None:
    """Secrets from their files and nothing in the environment: no warning at all."""
    run = check_config(write(doc))
    assert run.code == 0, run.output
    assert "warning" not in run.output


def test_a_key_id_unlike_the_key_file_name_is_warned(
    doc: dict[str, Any], write: Any, key_path: Path
) -> None:
    """key_id OTHERKEY01 with AuthKey_<KEY_ID>.p8: check-config warns naming both ids."""
    doc["apple"]["key_id"] = "OTHERKEY01"
    path = write(doc)
    run = check_config(path)
    assert run.code == 0, run.output
    assert (f"{path} [apple] key_id OTHERKEY01 differs from the id in the key's file name "
            f"{key_path.name} ({KEY_ID})") in run.stdout


def test_ids_swapped_against_the_key_file_name_are_named(
    doc: dict[str, Any], write: Any, key_path: Path
) -> None:
    """team_id = the key id of AuthKey_<KEY_ID>.p8 and key_id = the team: "look swapped"."""
    doc["apple"]["team_id"], doc["apple"]["key_id"] = KEY_ID, TEAM_ID
    run = check_config(write(doc))
    assert run.code == 0, run.output
    assert f"is the id in the key's file name {key_path.name}" in run.stdout
    assert "apple.team_id and apple.key_id look swapped" in run.stdout


# --- check-config refuses, offline, everything a run would refuse; a run refuses it too ---
#
# Each bad file below (a `listen` that is no HOST:PORT, a hook command that is
# missing or not executable, a `ca_bundle` that is not PEM certificates, is
# missing or is a directory, a `token_url` or `audience` that is not https) must
# make `check-config` and `run-once` alike exit 2 with one line on stderr naming
# the key and the fix: no traceback, no secret, and nothing contacted (the
# emulator's journal stays empty). Most cases run the CLI in this process
# (``cli.main``, the console script's code path); a few run the real process.


@dataclass(frozen=True)
class Case:
    """A configuration (and environment) rotator must refuse, and what the refusal says."""

    config: Path
    says: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


Make = Callable[[EmulatedTenant, Path], Case]


def _with(tenant: EmulatedTenant, *, auth0: str = "", apple: str = "", extra: str = "",
          entry: str = "") -> Path:
    """The tenant's config with lines added to [auth0], [apple], the end, or the connection."""
    body = (tenant.auth0_toml() + auth0 + "\n" + tenant.apple_toml() + apple + "\n" + extra
            + f'\n[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n' + entry)
    path = tenant.tmp / "rotator.toml"
    path.write_text(body)
    return path


def _ca(tenant: EmulatedTenant, path: Path) -> Path:
    """The tenant's config with [auth0] ca_bundle pointing at ``path``, not the emulator's CA."""
    body = _with(tenant).read_text().replace(tenant.emu.ca_pem_path, str(path))
    config = tenant.tmp / "rotator.toml"
    config.write_text(body)
    return config


def _script(tmp: Path, name: str, mode: int) -> Path:
    path = tmp / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def _hook(key: str, argv0: str) -> str:
    return f'[hooks]\n{key} = ["{argv0}", "--quiet"]\n'


CASES: dict[str, Make] = {
    "listen-without-port": lambda t, p: Case(
        _with(t, extra='[server]\nlisten = "localhost"\n'),
        ("server.listen", "'localhost'", "HOST:PORT", '"0.0.0.0:8080"')),
    "listen-port-out-of-range": lambda t, p: Case(
        _with(t, extra='[server]\nlisten = "0.0.0.0:65536"\n'),
        ("server.listen", "a port from 1 to 65535")),
    "listen-ipv6-without-brackets": lambda t, p: Case(
        _with(t, extra='[server]\nlisten = "::1:8080"\n'),
        ("server.listen", "IPv6 host in brackets")),
    "listen-from-environment": lambda t, p: Case(
        _with(t), ("ROTATOR_LISTEN", "HOST:PORT"), {"ROTATOR_LISTEN": "8080"}),
    "post-rotate-missing": lambda t, p: Case(
        _with(t, extra=_hook("post_rotate", str(p / "gone" / "hook"))),
        ("hooks.post_rotate", str(p / "gone" / "hook"), "does not exist", "fix the path")),
    "post-rotate-not-on-path": lambda t, p: Case(
        _with(t, extra=_hook("post_rotate", "no-such-rotator-hook")),
        ("hooks.post_rotate", "'no-such-rotator-hook'", "not on PATH", "absolute path")),
    "post-rotate-not-executable": lambda t, p: Case(
        _with(t, extra=_hook("post_rotate", str(_script(p, "hook.sh", 0o644)))),
        ("hooks.post_rotate", str(p / "hook.sh"), "not executable", "chmod +x")),
    "on-failure-missing": lambda t, p: Case(
        _with(t, extra=_hook("on_failure", str(p / "gone" / "page"))),
        ("hooks.on_failure", str(p / "gone" / "page"), "does not exist", "fix the path")),
    "on-failure-not-executable": lambda t, p: Case(
        _with(t, extra=_hook("on_failure", str(_script(p, "page.sh", 0o600)))),
        ("hooks.on_failure", str(p / "page.sh"), "not executable", "chmod +x")),
    "ca-bundle-not-pem": lambda t, p: Case(
        _ca(t, _text(p / "corp-ca.pem", "this is not a certificate\n")),
        ("[auth0] ca_bundle", str(p / "corp-ca.pem"), "no PEM certificate",
         "-----BEGIN CERTIFICATE-----")),
    "ca-bundle-der": lambda t, p: Case(
        _ca(t, _der(t, p / "corp-ca.der")),
        ("[auth0] ca_bundle", "no PEM certificate", "openssl x509 -inform der")),
    "ca-bundle-is-the-apple-key": lambda t, p: Case(
        _ca(t, t.key_path), ("[auth0] ca_bundle", "no PEM certificate")),
    "ca-bundle-empty": lambda t, p: Case(
        _ca(t, _text(p / "empty.pem", "")), ("[auth0] ca_bundle", "no PEM certificate")),
    "ca-bundle-missing": lambda t, p: Case(
        _ca(t, p / "no-such-ca.pem"),
        ("[auth0] ca_bundle", str(p / "no-such-ca.pem"), "does not exist",
         "PEM file of CA certificates")),
    "ca-bundle-directory": lambda t, p: Case(
        _ca(t, p), ("[auth0] ca_bundle", "is not a regular file", "PEM file of CA certificates")),
    "ca-bundle-of-one-connection": lambda t, p: Case(
        _with(t, entry=f'ca_bundle = "{_text(p / "bad.pem", "junk")}"\n'),
        ("[[connections]] #1 ca_bundle", "no PEM certificate")),
    "token-url-http": lambda t, p: Case(
        _token_url(t, "http://"),
        ("[apple] token_url", "is not an https:// URL", "TLS cannot be turned off")),
    "token-url-from-environment": lambda t, p: Case(
        _token_url(t, None),
        ("APPLE_TOKEN_URL", "is not an https:// URL"),
        {"APPLE_TOKEN_URL": "http://appleid.apple.com/auth/token"}),
    "audience-http": lambda t, p: Case(
        _with(t, auth0=f'audience = "http://{t.emu.domain}/api/v2/"\n'),
        ("[auth0] audience", f"'http://{t.emu.domain}/api/v2/'", "is not an https:// URL")),
    "audience-from-environment": lambda t, p: Case(
        _with(t), ("AUTH0_AUDIENCE", "is not an https:// URL"),
        {"AUTH0_AUDIENCE": "example.eu.auth0.com/api/v2/"}),
}


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _der(tenant: EmulatedTenant, path: Path) -> Path:
    """The emulator's own CA certificate, in DER: the right certificate, the wrong format."""
    path.write_bytes(ssl.PEM_cert_to_DER_cert(Path(tenant.emu.ca_pem_path).read_text()))
    return path


def _token_url(tenant: EmulatedTenant, scheme: str | None) -> Path:
    """The config with apple.token_url made plain http (or left out, for the environment)."""
    config = _with(tenant)
    url = tenant.emu.apple_token_url
    line = f'token_url = "{url}"\n'
    new = f'token_url = "{url.replace("https://", scheme)}"\n' if scheme else ""
    config.write_text(config.read_text().replace(line, new))
    return config


def secrets(tenant: EmulatedTenant) -> list[str]:
    """What no refusal may print: the M2M secret and every line of the Apple key."""
    lines = [ln.strip() for ln in tenant.key_path.read_text().splitlines()
             if ln.strip() and not ln.startswith("-----")]
    return [tenant.client_secret, *lines]


@pytest.mark.parametrize("name", list(CASES))
def test_check_config_and_run_once_refuse_it_alike(
    name: str, tenant: EmulatedTenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """check-config and run-once: exit 2, one line naming the key and the fix, nothing contacted."""
    tenant.add()
    case = CASES[name](tenant, tmp_path)
    for var, value in case.env.items():
        monkeypatch.setenv(var, value)
    for command in ("check-config", "run-once"):
        run = run_cli(command, "--config", str(case.config), capsys=capsys)
        assert_refused(run, *case.says, secrets=secrets(tenant))
    assert tenant.emu.journal == []


@pytest.mark.parametrize(("command", "name"), [
    ("check-config", "listen-without-port"),
    ("run-once", "post-rotate-not-executable"),
    ("check-config", "ca-bundle-not-pem"),
    ("run-once", "audience-from-environment"),
])
def test_the_real_process_refuses_it_with_one_line(
    name: str, command: str, tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """As a process too: exit 2, one stderr line, no traceback, nothing contacted."""
    tenant.add()
    case = CASES[name](tenant, tmp_path)
    run = run_rotator(command, "--config", str(case.config), env=case.env, process=True)

    assert_refused(run, *case.says, secrets=secrets(tenant))
    assert tenant.emu.journal == []


def test_the_same_settings_done_right_pass_offline(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid listen, hooks, ca_bundle, token_url and audience: check-config 0, still offline."""
    tenant.add()
    hook = _script(tmp_path, "hook.sh", 0o755)
    config = _with(
        tenant, auth0=f'audience = "https://{tenant.emu.domain}/api/v2/"\n',
        extra=('[server]\nlisten = "[::1]:8080"\n'
               f'[hooks]\npost_rotate = ["{hook}"]\non_failure = ["sh", "-c", "true"]\n'),
    )
    run = run_cli("check-config", "--config", str(config), capsys=capsys)

    assert run.code == 0, run.output
    assert run.stdout.startswith("configuration OK: 1 connection(s)")
    assert tenant.emu.journal == []
