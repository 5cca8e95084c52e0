"""The loader: defaults < TOML file < environment < command-line flags.

Everything rotator is told arrives here and leaves as one frozen
:class:`~rotator.settings.Settings`. This is the one validator every command
shares: each value is checked where it is read, with a message naming where it
came from (file and key, variable or flag) and the fix, so ``check-config``
refuses exactly what a run would. Secrets are read from their files here (with
a size limit), the key is parsed, ``ca_bundle`` is loaded as PEM certificates,
hook commands are looked up. The environment arrives as one snapshot
(:mod:`rotator.environment`, the table of every variable read), or as the
``environ`` mapping a caller passes in.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rotator import entries, environment
from rotator.entries import APPLE_KEYS, AUTH0_KEYS
from rotator.errors import ConfigError
from rotator.files import MAX_FILE, Unreadable, read_bounded
from rotator.modes import Needs
from rotator.paths import lock_dir, resolve
from rotator.settings import (
    APPLE_MAX_LIFETIME,
    DEFAULTS,
    DRIFT_WARNING,
    MAXIMA,
    AppleSettings,
    Auth0Settings,
    ConnectionSettings,
    HookSettings,
    Listen,
    Schedule,
    Settings,
    check_parallel,
    check_schedule,
    env_bool,
    format_duration,
    parse_duration,
    parse_listen,
)
from rotator.sources import Sources, Table, Value

__all__ = [
    "CONNECTION_KEYS", "ENV_MAP", "SECTIONS", "AppleSettings", "Auth0Settings",
    "ConnectionSettings", "Overrides", "Schedule", "Settings", "format_duration", "load",
    "parse_duration",
]

SECTIONS: dict[str, tuple[str, ...]] = {
    "auth0": AUTH0_KEYS,
    "apple": APPLE_KEYS,
    "schedule": ("secret_lifetime", "rotate_every", "check_every", "deadline",
                 "parallel_tenants"),
    "server": ("listen",),
    "hooks": ("post_rotate", "on_failure", "timeout"),
}
# In [[connections]], ``client_id`` is the Apple Services ID; the M2M client id
# of a per-connection tenant goes in a nested ``[connections.auth0]`` table.
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
    "client_assertion_signing_key": "keep it out of the file: use "
                                    "client_assertion_signing_key_file or "
                                    "AUTH0_CLIENT_ASSERTION_SIGNING_KEY",
}
#: Keys whose value is a boolean: a TOML boolean in the file, true or false in
#: the environment (see :func:`rotator.settings.env_bool`).
BOOLEAN_KEYS = ("check",)
#: Environment variable -> (section, key): the rows of the one table that set keys.
ENV_MAP = environment.KEYS


@dataclass(frozen=True, kw_only=True)
class Overrides:
    """What the command line says (None: not given)."""

    config: str | None = None
    connections: tuple[str, ...] = ()
    secret_lifetime: str | None = None
    rotate_every: str | None = None
    check_every: str | None = None
    deadline: str | None = None
    listen: str | None = None
    log_format: str | None = None
    log_level: str | None = None


def load(
    overrides: Overrides,
    environ: Mapping[str, str] | None = None,
    *,
    needs: Needs = Needs.EVERYTHING,
) -> Settings:
    """Merge every source into validated :class:`Settings`, or raise ConfigError.

    ``needs`` is what the command needs: ``Needs.KEY`` for ``mint``, which
    contacts nothing (the Apple side only, and a Services ID is enough).
    """
    env = environment.snapshot(environ)
    given = (overrides.config or env.get("ROTATOR_CONFIG") or "").strip() or None
    path = resolve(given, None) if given else None
    raw = _read_toml(path, overrides.config is None) if path else {}
    origin = str(path or "")
    folder = path.parent if path else None  # relative paths in the file start there
    _check_keys(raw, origin)
    sections = _sections(raw, origin, env, overrides, folder)
    schedule = _schedule(sections["schedule"])
    sources = Sources(env)
    connections = [
        entries.connection(entry, where, sections, sources, needs)
        for entry, where in entries.entries(raw, origin, env, folder)
    ]
    if needs.connection_name:
        entries.refuse_duplicates(connections)
    connections = entries.select(connections, overrides.connections)
    warnings = [
        f"secret_lifetime {format_duration(schedule.secret_lifetime)} leaves less than a day "
        "below Apple's limit for clock drift; 180d is the safe default"
    ] if APPLE_MAX_LIFETIME - schedule.secret_lifetime < DRIFT_WARNING else []
    warnings += sources.warnings
    return Settings(
        connections=tuple(connections),
        schedule=schedule,
        listen=_listen(sections["server"]),
        hooks=_hooks(sections["hooks"], env.get("PATH")),
        log_format=_log_format(overrides, env),
        log_level=overrides.log_level,
        warnings=tuple(warnings),
        lock_dir=lock_dir(env),
    )


# -- reading ---------------------------------------------------------------------


def _read_toml(path: Path, from_env: bool) -> dict[str, Any]:
    import tomllib  # here: `rotator mint` from the environment never needs it

    where = "ROTATOR_CONFIG" if from_env else "--config"
    try:
        return tomllib.loads(read_bounded(path, 4 * MAX_FILE).decode("utf-8"))
    except Unreadable as why:
        if why.kind == "missing":
            raise ConfigError(f"config file {path} does not exist; check {where}") from None
        raise ConfigError(f"config file {path} cannot be read ({why})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} cannot be read (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def _unknown(key: str, where: str, allowed: tuple[str, ...]) -> ConfigError:
    hint = _SECRET_HINTS.get(key, f"known keys: {', '.join(allowed)}")
    return ConfigError(f"{where}: unknown key {key!r}; {hint}")


def _check_table(table: object, where: str, allowed: tuple[str, ...], shape: str) -> None:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be {shape}")
    for key in table:
        if key not in allowed:
            raise _unknown(key, where, allowed)


def _check_keys(raw: dict[str, Any], origin: str) -> None:
    top = (*tuple(SECTIONS), "connections")
    for key, value in raw.items():
        if key not in top:
            raise _unknown(key, origin, top)
        if key != "connections":
            _check_table(value, f"{origin} [{key}]", SECTIONS[key], f"a [{key}] table")
    entries = raw.get("connections", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{origin}: connections must be [[connections]] tables")
    for n, entry in enumerate(entries, 1):
        where = f"{origin} [[connections]] #{n}"
        _check_table(entry, where, CONNECTION_KEYS, "a table")
        for sub in ("auth0", "apple"):
            if sub in entry:
                _check_table(entry[sub], f"{where} {sub}", SECTIONS[sub],
                             f"a table of [{sub}] keys")
                both = sorted(set(entry[sub]) & (set(entry) - {"client_id", "connection"}))
                if both:
                    raise ConfigError(
                        f"{where}: {both[0]} is set both flat and in [connections.{sub}]; "
                        "keep one"
                    )


def _sections(
    raw: dict[str, Any], origin: str, env: Mapping[str, str], overrides: Overrides,
    folder: Path | None,
) -> dict[str, Table]:
    """Every section's values, later sources winning: file, environment, flags."""
    sections: dict[str, Table] = {name: {} for name in SECTIONS}
    for name in SECTIONS:
        for key, value in raw.get(name, {}).items():
            sections[name][key] = Value(value, f"{origin} [{name}] {key}", base=folder)
    for var, (name, key) in ENV_MAP.items():
        if env.get(var):
            value = env_bool(env[var], var) if key in BOOLEAN_KEYS else env[var]
            sections[name][key] = Value(value, var)
    for key in ("secret_lifetime", "rotate_every", "check_every", "deadline"):
        if (flag := getattr(overrides, key)) is not None:
            sections["schedule"][key] = Value(flag, f"--{key.replace('_', '-')}")
    if overrides.listen is not None:
        sections["server"]["listen"] = Value(overrides.listen, "--listen")
    return sections


