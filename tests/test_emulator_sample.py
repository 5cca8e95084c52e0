"""Tests for rotator.emulator.sample: the one realistic Apple connection, its options' shape,
and that rotator writes it keeping every option it never heard of."""

from __future__ import annotations

import copy

from fakes import FakeTenant

from rotator.emulator.sample import FETCH_USER_PROFILE, apple_connection, apple_options

SID = "com.example.webapp"


def test_options_are_those_of_a_custom_social_connection_for_apple() -> None:
    """client_id is the Services ID; Apple's endpoints, scope and Auth0's own keys beside it."""
    options = apple_options(SID, "old")
    assert options["client_id"] == SID
    assert options["client_secret"] == "old"
    assert options["authorizationURL"] == "https://appleid.apple.com/auth/authorize"
    assert options["tokenURL"] == "https://appleid.apple.com/auth/token"
    assert options["scope"] == "name email"
    assert options["scripts"] == {"fetchUserProfile": FETCH_USER_PROFILE}


def test_options_hold_nested_values_rotator_never_heard_of() -> None:
    """Objects within objects and lists: what a write must send back exactly as read."""
    options = apple_options(SID)
    nested = {k for k, v in options.items() if isinstance(v, dict | list)}
    assert {"scripts", "customHeaders", "upstream_params", "non_persistent_attrs"} <= nested
    assert options["upstream_params"] == {"response_mode": {"value": "form_post"}}


def test_no_client_secret_key_without_a_secret() -> None:
    """Left out, the secret is absent (not null): a connection never yet given one."""
    assert "client_secret" not in apple_options(SID)
    assert "client_secret" not in apple_connection(SID)["options"]


def test_each_call_gives_a_fresh_copy() -> None:
    """Changing what one call returned, however deep, changes nothing for the next."""
    pristine = copy.deepcopy(apple_connection(SID))
    first = apple_connection(SID)
    first["options"]["scripts"]["fetchUserProfile"] = "changed"
    first["options"]["upstream_params"]["response_mode"]["value"] = "changed"
    first["options"]["non_persistent_attrs"].append("changed")
    first["enabled_clients"].append("changed")
    assert apple_connection(SID) == pristine


def test_the_connection_takes_its_name_and_display_name() -> None:
    """name and display_name as given; the strategy stays oauth2 (a custom social connection)."""
    conn = apple_connection(SID, "s", name="apple-eu", display_name="Apple (EU)")
    assert (conn["name"], conn["display_name"], conn["strategy"]) == (
        "apple-eu", "Apple (EU)", "oauth2")


def test_rotator_rotates_it_and_every_other_option_survives() -> None:
    """rotator's rules accept it; after a write through the emulator only the secret changed."""
    tenant = FakeTenant()
    tenant.backend.add_connection(apple_connection(SID, "old"))
    found = tenant.fetch("apple", SID)
    stored = tenant.publish(found, "new")
    assert tenant.verify(found, stored, "new") == []
    assert tenant.backend.connection("apple")["options"] == apple_options(SID, "new")
    assert tenant.backend.connection("apple")["display_name"] == "Sign in with Apple"

