"""The connections: each [[connections]] entry (or the environment's one) into settings.

An entry's own keys win over [auth0]/[apple] (and their variables) for that
connection alone; a key may be set flat in the entry or in its nested
[connections.auth0]/[connections.apple] table, not both (checked when the file
is read). Each value is checked with a message naming where it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rotator.errors import ConfigError
from rotator.modes import Needs
from rotator.settings import (
    AUDIENCE_EXAMPLE,
    DEFAULTS,
    AppleSettings,
    Auth0Settings,
    ConnectionSettings,
    Trust,
    check_apple_id,
    check_domain,
    check_https_url,
    check_identifier,
    label,
    several_tenants,
)
from rotator.sources import Sources, Table, Value, str_value

AUTH0_KEYS = ("domain", "client_id", "client_secret_file", "client_assertion_signing_key_file",
              "client_assertion_signing_alg", "ca_bundle", "audience")
APPLE_KEYS = ("team_id", "key_id", "private_key_file", "check", "token_url")


def entries(
    raw: dict[str, Any], origin: str, env: Mapping[str, str], folder: Path | None = None,
) -> list[tuple[dict[str, Table], str]]:
    """Each connection's own values (and its per-connection tables) with where it is."""
    listed = raw.get("connections", [])
    if listed:
        for var in ("AUTH0_CONNECTION", "APPLE_CLIENT_ID"):
            if env.get(var):
                raise ConfigError(
                    f"{var} is set but {origin} defines [[connections]]; "
                    f"unset {var} or move that connection into the file"
                )
        return [
            (_entry_values(entry, f"{origin} [[connections]] #{n}", folder),
             f"{origin} [[connections]] #{n}")
            for n, entry in enumerate(listed, 1)
        ]
    own: Table = {}
    for var, key in (("AUTH0_CONNECTION", "connection"), ("APPLE_CLIENT_ID", "client_id")):
        if env.get(var):
            own[key] = Value(env[var], var)
    if not own:
        raise ConfigError(
            "no connection configured: add [[connections]] to the config file "
            "(--config or ROTATOR_CONFIG), or set AUTH0_CONNECTION and APPLE_CLIENT_ID"
        )
    return [({"": own, "auth0": {}, "apple": {}}, "")]


def _entry_values(entry: dict[str, Any], where: str, folder: Path | None) -> dict[str, Table]:
    """One [[connections]] table: its own keys, and its [auth0]/[apple] keys (flat or nested)."""
    tables: dict[str, Table] = {"": {}, "auth0": {}, "apple": {}}
    for key, value in entry.items():
        if key in ("connection", "client_id"):
            tables[""][key] = Value(value, f"{where} {key}")
        elif key in ("auth0", "apple"):
            for sub, sub_value in value.items():
                tables[key][sub] = Value(sub_value, f"{where} {key}.{sub}", own=True, base=folder)
        else:
            section = "auth0" if key in AUTH0_KEYS else "apple"
            tables[section][key] = Value(value, f"{where} {key}", own=True, base=folder)
    return tables


def _bool(v: Value) -> bool:
    """A TOML boolean (the environment's words were turned into one on the way in)."""
    if isinstance(v.value, bool):
        return v.value
    hint = " (a TOML boolean: write it without quotes)" if isinstance(v.value, str) else ""
    raise ConfigError(f"{v.origin} = {v.value!r} must be true or false{hint}")


def connection(
    values: dict[str, Table],
    where: str,
    sections: dict[str, Table],
    sources: Sources,
    needs: Needs,
) -> ConnectionSettings:
    """One connection; ``where`` names its [[connections]] entry, or is "" for the environment."""
    own = values[""]
    services_id = _identifier(_required(own, "client_id", where), "the Apple Services ID")
    name = ""
    if "connection" in own or needs.connection_name:
        name = _identifier(_required(own, "connection", where), "the Auth0 connection name or id")
    apple = _apple({**sections["apple"], **values["apple"]}, sources)
    auth0_values = {**sections["auth0"], **values["auth0"]}
    trust = Trust()
    if needs.auth0 and "ca_bundle" in auth0_values:
        trust = Trust(sources.ca_bundle(auth0_values["ca_bundle"]))
    auth0 = _auth0(auth0_values, sources, trust) if needs.auth0 else None
    domain = auth0_values.get("domain")
    return ConnectionSettings(
        connection=name, client_id=services_id, auth0=auth0, apple=apple, trust=trust,
        source=where or "the environment",
        domain=domain.value.strip() if domain and isinstance(domain.value, str) else "",
    )