# -- values ------------------------------------------------------------------------


def _schedule(values: Table) -> Schedule:
    seconds: dict[str, int] = {}
    names: dict[str, str] = {}
    for key in ("secret_lifetime", "rotate_every", "check_every", "deadline"):
        if key in values:
            v = values[key]
            seconds[key] = parse_duration(v.value, v.origin, MAXIMA.get(key))
            names[key] = v.origin
        else:
            seconds[key] = int(DEFAULTS[key])
            names[key] = f"schedule.{key} (default)"
    check_schedule(seconds["secret_lifetime"], seconds["rotate_every"], seconds["check_every"],
                   names)
    parallel = values.get("parallel_tenants")
    tenants = DEFAULTS["parallel_tenants"]
    if parallel is not None:
        tenants = check_parallel(parallel.value, parallel.origin)
    return Schedule(**seconds, parallel_tenants=tenants)


def _listen(values: Table) -> Listen:
    listen = values.get("listen", Value(DEFAULTS["listen"], "server.listen"))
    if not isinstance(listen.value, str):
        raise ConfigError(f"{listen.origin} must be a string like \"0.0.0.0:8080\"")
    in_file = listen.origin.endswith("[server] listen")
    return parse_listen(listen.value, "server.listen" if in_file else listen.origin)


def _log_format(overrides: Overrides, env: Mapping[str, str]) -> str | None:
    log_format = (overrides.log_format or env.get("ROTATOR_LOG_FORMAT") or "").strip() or None
    if log_format not in (None, "json", "console"):
        origin = "--log-format" if overrides.log_format else "ROTATOR_LOG_FORMAT"
        raise ConfigError(f"{origin} = {log_format!r}; use json or console")
    return log_format


def _hooks(values: Table, path_env: str | None) -> HookSettings:
    timeout = DEFAULTS["hook_timeout"]
    if (t := values.get("timeout")) is not None:
        timeout = parse_duration(t.value, t.origin, MAXIMA["hooks.timeout"])
    argvs = {name: _argv(values.get(name), f"hooks.{name}", path_env)
             for name in ("post_rotate", "on_failure")}
    return HookSettings(timeout=int(timeout), **argvs)


def _argv(v: Value | None, setting: str, path_env: str | None) -> tuple[str, ...] | None:
    """A hook's argv: a non-empty list of strings whose command exists and can run."""
    if v is None:
        return None
    if (
        not isinstance(v.value, list)
        or not v.value
        or not all(isinstance(a, str) and a for a in v.value)
    ):
        raise ConfigError(
            f"{v.origin} must be a non-empty list of strings (an argv), "
            'e.g. ["/usr/local/bin/reload-app", "--quiet"]'
        )
    command = v.value[0]
    if os.sep in command or command.startswith("~"):  # a path, not a name to look up on PATH
        path = resolve(command, v.base)
        command = str(path)
        if path.is_dir():
            raise ConfigError(f"{setting}: {command} is a directory, not a command; fix the path")
        if not path.is_file():
            raise ConfigError(f"{setting}: {command} does not exist; fix the path")
        if not os.access(path, os.X_OK):
            raise ConfigError(f"{setting}: {command} is not executable; chmod +x it")
    elif shutil.which(command, path=path_env) is None:
        raise ConfigError(f"{setting}: {command!r} is not on PATH; give its absolute path")
    return (command, *v.value[1:])


