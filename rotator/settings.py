"""Settings: small frozen values, and the validators that make them.

The loader (``rotator.config``, with ``entries`` and ``sources``) reads files,
the environment and flags, checks each value once with the validators here
(:func:`parse_duration`, :func:`parse_listen`, :func:`check_domain`, ...),
naming where it came from and the fix, and builds these values; nothing else
builds them, so they are not checked again. This module imports nothing heavy,
so ``rotator mint`` can use it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from rotator.errors import ConfigError

if TYPE_CHECKING:
    from rotator.client_auth import ClientAuth
    from rotator.secret import AppleKey

# One table of defaults (seconds for durations).
DEFAULTS: dict[str, Any] = {
    "secret_lifetime": 180 * 86400,
    "rotate_every": 30 * 86400,
    "check_every": 3600,
    "deadline": 300,
    "parallel_tenants": 32,
    "listen": "0.0.0.0:8080",
    "hook_timeout": 30,
    "token_url": "https://appleid.apple.com/auth/token",
}
APPLE_MAX_LIFETIME = 15_777_000  # seconds; Apple's own limit on exp - now
DRIFT_WARNING = 86400  # check-config warns when lifetime leaves less than this
#: Upper bounds past which a duration is a typo, not a wish (the schedule's are
#: bounded by Apple's limit already).
MAXIMA = {"hooks.timeout": 3600, "deadline": 86400, "warn_within": 366 * 86400,
          "parallel_tenants": 256}

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# ASCII only: \d and \s would otherwise take any Unicode digit or space ("٣s").
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.ASCII)
_MAX_DIGITS = 15  # int() refuses over 4300 digits; nothing sane has more than this
_APPLE_ID = re.compile(r"^[A-Z0-9]{10}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.ASCII)
#: Examples offered when an https:// setting is wrong.
AUDIENCE_EXAMPLE = "https://example.eu.auth0.com/api/v2/"


def parse_duration(value: object, setting: str = "duration", maximum: int | None = None) -> int:
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
    if maximum is not None and seconds > maximum:
        raise ConfigError(
            f"{setting} = {value!r} is longer than the most it can sensibly be "
            f"({format_duration(maximum)}); use a shorter duration"
        )
    return seconds


def format_duration(seconds: int) -> str:
    """The shortest exact spelling: 15552000 -> "180d", 90 -> "90s"."""
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


class Listen(NamedTuple):
    """Where ``rotator start`` serves its endpoints, parsed once (by :func:`parse_listen`)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_listen(listen: str, setting: str = "server.listen") -> Listen:
    """``"0.0.0.0:8080"``, ``"[::]:8080"`` or ``":8080"`` -> (host, port).

    Port 0 asks the system for a free port when ``start`` binds; ``start``
    names the one it got in its ``scheduler.started`` event (``listen``).
    """
    host, sep, port_text = listen.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    if (
        not sep
        or not (port_text.isascii() and port_text.isdigit())  # not "٨٠٨٠"
        or not 0 <= int(port_text) < 65536
        or (":" in host and not bracketed)  # "::1" is no HOST:PORT; "[::1]:8080" is
    ):
        raise ConfigError(
            f"{setting} = {listen!r} is not HOST:PORT with a port from 1 to 65535 (or 0: one "
            'the system picks); use e.g. "0.0.0.0:8080" (an IPv6 host in brackets: "[::]:8080")'
        )
    host = host[1:-1] if bracketed else host
    return Listen(host or "0.0.0.0", int(port_text))  # noqa: S104 - all interfaces: the default


def check_identifier(value: object, setting: str, what: str) -> str:
    """A non-empty name or id with no whitespace or control character anywhere in it.

    The loader strips surrounding whitespace (:class:`rotator.sources.Value`);
    this refuses what is left inside, so no setting ever holds a newline.
    """
    if not isinstance(value, str) or not value or any(
            c.isspace() or unicodedata.category(c).startswith("C") for c in value):
        shown = value if isinstance(value, str) and len(value) < 80 else type(value).__name__
        raise ConfigError(f"{setting} = {shown!r} must be {what}, with no spaces, line breaks "
                          "or control characters")
    return value


