"""Tests for rotator.entries: [[connections]] entries (or the environment's one) into settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import KEY_ID, SERVICES_ID, TEAM_ID

from rotator import entries
from rotator.client_auth import ClientSecret
from rotator.errors import ConfigError
from rotator.modes import Needs
from rotator.settings import ConnectionSettings
from rotator.sources import Sources, Table, Value


def sections(key_path: Path, domain: str = "example.eu.auth0.com") -> dict[str, Table]:
    """[auth0] and [apple] as the file would give them."""
    return {
        "auth0": {"domain": Value(domain, "auth0.domain"),
                  "client_id": Value("m2m", "auth0.client_id")},
        "apple": {"team_id": Value(TEAM_ID, "apple.team_id"),
                  "key_id": Value(KEY_ID, "apple.key_id"),
                  "private_key_file": Value(str(key_path), "apple.private_key_file")},
    }


def settings(key_path: Path, raw: dict[str, Any], domain: str = "example.eu.auth0.com",
             needs: Needs = Needs.EVERYTHING) -> list[ConnectionSettings]:
    """Every connection ``raw`` lists, made as the loader makes them."""
    sources = Sources({"AUTH0_CLIENT_SECRET": "m2m-secret"})
    return [entries.connection(values, where, sections(key_path, domain), sources, needs)
            for values, where in entries.entries(raw, "rotator.toml", {})]


def test_entries_name_each_connection_by_its_place(tmp_path: Path) -> None:
    """Each [[connections]] entry is named by its number; flat and nested keys are its own."""
    raw = {"connections": [
        {"connection": "apple", "client_id": SERVICES_ID, "key_id": "OTHER12345"},
        {"connection": "b", "client_id": "x", "apple": {"check": False}},
    ]}
    got = entries.entries(raw, "rotator.toml", {}, tmp_path)
    assert [where for _, where in got] == ["rotator.toml [[connections]] #1",
                                           "rotator.toml [[connections]] #2"]
    first, second = got[0][0], got[1][0]
    assert first[""]["connection"].value == "apple"
    assert (first["apple"]["key_id"].origin, first["apple"]["key_id"].own) == (
        "rotator.toml [[connections]] #1 key_id", True)
    assert first["apple"]["key_id"].base == tmp_path
    assert second["apple"]["check"].origin == "rotator.toml [[connections]] #2 apple.check"


def test_entries_from_the_environment_without_connections() -> None:
    """With no [[connections]], AUTH0_CONNECTION and APPLE_CLIENT_ID make the one connection."""
    env = {"AUTH0_CONNECTION": "apple", "APPLE_CLIENT_ID": SERVICES_ID}
    [(values, where)] = entries.entries({}, "rotator.toml", env)
    assert where == ""
    assert {k: (v.value, v.origin) for k, v in values[""].items()} == {
        "connection": ("apple", "AUTH0_CONNECTION"), "client_id": (SERVICES_ID, "APPLE_CLIENT_ID")}


@pytest.mark.parametrize(("raw", "env", "words"), [
    ({}, {}, "no connection configured: add"),
    ({"connections": [{"connection": "a"}]}, {"APPLE_CLIENT_ID": SERVICES_ID},
     "APPLE_CLIENT_ID is set but rotator.toml defines"),
])
def test_entries_refusals(raw: dict[str, object], env: dict[str, str], words: str) -> None:
    """No connection at all, or a variable that a [[connections]] list would ignore: refused."""
    with pytest.raises(ConfigError, match=words):
        entries.entries(raw, "rotator.toml", env)


def test_connection_takes_its_own_keys_over_the_sections(key_path: Path) -> None:
    """An entry's own key wins over [apple]'s for that connection alone."""
    raw = {"connections": [
        {"connection": "a", "client_id": SERVICES_ID, "apple": {"check": False},
         "key_id": "OTHER12345"},
        {"connection": "b", "client_id": SERVICES_ID},
    ]}
    first, second = settings(key_path, raw)
    assert (first.apple.check, second.apple.check) == (False, True)
    assert (first.apple.key_id, second.apple.key_id) == ("OTHER12345", KEY_ID)
    assert first.source == "rotator.toml [[connections]] #1"
    assert first.auth0 is not None
    assert first.auth0.auth == ClientSecret("m2m-secret")


def test_connection_for_mint_needs_no_auth0_nor_name(key_path: Path) -> None:
    """For mint (Needs.KEY) no Auth0 settings are made and no connection name is asked for."""
    [conn] = settings(key_path, {"connections": [{"client_id": SERVICES_ID}]}, needs=Needs.KEY)
    assert (conn.auth0, conn.connection, conn.domain) == (None, "", "example.eu.auth0.com")


@pytest.mark.parametrize(("entry", "words"), [
    ({"client_id": SERVICES_ID}, r"#1: connection \(the Auth0 connection name or con_ id\) is "
                                 "missing; add connection to that entry"),
    ({"connection": "a", "client_id": SERVICES_ID, "check": "false"},
     r"#1 check = 'false' must be true or false \(a TOML boolean"),
])
def test_connection_refusals_name_the_entry(key_path: Path, entry: dict[str, object],
                                            words: str) -> None:
    """A missing key or a quoted boolean is refused naming the entry and the fix."""
    with pytest.raises(ConfigError, match=words):
        settings(key_path, {"connections": [entry]})


def test_refuse_duplicates_names_both_entries(key_path: Path) -> None:
    """The same connection listed twice on one tenant is refused, both entries named."""
    same = {"connection": "apple", "client_id": SERVICES_ID}
    conns = settings(key_path, {"connections": [same, same]})
    with pytest.raises(ConfigError, match=(
            "connection 'apple' on example.eu.auth0.com is listed twice, in rotator.toml "
            r"\[\[connections\]\] #1 and rotator.toml \[\[connections\]\] #2; remove one")):
        entries.refuse_duplicates(conns)
    entries.refuse_duplicates(settings(key_path, {"connections": [same]}))


def test_select_by_name_or_tenant_and_name(key_path: Path) -> None:
    """--connection NAME picks it in every tenant, TENANT/NAME in one; order is the file's."""
    raw = {"connections": [{"connection": n, "client_id": SERVICES_ID} for n in ("a", "b")]}
    one = settings(key_path, raw, domain="one.auth0.com")
    two = settings(key_path, raw, domain="two.auth0.com")
    conns = one + two
    assert entries.select(conns, ()) == conns
    assert entries.select(conns, ("b", "a")) == [one[0], one[1], two[0], two[1]]
    assert entries.select(conns, ("two.auth0.com/a",)) == [two[0]]


def test_select_refuses_what_is_not_configured(key_path: Path) -> None:
    """A --connection that matches nothing is refused, naming what is configured."""
    conns = settings(key_path, {"connections": [{"connection": "a", "client_id": SERVICES_ID}]})
    with pytest.raises(ConfigError, match=r"--connection 'z' is not configured; configured: a$"):
        entries.select(conns, ("z",))
    with pytest.raises(ConfigError, match=r"no tenant has auth0\.domain 'other\.auth0\.com'"):
        entries.select(conns, ("other.auth0.com/a",))