def _identifier(v: Value, what: str) -> str:
    return check_identifier(str_value(v, what), v.origin, what)


_MISSING = {
    "client_id": ("the Apple Services ID, e.g. com.example.webapp", "APPLE_CLIENT_ID",
                  "AUTH0_CONNECTION"),
    "connection": ("the Auth0 connection name or con_ id", "AUTH0_CONNECTION",
                   "APPLE_CLIENT_ID"),
}


def _required(own: Table, key: str, where: str) -> Value:
    if key in own:
        return own[key]
    what, var, other = _MISSING[key]
    if where:
        raise ConfigError(f"{where}: {key} ({what}) is missing; add {key} to that entry")
    raise ConfigError(f"{var} ({what}) is not set; set it along with {other}")


def _apple(apple: Table, sources: Sources) -> AppleSettings:
    ids = {}
    for key, what in (("team_id", "Team ID"), ("key_id", "Key ID")):
        if key not in apple:
            raise ConfigError(f"apple.{key} is not set; set it in [apple] or APPLE_{key.upper()}")
        ids[key] = check_apple_id(apple[key].value, apple[key].origin, what)
    token_url = DEFAULTS["token_url"]
    if "token_url" in apple:
        token_url = check_https_url(str_value(apple["token_url"], "an https:// URL"),
                                    apple["token_url"].origin, DEFAULTS["token_url"])
    apple_key = sources.apple_key(apple.get("private_key_file"))
    sources.key_name(apple_key, apple["key_id"], apple["team_id"])
    return AppleSettings(
        **ids,
        key=apple_key,
        check=_bool(apple["check"]) if "check" in apple else True,
        token_url=str(token_url),
    )


def _auth0(auth0: Table, sources: Sources, trust: Trust) -> Auth0Settings:
    for key, var in (("domain", "AUTH0_DOMAIN"), ("client_id", "AUTH0_CLIENT_ID")):
        if key not in auth0:
            raise ConfigError(f"auth0.{key} is not set; set it in [auth0] or {var}")
    domain = check_domain(str_value(auth0["domain"], "the tenant domain"),
                          auth0["domain"].origin)
    audience = None
    if "audience" in auth0:
        audience = check_https_url(
            str_value(auth0["audience"], "the Management API identifier"),
            auth0["audience"].origin, AUDIENCE_EXAMPLE)
    return Auth0Settings(
        domain=domain,
        client_id=_identifier(auth0["client_id"], "the M2M application's client id"),
        auth=sources.client_auth(auth0),
        trust=trust,
        audience=audience,
    )


def refuse_duplicates(connections: list[ConnectionSettings]) -> None:
    """One connection (same tenant, same name or id) listed twice: both entries named.

    A name and a con_ id that turn out to be the same connection can only be
    told apart by reading it; the run refuses those (exit 1, nothing written).
    """
    seen: dict[tuple[str, str], ConnectionSettings] = {}
    for conn in connections:
        ident = (conn.auth0.tenant_key if conn.auth0 else "", conn.connection)
        if (first := seen.get(ident)) is not None:
            raise ConfigError(
                f"connection {conn.connection!r} on {conn.tenant} is listed twice, in "
                f"{first.source} and {conn.source}; remove one"
            )
        seen[ident] = conn


def select(
    connections: list[ConnectionSettings], wanted: tuple[str, ...]
) -> list[ConnectionSettings]:
    """The connections ``--connection`` names: ``NAME`` in every tenant, ``TENANT/NAME`` in one.

    A selection that matches nothing is refused, naming what is configured.
    """
    if not wanted:
        return connections
    several = several_tenants(connections)
    chosen: list[ConnectionSettings] = []
    for want in (w.strip() for w in wanted):
        tenant, slash, name = want.rpartition("/")
        found = [c for c in connections
                 if c.connection == name and (not slash or c.tenant == tenant)]
        if not found:
            configured = ", ".join(sorted(label(c.connection, c.tenant, several)
                                          for c in connections)) or "none"
            tenants = sorted({c.tenant for c in connections})
            hint = ""
            if slash and tenant not in tenants:
                hint = f"; no tenant has auth0.domain {tenant!r} (tenants: {', '.join(tenants)})"
            raise ConfigError(
                f"--connection {want!r} is not configured{hint}; configured: {configured}"
            )
        chosen += [c for c in found if c not in chosen]
    return [c for c in connections if c in chosen]