def check_apple_id(value: object, setting: str, what: str) -> str:
    """A 10-character Apple Team ID or Key ID, or a ConfigError naming ``setting``."""
    if not isinstance(value, str) or not _APPLE_ID.fullmatch(value):
        shown = value if isinstance(value, str) and len(value) < 40 else type(value).__name__
        raise ConfigError(
            f"{setting} = {shown!r} is not 10 characters (A-Z, 0-9); copy the "
            f"{what} from the Apple developer portal"
        )
    return value


def _host_and_port(hostport: str) -> bool:
    """A host name (dot-separated labels) or IPv4 address, and an optional port 1-65535."""
    host, colon, port = hostport.partition(":")
    if colon and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        return False
    return bool(_HOST.fullmatch(host))


def check_domain(domain: str, setting: str) -> str:
    """A bare host name, optionally with a port."""
    if domain.startswith(("http://", "https://")) or not _host_and_port(domain):
        raise ConfigError(
            f"{setting} = {domain!r} is not a bare domain; "
            "write it like example.eu.auth0.com or localhost:8443 (no https://, no path, a port "
            "from 1 to 65535)"
        )
    return domain


def check_https_url(url: str, setting: str, example: str) -> str:
    """An https:// URL with a host, no credentials in it (TLS is never optional)."""
    scheme, _, rest = url.partition("://")
    hostport = rest.split("/", 1)[0]
    if (scheme.lower() != "https" or "@" in hostport or not _host_and_port(hostport)
            or any(c.isspace() or unicodedata.category(c).startswith("C") for c in url)):
        raise ConfigError(
            f"{setting} = {url!r} is not an https:// URL with a host (and no user:password); "
            f"use e.g. {example} (TLS cannot be turned off)"
        )
    return url


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """The secret's lifetime, how often to rotate and look, and a run's deadline (seconds)."""

    secret_lifetime: int
    rotate_every: int
    check_every: int
    deadline: int = DEFAULTS["deadline"]
    #: Tenants worked on at once (each has its own rate limit; a tenant's
    #: connections are always worked on one after another).
    parallel_tenants: int = DEFAULTS["parallel_tenants"]


def env_bool(text: str, variable: str) -> bool:
    """An environment variable's boolean: the word true or false, in any case; nothing else."""
    word = text.strip().lower()
    if word not in ("true", "false"):
        raise ConfigError(f"{variable} = {text!r} must be true or false")
    return word == "true"


def check_parallel(value: object, setting: str) -> int:
    """How many tenants at once: a whole number from 1 to 256."""
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 0 < value <= MAXIMA["parallel_tenants"]:
        raise ConfigError(
            f"{setting} = {value!r} must be a whole number from 1 to "
            f"{MAXIMA['parallel_tenants']} (tenants worked on at once)"
        )
    return value


def check_schedule(
    life: int, rotate: int, check: int, names: Mapping[str, str] | None = None
) -> None:
    """The rules between the three durations; ``names`` say where each came from."""
    name = {k: k for k in ("secret_lifetime", "rotate_every", "check_every")}
    name.update(names or {})
    if life > APPLE_MAX_LIFETIME:
        raise ConfigError(
            f"{name['secret_lifetime']} = {format_duration(life)} ({life} s) is over "
            f"Apple's limit of {APPLE_MAX_LIFETIME} s (about 182 days); use 180d or less"
        )
    if rotate >= life:
        raise ConfigError(
            f"{name['rotate_every']} = {format_duration(rotate)} must be shorter than "
            f"secret_lifetime ({format_duration(life)}), or the secret expires before it "
            "is replaced"
        )
    if check >= life - rotate:
        raise ConfigError(
            f"{name['check_every']} = {format_duration(check)} must be shorter than "
            f"secret_lifetime - rotate_every ({format_duration(life - rotate)}), so a due "
            "secret is noticed before it expires"
        )


