"""Tests for rotator.emulator.payload: Auth0's rules for a PATCH body, in-process, with the
messages Auth0 gives (the contract tests hold the same rules against Auth0's description)."""

from __future__ import annotations

import pytest

from rotator.emulator.exchange import INVALID
from rotator.emulator.payload import RULES, json_type, problem
from rotator.emulator.sample import apple_options

PREFIX = "Payload validation error: "


def test_what_rotator_sends_is_accepted() -> None:
    """options with a new secret, with or without display_name: no problem."""
    options = apple_options("com.example.webapp", "new-secret")
    assert problem({"options": options}) is None
    assert problem({"options": options, "display_name": "Sign in with Apple"}) is None


def test_options_may_hold_any_keys_and_values() -> None:
    """options is an object (or null) whose keys are the strategy's: any key, any JSON value."""
    odd = {"a": 1, "b": [True, None], "c": {"d": {"e": 1.5}}, "": ""}
    assert problem({"options": odd}) is None
    assert problem({"options": None}) is None


@pytest.mark.parametrize(("body", "message"), [
    (INVALID, "Invalid request payload JSON format"),
    ([{"display_name": "x"}], PREFIX + "'Expected type object but found type array'."),
    (None, PREFIX + "'Expected type object but found type null'."),
    ({}, PREFIX + "'Too few properties defined (0), minimum 1'."),
], ids=["not-json", "array", "null", "empty"])
def test_a_body_that_is_no_object_of_keys_is_refused(body: object, message: str) -> None:
    """Unparsable JSON, a non-object and an empty object each get Auth0's own message."""
    assert problem(body) == message


def test_keys_auth0_does_not_take_are_named_together() -> None:
    """name, id, strategy (and any unknown key) are refused, all named, in the body's order."""
    said = problem({"options": {}, "name": "apple", "strategy": "oauth2", "id": "con_1"})
    assert said == PREFIX + "'Additional properties not allowed: name,strategy,id'."


@pytest.mark.parametrize(("body", "said"), [
    ({"display_name": 7}, "'Expected type string but found type integer' on property display_name"),
    ({"options": []}, "'Expected type object,null but found type array' on property options"),
    ({"is_domain_connection": 1},
     "'Expected type boolean but found type integer' on property is_domain_connection"),
    ({"show_as_button": None},
     "'Expected type boolean but found type null' on property show_as_button"),
    ({"realms": ["apple", 2]},
     "'Expected type string but found type integer' on property realms[1]"),
    ({"metadata": {"a": 1.5}},
     "'Expected type string,null but found type number' on property metadata.a"),
    ({"authentication": {}}, "'Missing required property: active' on property authentication"),
    ({"authentication": {"active": True, "more": 1}},
     "'Additional properties not allowed: more' on property authentication"),
    ({"connected_accounts": {"active": "yes"}},
     "'Expected type boolean but found type string' on property connected_accounts.active"),
], ids=["display_name", "options", "is_domain_connection", "show_as_button", "realms-item",
        "metadata-value", "authentication-missing", "authentication-extra",
        "connected_accounts-field"])
def test_a_value_of_the_wrong_shape_is_refused_naming_where(body: dict[str, object],
                                                              said: str) -> None:
    """The type expected, the type found and the property's path (item index, nested key)."""
    assert problem(body) == f"{PREFIX}{said}."


def test_string_and_object_limits_are_inclusive() -> None:
    """display_name up to 128 characters, metadata up to 10 keys of values up to 255."""
    assert problem({"display_name": "x" * 128}) is None
    assert problem({"display_name": "x" * 129}) == (
        PREFIX + "'String is too long (129 chars), maximum 128' on property display_name.")
    assert problem({"metadata": {f"k{i}": "v" for i in range(10)}}) is None
    assert problem({"metadata": {f"k{i}": "v" for i in range(11)}}) == (
        PREFIX + "'Too many properties defined (11), maximum 10' on property metadata.")
    assert problem({"metadata": {"k": "v" * 255, "n": None}}) is None
    assert problem({"metadata": {"k": "v" * 256}}) == (
        PREFIX + "'String is too long (256 chars), maximum 255' on property metadata.k.")


def test_the_first_key_in_error_is_the_one_reported() -> None:
    """Keys are checked in the body's order; the message names the first that breaks a rule."""
    body = {"display_name": 1, "realms": None}
    assert problem(body) == (
        PREFIX + "'Expected type string but found type integer' on property display_name.")
    assert problem(dict(reversed(body.items()))) == (
        PREFIX + "'Expected type array but found type null' on property realms.")


def test_every_key_the_rules_know_accepts_a_value_of_its_type() -> None:
    """Each of the ten keys takes a value of its shape (a table that cannot refuse everything)."""
    valid: dict[str, object] = {
        "display_name": "Apple", "options": {}, "enabled_clients": ["c"],
        "is_domain_connection": False, "show_as_button": True, "realms": ["apple"],
        "metadata": {"team": "identity"}, "authentication": {"active": True},
        "connected_accounts": {"active": False, "cross_app_access": True},
        "cross_app_access_requesting_app": {"active": False},
    }
    assert set(valid) == set(RULES)
    for key, value in valid.items():
        assert problem({key: value}) is None, key


def test_json_type_names_parsed_values_as_json_schema_does() -> None:
    """A bool is boolean (not integer), an int integer, a float number, None null."""
    values: tuple[object, ...] = (True, 1, 1.5, "s", [], {}, None)
    named = [json_type(value) for value in values]
    assert named == ["boolean", "integer", "number", "string", "array", "object", "null"]
