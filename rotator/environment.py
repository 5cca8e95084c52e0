"""Every environment variable rotator reads, in one table, read in this module only.

:data:`VARIABLES` names each one, what it sets and whether it carries a
secret. The loader takes one :func:`snapshot` of them (so a run sees one
consistent environment, and tests pass their own mapping); the TLS set-up asks
:func:`tls_files`; hooks inherit :func:`for_children`, which leaves the secrets
out. The proxy variables (``HTTPS_PROXY``, ``NO_PROXY``) are read by httpx and
the standard library as documented there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    """One environment variable rotator reads."""

    name: str
    #: The configuration key it sets ("auth0.domain"), or what it is for.
    sets: str
    #: (section, key) when it is one of the configuration file's keys.
    key: tuple[str, str] | None = None
    #: It carries a secret: never passed on to a hook.
    secret: bool = False


def _key(name: str, section: str, key: str) -> Variable:
    return Variable(name, f"{section}.{key}", (section, key))


VARIABLES: tuple[Variable, ...] = (
    Variable("ROTATOR_CONFIG", "the configuration file, when --config is not given"),
    _key("AUTH0_DOMAIN", "auth0", "domain"),
    _key("AUTH0_CLIENT_ID", "auth0", "client_id"),
    Variable("AUTH0_CLIENT_SECRET", "the M2M client secret itself", secret=True),
    _key("AUTH0_CLIENT_SECRET_FILE", "auth0", "client_secret_file"),
    Variable("AUTH0_CLIENT_ASSERTION_SIGNING_KEY",
             "the Private Key JWT signing key itself (PEM text)", secret=True),
    _key("AUTH0_CLIENT_ASSERTION_SIGNING_KEY_FILE", "auth0", "client_assertion_signing_key_file"),
    _key("AUTH0_CLIENT_ASSERTION_SIGNING_ALG", "auth0", "client_assertion_signing_alg"),
    _key("AUTH0_AUDIENCE", "auth0", "audience"),
    Variable("AUTH0_CONNECTION", "the one connection's name or con_ id (no [[connections]])"),
    _key("APPLE_TEAM_ID", "apple", "team_id"),
    _key("APPLE_KEY_ID", "apple", "key_id"),
    Variable("APPLE_PRIVATE_KEY", "the .p8 key itself (PEM text)", secret=True),
    _key("APPLE_PRIVATE_KEY_FILE", "apple", "private_key_file"),
    _key("APPLE_CHECK", "apple", "check"),
    _key("APPLE_TOKEN_URL", "apple", "token_url"),
    Variable("APPLE_CLIENT_ID", "the one connection's Services ID (no [[connections]])"),
    _key("ROTATOR_SECRET_LIFETIME", "schedule", "secret_lifetime"),
    _key("ROTATOR_ROTATE_EVERY", "schedule", "rotate_every"),
    _key("ROTATOR_CHECK_EVERY", "schedule", "check_every"),
    _key("ROTATOR_DEADLINE", "schedule", "deadline"),
    _key("ROTATOR_PARALLEL_TENANTS", "schedule", "parallel_tenants"),
    _key("ROTATOR_LISTEN", "server", "listen"),
    Variable("ROTATOR_LOG_FORMAT", "json or console, when --log-format is not given"),
    Variable("PATH", "where hook commands without a slash are looked up"),
    Variable("SSL_CERT_FILE", "CA certificates trusted besides the system store"),
    Variable("SSL_CERT_DIR", "a directory of CA certificates (OpenSSL's own variable)"),
)
NAMES = frozenset(v.name for v in VARIABLES)
#: Environment variable -> (section, key) of the configuration file.
KEYS: dict[str, tuple[str, str]] = {v.name: v.key for v in VARIABLES if v.key is not None}
SECRETS = frozenset(v.name for v in VARIABLES if v.secret)


#: rotator's own name spaces (every such name rotator reads is in the table; a test checks).
PREFIXES = ("AUTH0_", "APPLE_", "ROTATOR_")


def snapshot(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """rotator's variables as set now (from ``environ``, else this process's environment)."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k in NAMES or k.startswith(PREFIXES)}


def tls_files() -> tuple[str | None, str | None]:
    """``SSL_CERT_FILE`` and ``SSL_CERT_DIR`` as they are now."""
    return os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")


def for_children(extra: Mapping[str, str]) -> dict[str, str]:
    """What a hook inherits: this process's environment without rotator's secrets, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env.update(extra)
    return env