@dataclass(frozen=True)
class Trust:
    """What every HTTPS call (token, Management API, Apple) trusts: a setting of its own.

    The system store and ``SSL_CERT_FILE`` always; ``ca_bundle`` (the
    ``ca_bundle`` key) as well when it is set. Verification cannot be turned off.
    """

    ca_bundle: Path | None = None


@dataclass(frozen=True, kw_only=True)
class Auth0Settings:
    """How to reach one Auth0 tenant's Management API."""

    domain: str
    client_id: str
    #: How the M2M application authenticates: its client secret or Private Key JWT.
    auth: ClientAuth = field(repr=False)
    trust: Trust = Trust()
    audience: str | None = None  # None: https://{domain}/api/v2/

    @property
    def api_audience(self) -> str:
        """The Management API identifier a token is asked for."""
        return self.audience or f"https://{self.domain}/api/v2/"

    @property
    def tenant_key(self) -> str:
        """Which tenant these settings reach, whatever M2M application or spelling they use.

        The Management API identifier (the audience, or its default from the
        domain), host in lower case, without a trailing slash: a custom domain
        with the canonical audience is the canonical domain's tenant.
        """
        _, _, rest = self.api_audience.partition("://")
        host, _, path = rest.partition("/")
        return f"{host.lower()}/{path.rstrip('/')}"


@dataclass(frozen=True, kw_only=True)
class AppleSettings:
    """Apple team, key id, the loaded .p8 key, and whether (and where) to ask Apple."""

    team_id: str
    key_id: str
    key: AppleKey = field(repr=False)
    check: bool = True
    token_url: str = DEFAULTS["token_url"]


@dataclass(frozen=True, kw_only=True)
class ConnectionSettings:
    """One Auth0 connection to keep supplied with a fresh Apple secret."""

    connection: str  # the Auth0 connection's name or its id "con_..."
    client_id: str  # the Apple Services ID, the secret's sub
    auth0: Auth0Settings | None  # None only for commands that contact nothing (mint)
    apple: AppleSettings
    trust: Trust = Trust()  # for every HTTPS call made for this connection, Apple's too
    #: Where it was configured, for messages ("rotator.toml [[connections]] #2").
    source: str = "the environment"
    #: auth0.domain as configured, for naming the tenant when auth0 is not loaded (mint).
    domain: str = ""

    @property
    def tenant(self) -> str:
        return self.auth0.domain if self.auth0 else self.domain


def label(connection: str, tenant: str, several: bool) -> str:
    """How output names a connection: ``TENANT/NAME`` when several tenants are configured.

    The same spelling ``--connection`` takes, so a name shown can be pasted back.
    """
    return f"{tenant}/{connection}" if several and tenant else connection


def several_tenants(connections: tuple[ConnectionSettings, ...] | list[ConnectionSettings]) -> bool:
    return len({c.tenant for c in connections}) > 1


@dataclass(frozen=True, kw_only=True)
class HookSettings:
    """Commands run after a rotation, and after a failure."""

    post_rotate: tuple[str, ...] | None = None
    on_failure: tuple[str, ...] | None = None
    timeout: int = DEFAULTS["hook_timeout"]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a command needs, validated."""

    connections: tuple[ConnectionSettings, ...]
    schedule: Schedule
    listen: Listen = field(default_factory=lambda: parse_listen(DEFAULTS["listen"]))
    hooks: HookSettings = HookSettings()
    log_format: str | None = None
    log_level: str | None = None  # None: as logs.default_level decides (terminal or not)
    warnings: tuple[str, ...] = ()
    #: The lock folder and the setting that chose it; None (settings made in
    #: code, not loaded) takes no lock.
    lock_dir: tuple[Path, str] | None = None

