"""Configuration: defaults < TOML file < environment < command-line flags.

Everything rotator is told arrives here and leaves as one frozen
:class:`Settings`, validated, with every secret read from its file and every
key parsed. A bad value raises :class:`~rotator.errors.ConfigError` naming the
setting, where it came from and how to fix it. The environment is read in this
module only, through the ``environ`` mapping passed in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rotator.errors import ConfigError

# One table of defaults (seconds for durations).
DEFAULTS: dict[str, Any] = {
    "secret_lifetime": 180 * 86400,
    "rotate_every": 30 * 86400,
    "check_every": 3600,
    "listen": "0.0.0.0:8080",
    "hook_timeout": 30,
}
APPLE_MAX_LIFETIME = 15_777_000  # seconds; Apple's own limit on exp - now
DRIFT_WARNING = 86400  # check-config warns when lifetime leaves less than this

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# ASCII only: \d and \s would otherwise take any Unicode digit or space ("٣s").
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.ASCII)
_MAX_DIGITS = 15  # far beyond any sane duration; int() refuses over 4300 digits
_APPLE_ID = re.compile(r"^[A-Z0-9]{10}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$")

AUTH0_KEYS = ("domain", "client_id", "client_secret_file", "ca_bundle")
APPLE_KEYS = ("team_id", "key_id", "private_key_file")
SECTIONS: dict[str, tuple[str, ...]] = {
    "auth0": AUTH0_KEYS,
    "apple": APPLE_KEYS,
    "schedule": ("secret_lifetime", "rotate_every", "check_every"),
    "server": ("listen",),
    "hooks": ("post_rotate", "timeout"),
}
# In [[connections]], ``client_id`` is the Apple Services ID; the M2M client id
# of a per-connection tenant goes in a nested ``auth0 = { client_id = ... }``.
CONNECTION_KEYS = (
    "connection",
    "client_id",
    "auth0",
    "apple",
    *(k for k in AUTH0_KEYS + APPLE_KEYS if k != "client_id"),
)
_SECRET_HINTS = {
    "client_secret": "keep it out of the file: use client_secret_file or AUTH0_CLIENT_SECRET",
    "private_key": "keep it out of the file: use private_key_file or APPLE_PRIVATE_KEY",
}

# Environment variable -> (section, key).
ENV_MAP: dict[str, tuple[str, str]] = {
    "AUTH0_DOMAIN": ("auth0", "domain"),
    "AUTH0_CLIENT_ID": ("auth0", "client_id"),
    "AUTH0_CLIENT_SECRET_FILE": ("auth0", "client_secret_file"),
    "APPLE_TEAM_ID": ("apple", "team_id"),
    "APPLE_KEY_ID": ("apple", "key_id"),
    "APPLE_PRIVATE_KEY_FILE": ("apple", "private_key_file"),
    "ROTATOR_SECRET_LIFETIME": ("schedule", "secret_lifetime"),
    "ROTATOR_ROTATE_EVERY": ("schedule", "rotate_every"),
    "ROTATOR_CHECK_EVERY": ("schedule", "check_every"),
    "ROTATOR_LISTEN": ("server", "listen"),
}


def parse_duration(value: object, setting: str = "duration") -> int:
    """Seconds from ``"90s"``, ``"12h"``, ``"180d"``, ``"15m"`` or a plain integer."""
    if isinstance(value, bool):
        raise ConfigError(
            f"{setting} = {value!r} is not a duration; use e.g. \"30d\", \"12h\" or 3600"
        )
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        if len(match.group(1)) > _MAX_DIGITS:
            raise ConfigError(
                f"{setting} has {len(match.group(1))} digits, far beyond any duration; "
                "use a whole number with s, m, h or d (\"90s\", \"12h\", \"180d\")"
            )
        seconds = int(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        shown = value if isinstance(value, (str, int, float)) else type(value).__name__
        raise ConfigError(
            f"{setting} = {shown!r} is not a duration; use a whole number with s, m, h or d "
            "(\"90s\", \"12h\", \"180d\") or plain seconds"
        )
    if seconds <= 0:
        raise ConfigError(f"{setting} = {value!r} must be longer than zero")
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest exact spelling: 15552000 -> "180d", 90 -> "90s"."""
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, kw_only=True)
class Auth0Settings:
    """How to reach one Auth0 tenant's Management API."""

    domain: str
    client_id: str
    client_secret: str = field(repr=False)
    ca_bundle: Path | None = None


@dataclass(frozen=True, kw_only=True)
class AppleSettings:
    """Apple team, key id and the loaded .p8 key."""

    team_id: str
    key_id: str
    key: Any = field(repr=False)  # rotator.secret.AppleKey, imported lazily


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """The secret's lifetime and how often to rotate and look (seconds)."""

    secret_lifetime: int
    rotate_every: int
    check_every: int


@dataclass(frozen=True, kw_only=True)
class ConnectionSettings:
    """One Auth0 connection to keep supplied with a fresh Apple secret."""

    connection: str  # the Auth0 connection's name or its id "con_..."
    client_id: str  # the Apple Services ID, the secret's sub
    auth0: Auth0Settings | None
    apple: AppleSettings

    @property
    def tenant(self) -> str:
        return self.auth0.domain if self.auth0 else ""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a command needs, validated."""

    connections: tuple[ConnectionSettings, ...]
    schedule: Schedule
    listen: str
    post_rotate: tuple[str, ...] | None
    hook_timeout: int
    log_format: str | None
    log_level: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Value:
    """A raw setting and where it came from, for messages."""

    value: Any
    origin: str


@dataclass(frozen=True, kw_only=True)
class Overrides:
    """What the command line says (None: not given)."""

    config: str | None = None
    connections: tuple[str, ...] = ()
    secret_lifetime: str | None = None
    rotate_every: str | None = None
    check_every: str | None = None
    listen: str | None = None
    log_format: str | None = None
    log_level: str | None = None


def load(
    overrides: Overrides,
    environ: Mapping[str, str] | None = None,
    *,
    need_auth0: bool = True,
    need_connection_name: bool = True,
) -> Settings:
    """Merge every source into validated :class:`Settings`, or raise ConfigError.

    ``need_auth0`` is False for commands that contact nothing (``mint``):
    they need the Apple side only. ``need_connection_name`` is False for
    ``mint``, which needs a Services ID but no Auth0 connection.
    """
    env = dict(os.environ if environ is None else environ)
    path = overrides.config or env.get("ROTATOR_CONFIG") or None
    origin_file = path or ""
    raw = _read_toml(Path(path)) if path else {}
    _check_keys(raw, origin_file)

    sections: dict[str, dict[str, Value]] = {name: {} for name in SECTIONS}
    for name in SECTIONS:
        for key, value in raw.get(name, {}).items():
            sections[name][key] = Value(value, f"{origin_file} [{name}] {key}")
    for var, (name, key) in ENV_MAP.items():
        if env.get(var):
            sections[name][key] = Value(env[var], var)
    for key in ("secret_lifetime", "rotate_every", "check_every"):
        if (flag := getattr(overrides, key)) is not None:
            sections["schedule"][key] = Value(flag, f"--{key.replace('_', '-')}")
    if overrides.listen is not None:
        sections["server"]["listen"] = Value(overrides.listen, "--listen")

    schedule = _schedule(sections["schedule"])
    warnings: list[str] = []
    if APPLE_MAX_LIFETIME - schedule.secret_lifetime < DRIFT_WARNING:
        warnings.append(
            f"secret_lifetime {format_duration(schedule.secret_lifetime)} leaves less than a day "
            "below Apple's limit for clock drift; 180d is the safe default"
        )

    secrets = _SecretSources(env)
    conn_raw = raw.get("connections", [])
    if conn_raw:
        for var in ("AUTH0_CONNECTION", "APPLE_CLIENT_ID"):
            if env.get(var):
                raise ConfigError(
                    f"{var} is set but {origin_file} defines [[connections]]; "
                    f"unset {var} or move that connection into the file"
                )
        wheres = [f"{origin_file} [[connections]] #{n}" for n in range(1, len(conn_raw) + 1)]
        entries = [
            _connection_values(entry, where) for entry, where in zip(conn_raw, wheres, strict=True)
        ]
    else:
        entry: dict[str, Value] = {}
        if env.get("AUTH0_CONNECTION"):
            entry["connection"] = Value(env["AUTH0_CONNECTION"], "AUTH0_CONNECTION")
        if env.get("APPLE_CLIENT_ID"):
            entry["client_id"] = Value(env["APPLE_CLIENT_ID"], "APPLE_CLIENT_ID")
        if not entry:
            raise ConfigError(
                "no connection configured: add [[connections]] to the config file "
                "(--config or ROTATOR_CONFIG), or set AUTH0_CONNECTION and APPLE_CLIENT_ID"
            )
        entries = [{"": entry}]
        wheres = [""]  # the environment

    connections = []
    for values, where in zip(entries, wheres, strict=True):
        conn = _connection(values, where, sections, secrets, need_auth0, need_connection_name)
        connections.append(conn)
    if need_connection_name:
        seen: set[tuple[str, str]] = set()
        for conn in connections:
            ident = (conn.tenant, conn.connection)
            if ident in seen:
                raise ConfigError(
                    f"connection {conn.connection!r} on {conn.tenant} is listed twice; remove one"
                )
            seen.add(ident)

    if overrides.connections:
        known = {c.connection for c in connections}
        unknown = [name for name in overrides.connections if name not in known]
        if unknown:
            raise ConfigError(
                f"--connection {unknown[0]!r} is not configured; "
                f"configured: {', '.join(sorted(known)) or 'none'}"
            )
        connections = [c for c in connections if c.connection in overrides.connections]

    post_rotate = None
    if (hook := sections["hooks"].get("post_rotate")) is not None:
        if (
            not isinstance(hook.value, list)
            or not hook.value
            or not all(isinstance(a, str) and a for a in hook.value)
        ):
            raise ConfigError(
                f"{hook.origin} must be a non-empty list of strings (an argv), "
                'e.g. ["/usr/local/bin/reload-app", "--quiet"]'
            )
        post_rotate = tuple(hook.value)
    hook_timeout = DEFAULTS["hook_timeout"]
    if (timeout := sections["hooks"].get("timeout")) is not None:
        hook_timeout = parse_duration(timeout.value, timeout.origin)

    listen = sections["server"].get("listen", Value(DEFAULTS["listen"], "default"))
    if not isinstance(listen.value, str):
        raise ConfigError(f"{listen.origin} must be a string like \"0.0.0.0:8080\"")

    log_format = overrides.log_format or env.get("ROTATOR_LOG_FORMAT") or None
    if log_format not in (None, "json", "console"):
        origin = "--log-format" if overrides.log_format else "ROTATOR_LOG_FORMAT"
        raise ConfigError(f"{origin} = {log_format!r}; use json or console")

    return Settings(
        connections=tuple(connections),
        schedule=schedule,
        listen=listen.value,
        post_rotate=post_rotate,
        hook_timeout=hook_timeout,
        log_format=log_format,
        log_level=overrides.log_level or "info",
        warnings=tuple(warnings) + secrets.warnings(),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # here: `rotator mint` from the environment never needs it

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; check --config or ROTATOR_CONFIG"
        ) from None
    except (PermissionError, IsADirectoryError, UnicodeDecodeError, OSError) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise ConfigError(f"config file {path} cannot be read ({reason})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _unknown(key: str, where: str, allowed: tuple[str, ...]) -> ConfigError:
    hint = _SECRET_HINTS.get(key, f"known keys: {', '.join(allowed)}")
    return ConfigError(f"{where}: unknown key {key!r}; {hint}")


def _check_keys(raw: dict[str, Any], origin: str) -> None:
    top = (*tuple(SECTIONS), "connections")
    for key, value in raw.items():
        if key not in top:
            raise _unknown(key, origin, top)
        if key == "connections":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{origin}: connections must be [[connections]] tables")
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{origin}: {key} must be a [{key}] table")
        for sub in value:
            if sub not in SECTIONS[key]:
                raise _unknown(sub, f"{origin} [{key}]", SECTIONS[key])
    for n, entry in enumerate(raw.get("connections", []), 1):
        where = f"{origin} [[connections]] #{n}"
        for key, value in entry.items():
            if key not in CONNECTION_KEYS:
                raise _unknown(key, where, CONNECTION_KEYS)
            if key in ("auth0", "apple"):
                if not isinstance(value, dict):
                    raise ConfigError(f"{where}: {key} must be a table of [{key}] keys")
                for sub in value:
                    if sub not in SECTIONS[key]:
                        raise _unknown(sub, f"{where} {key}", SECTIONS[key])


def _connection_values(entry: dict[str, Any], where: str) -> dict[str, dict[str, Value]]:
    """Split one [[connections]] table into its own keys and its overrides."""
    own: dict[str, Value] = {}
    auth0: dict[str, Value] = {}
    apple: dict[str, Value] = {}
    for key, value in entry.items():
        if key in ("connection", "client_id"):
            own[key] = Value(value, f"{where} {key}")
        elif key in AUTH0_KEYS:
            auth0[key] = Value(value, f"{where} {key}")
        elif key in APPLE_KEYS:
            apple[key] = Value(value, f"{where} {key}")
    for key, value in entry.get("auth0", {}).items():
        auth0[key] = Value(value, f"{where} auth0.{key}")
    for key, value in entry.get("apple", {}).items():
        apple[key] = Value(value, f"{where} apple.{key}")
    return {"": own, "auth0": auth0, "apple": apple}


def _schedule(values: dict[str, Value]) -> Schedule:
    def get(key: str) -> tuple[int, str]:
        if key in values:
            v = values[key]
            return parse_duration(v.value, v.origin), v.origin
        return DEFAULTS[key], f"schedule.{key} (default)"

    lifetime, lifetime_origin = get("secret_lifetime")
    rotate, rotate_origin = get("rotate_every")
    check, check_origin = get("check_every")
    if lifetime > APPLE_MAX_LIFETIME:
        raise ConfigError(
            f"{lifetime_origin} = {format_duration(lifetime)} ({lifetime} s) is over Apple's limit "
            f"of {APPLE_MAX_LIFETIME} s (about 182 days); use 180d or less"
        )
    if rotate >= lifetime:
        raise ConfigError(
            f"{rotate_origin} = {format_duration(rotate)} must be shorter than secret_lifetime "
            f"({format_duration(lifetime)}), or the secret expires before it is replaced"
        )
    if check >= lifetime - rotate:
        raise ConfigError(
            f"{check_origin} = {format_duration(check)} must be shorter than secret_lifetime - "
            f"rotate_every ({format_duration(lifetime - rotate)}), so a due secret is noticed "
            "before it expires"
        )
    return Schedule(secret_lifetime=lifetime, rotate_every=rotate, check_every=check)


class _SecretSources:
    """Reads secret values from the environment or files, once per file."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self._keys: dict[str, Any] = {}
        self._warned: dict[str, str] = {}

    def auth0_secret(self, file: Value | None) -> str:
        """The M2M secret: a connection's own file, else the environment, else [auth0]."""
        env_secret = self.env.get("AUTH0_CLIENT_SECRET")
        if env_secret and self.env.get("AUTH0_CLIENT_SECRET_FILE"):
            raise ConfigError(
                "AUTH0_CLIENT_SECRET and AUTH0_CLIENT_SECRET_FILE are both set; unset one"
            )
        own_file = file is not None and "[[connections]]" in file.origin
        if env_secret and not own_file:
            return env_secret.strip()
        if file is None:
            raise ConfigError(
                "no Auth0 client secret: set auth0.client_secret_file, "
                "AUTH0_CLIENT_SECRET_FILE or AUTH0_CLIENT_SECRET"
            )
        path = Path(str(file.value))
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise ConfigError(f"{file.origin}: {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ConfigError(f"{file.origin}: {path} cannot be read ({reason})") from None
        if not text:
            raise ConfigError(f"{file.origin}: {path} is empty; it must hold the M2M client secret")
        return text

    def apple_key(self, file: Value | None) -> Any:
        from rotator import secret

        env_pem = self.env.get("APPLE_PRIVATE_KEY")
        if env_pem and self.env.get("APPLE_PRIVATE_KEY_FILE"):
            raise ConfigError(
                "APPLE_PRIVATE_KEY and APPLE_PRIVATE_KEY_FILE are both set; unset one"
            )
        own_file = file is not None and "[[connections]]" in file.origin
        if env_pem and not own_file:
            if "env" not in self._keys:
                self._keys["env"] = secret.load_key(env_pem.encode(), "APPLE_PRIVATE_KEY")
            return self._keys["env"]
        if file is None:
            raise ConfigError(
                "no Apple key: set apple.private_key_file, APPLE_PRIVATE_KEY_FILE or "
                "APPLE_PRIVATE_KEY (the .p8 key from the Apple developer portal)"
            )
        path = Path(str(file.value))
        cache_key = str(path)
        if cache_key not in self._keys:
            setting = f"{file.origin}"
            pem = secret.read_key_file(path, setting)
            self._keys[cache_key] = secret.load_key(pem, f"{setting} ({path})")
            if warning := secret.key_file_warning(path):
                self._warned[cache_key] = f"{setting}: {warning}"
        return self._keys[cache_key]

    def warnings(self) -> tuple[str, ...]:
        return tuple(self._warned.values())


def _str_value(v: Value, what: str) -> str:
    if not isinstance(v.value, str) or not v.value.strip():
        raise ConfigError(f"{v.origin} must be a non-empty string ({what})")
    return v.value.strip()


def _connection(
    values: dict[str, dict[str, Value]],
    where: str,
    sections: dict[str, dict[str, Value]],
    secrets: _SecretSources,
    need_auth0: bool,
    need_name: bool,
) -> ConnectionSettings:
    """One connection; ``where`` names its [[connections]] entry, or is "" for the environment."""
    own = values[""]
    if "client_id" not in own:
        raise ConfigError(
            f"{where}: client_id (the Apple Services ID, e.g. com.example.webapp) is missing; "
            "add client_id to that entry"
            if where else
            "APPLE_CLIENT_ID (the Apple Services ID, e.g. com.example.webapp) is not set; "
            "set it along with AUTH0_CONNECTION"
        )
    services_id = _str_value(own["client_id"], "the Apple Services ID")
    name = ""
    if "connection" in own:
        name = _str_value(own["connection"], "the Auth0 connection name or id")
    elif need_name:
        raise ConfigError(
            f"{where}: connection (the Auth0 connection name or con_ id) is missing; "
            "add connection to that entry"
            if where else
            "AUTH0_CONNECTION (the Auth0 connection name or con_ id) is not set; "
            "set it along with APPLE_CLIENT_ID"
        )

    apple = {**sections["apple"], **values.get("apple", {})}
    for key in ("team_id", "key_id"):
        if key not in apple:
            env = f"APPLE_{key.upper()}"
            raise ConfigError(f"apple.{key} is not set; set it in [apple] or {env}")
        value = apple[key].value
        if not isinstance(value, str) or not _APPLE_ID.match(value):
            shown = value if isinstance(value, str) and len(value) < 40 else type(value).__name__
            raise ConfigError(
                f"{apple[key].origin} = {shown!r} is not 10 characters (A-Z, 0-9); copy the "
                f"{'Team ID' if key == 'team_id' else 'Key ID'} from the Apple developer portal"
            )
    key = secrets.apple_key(apple.get("private_key_file"))
    apple_settings = AppleSettings(
        team_id=apple["team_id"].value, key_id=apple["key_id"].value, key=key
    )

    auth0_settings = None
    if need_auth0:
        auth0 = {**sections["auth0"], **values.get("auth0", {})}
        for k, env in (("domain", "AUTH0_DOMAIN"), ("client_id", "AUTH0_CLIENT_ID")):
            if k not in auth0:
                raise ConfigError(f"auth0.{k} is not set; set it in [auth0] or {env}")
        domain = _str_value(auth0["domain"], "the tenant domain")
        if domain.startswith(("http://", "https://")) or not _DOMAIN.match(domain):
            raise ConfigError(
                f"{auth0['domain'].origin} = {domain!r} is not a bare domain; "
                "write it like example.eu.auth0.com or localhost:8443 (no https://, no path)"
            )
        ca_bundle = None
        if "ca_bundle" in auth0:
            ca_bundle = Path(_str_value(auth0["ca_bundle"], "a PEM file of CA certificates"))
            if not ca_bundle.is_file():
                raise ConfigError(f"{auth0['ca_bundle'].origin}: {ca_bundle} does not exist")
        auth0_settings = Auth0Settings(
            domain=domain,
            client_id=_str_value(auth0["client_id"], "the M2M application's client id"),
            client_secret=secrets.auth0_secret(auth0.get("client_secret_file")),
            ca_bundle=ca_bundle,
        )
    return ConnectionSettings(
        connection=name, client_id=services_id, auth0=auth0_settings, apple=apple_settings
    )
