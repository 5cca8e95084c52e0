"""Tests for rotator.emulator.management: Auth0's connections endpoints (list, get, PATCH) and
its error bodies, over real HTTPS and in-process."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from emulator_helpers import (
    OPTIONS,
    assert_auth0_error,
    bearer,
    conn_id,
    get_token,
    sample_emu,
    sample_http,
)

from rotator.emulator import DEFAULT_SCOPES, Emulator
from rotator.emulator.exchange import Response
from rotator.emulator.management import Connections, api_error, route

FIXTURES = (sample_emu, sample_http)  # the `emu` and `http` fixtures, used here by those names
CON = "con_AAAAAAAAAAAAAAAA"
ALL = frozenset(DEFAULT_SCOPES)


# -- reading connections --------------------------------------------------------------


def test_list_plain_array_with_filters(http: httpx.Client, emu: Emulator) -> None:
    """Without pagination parameters the list is a plain array filtered by name and strategy."""
    emu.add_connection({"name": "google", "strategy": "google-oauth2"})
    emu.add_connection({"name": "native-apple", "strategy": "apple"})
    headers = bearer(get_token(http, emu))
    everything = http.get("/api/v2/connections", headers=headers).json()
    assert [c["name"] for c in everything] == ["apple", "google", "native-apple"]
    by_name = http.get("/api/v2/connections", headers=headers, params={"name": "apple"}).json()
    assert [c["name"] for c in by_name] == ["apple"]
    assert set(by_name[0]) == {
        "id",
        "name",
        "display_name",
        "strategy",
        "options",
        "realms",
        "is_domain_connection",
    }  # no enabled_clients: Auth0's ConnectionForList has none
    repeated = http.get(
        "/api/v2/connections",
        headers=headers,
        params=[("strategy", "oauth2"), ("strategy", "apple")],
    ).json()
    assert [c["name"] for c in repeated] == ["apple", "native-apple"]
    comma = http.get(
        "/api/v2/connections", headers=headers, params={"strategy": "apple,google-oauth2"}
    )
    assert [c["name"] for c in comma.json()] == ["google", "native-apple"]


def test_list_include_totals(http: httpx.Client, emu: Emulator) -> None:
    """page/per_page with include_totals=true wraps the page in total, start and limit."""
    emu.add_connection({"name": "second"})
    params = {"page": "1", "per_page": "1", "include_totals": "true"}
    body = http.get(
        "/api/v2/connections", headers=bearer(get_token(http, emu)), params=params
    ).json()
    assert body["total"] == 2
    assert body["start"] == 1
    assert body["limit"] == 1
    assert [c["name"] for c in body["connections"]] == ["second"]


def test_list_checkpoint_pagination(http: httpx.Client, emu: Emulator) -> None:
    """from/take pagination returns pages with an opaque next cursor, left out on the last page."""
    for name in ("b", "c"):
        emu.add_connection({"name": name})
    headers = bearer(get_token(http, emu))
    names: list[str] = []
    params: dict[str, str] = {"take": "2", "include_totals": "true"}
    pages = 0
    while True:
        body = http.get("/api/v2/connections", headers=headers, params=params).json()
        pages += 1
        assert set(body) <= {"connections", "next"}
        names += [c["name"] for c in body["connections"]]
        if "next" not in body:
            break
        params = {"take": "2", "from": body["next"]}
    assert names == ["apple", "b", "c"]
    assert pages == 2
    only_names = {"take": "1", "fields": "name"}
    first = http.get("/api/v2/connections", headers=headers, params=only_names).json()
    assert first["connections"] == [{"name": "apple"}]
    assert "next" in first
    too_many = http.get("/api/v2/connections", headers=headers, params={"take": "101"})
    assert_auth0_error(too_many, 400, "invalid_query_string")


def test_fields_include_and_exclude(http: httpx.Client, emu: Emulator) -> None:
    """fields keeps only the listed fields, or drops them with include_fields=false."""
    headers = bearer(get_token(http, emu))
    path = f"/api/v2/connections/{conn_id(emu)}"
    kept = http.get(path, headers=headers, params={"fields": "id,name"}).json()
    assert set(kept) == {"id", "name"}
    dropped = http.get(
        path, headers=headers, params={"fields": "options", "include_fields": "false"}
    ).json()
    assert "options" not in dropped
    assert dropped["name"] == "apple"


def test_get_by_id(http: httpx.Client, emu: Emulator) -> None:
    """GET by id returns the stored connection with its options."""
    body = http.get(
        f"/api/v2/connections/{conn_id(emu)}", headers=bearer(get_token(http, emu))
    ).json()
    assert body["options"] == OPTIONS
    assert body["display_name"] == "Apple"
    assert body["strategy"] == "oauth2"


def test_get_unknown_connection(http: httpx.Client, emu: Emulator) -> None:
    """An unknown connection id answers Auth0's 404 inexistent_connection."""
    response = http.get(
        "/api/v2/connections/con_0000000000000000", headers=bearer(get_token(http, emu))
    )
    assert assert_auth0_error(response, 404, "inexistent_connection") == {
        "statusCode": 404,
        "error": "Not Found",
        "message": "The connection does not exist.",
        "errorCode": "inexistent_connection",
    }


def test_get_by_name_is_not_an_id(http: httpx.Client, emu: Emulator) -> None:
    """A connection name in the id position is refused with 400 invalid_uri, as Auth0 does."""
    response = http.get("/api/v2/connections/apple", headers=bearer(get_token(http, emu)))
    assert_auth0_error(response, 400, "invalid_uri")


def test_unknown_route(http: httpx.Client, emu: Emulator) -> None:
    """Unknown routes answer an Auth0-shaped 404 as JSON."""
    headers = bearer(get_token(http, emu))
    assert_auth0_error(http.get("/api/v2/users", headers=headers), 404, "not_found")
    assert_auth0_error(http.get("/nowhere"), 404, "not_found")
    assert_auth0_error(
        http.delete(f"/api/v2/connections/{conn_id(emu)}", headers=headers), 404, "not_found"
    )


def test_read_scope_required(http: httpx.Client, emu: Emulator) -> None:
    """Reading connections without read:connections is 403 insufficient_scope."""
    token = get_token(http, emu, "readonly", "readonly-secret")
    response = http.get("/api/v2/connections", headers=bearer(token))
    body = assert_auth0_error(response, 403, "insufficient_scope")
    assert body["message"] == "Insufficient scope, expected any of: read:connections"


def test_options_hidden_without_read_options_scope(http: httpx.Client, emu: Emulator) -> None:
    """Without read:connections_options, list, get and PATCH answers leave options out."""
    headers = bearer(get_token(http, emu, "noopts", "noopts-secret"))
    listed = http.get("/api/v2/connections", headers=headers).json()
    assert "options" not in listed[0]
    path = f"/api/v2/connections/{conn_id(emu)}"
    assert "options" not in http.get(path, headers=headers).json()
    patched = http.patch(path, headers=headers, json={"display_name": "Apple"})
    assert patched.status_code == 200
    assert "options" not in patched.json()
    assert emu.connection("apple")["options"] == OPTIONS


# -- writing connections ---------------------------------------------------------------


def test_patch_options_needs_update_options_scope(http: httpx.Client, emu: Emulator) -> None:
    """A PATCH carrying options without update:connections_options is 403 and changes nothing."""
    headers = bearer(get_token(http, emu, "noopts", "noopts-secret"))
    response = http.patch(
        f"/api/v2/connections/{conn_id(emu)}",
        headers=headers,
        json={"options": {"client_secret": "new"}, "display_name": "Apple"},
    )
    body = assert_auth0_error(response, 403, "insufficient_scope")
    assert "update:connections_options" in body["message"]
    assert emu.connection("apple")["options"] == OPTIONS


def test_patch_replaces_options_and_resets_display_name(http: httpx.Client, emu: Emulator) -> None:
    """PATCH options replaces the whole object, and a left-out display_name becomes the name."""
    path = f"/api/v2/connections/{conn_id(emu)}"
    response = http.patch(
        path, headers=bearer(get_token(http, emu)), json={"options": {"client_secret": "new"}}
    )
    assert response.status_code == 200
    assert response.json()["options"] == {"client_secret": "new"}
    stored = emu.connection("apple")
    assert stored["options"] == {"client_secret": "new"}
    assert stored["display_name"] == "apple"


def test_patch_keeps_given_display_name(http: httpx.Client, emu: Emulator) -> None:
    """A PATCH with options and display_name stores both and answers the result."""
    new_options = OPTIONS | {"client_secret": "new"}
    path = f"/api/v2/connections/{conn_id(emu)}"
    response = http.patch(
        path,
        headers=bearer(get_token(http, emu)),
        json={"options": new_options, "display_name": "Apple"},
    )
    assert response.status_code == 200
    assert response.json()["options"] == new_options
    assert response.json()["display_name"] == "Apple"
    assert emu.connection("apple")["options"] == new_options


@pytest.mark.parametrize("key", ["name", "id", "strategy"])
def test_patch_unknown_key_refused(http: httpx.Client, emu: Emulator, key: str) -> None:
    """A PATCH body with a key Auth0 does not accept is 400 invalid_body and changes nothing."""
    response = http.patch(
        f"/api/v2/connections/{conn_id(emu)}",
        headers=bearer(get_token(http, emu)),
        json={"options": {"client_secret": "new"}, key: "x"},
    )
    body = assert_auth0_error(response, 400, "invalid_body")
    assert (
        body["message"] == f"Payload validation error: 'Additional properties not allowed: {key}'."
    )
    assert emu.connection("apple")["options"] == OPTIONS


def test_patch_bad_payloads(http: httpx.Client, emu: Emulator) -> None:
    """Non-JSON bodies, non-object bodies and mistyped fields are 400 invalid_body."""
    path = f"/api/v2/connections/{conn_id(emu)}"
    headers = bearer(get_token(http, emu)) | {"Content-Type": "application/json"}
    assert_auth0_error(http.patch(path, headers=headers, content=b"{not json"), 400, "invalid_body")
    assert_auth0_error(http.patch(path, headers=headers, json=[1]), 400, "invalid_body")
    typed = http.patch(path, headers=headers, json={"options": "secret"})
    assert "Expected type object" in assert_auth0_error(typed, 400, "invalid_body")["message"]
    assert emu.connection("apple")["options"] == OPTIONS


def test_patch_unknown_connection(http: httpx.Client, emu: Emulator) -> None:
    """PATCH of an unknown id is 404 inexistent_connection."""
    response = http.patch(
        "/api/v2/connections/con_0000000000000000",
        headers=bearer(get_token(http, emu)),
        json={"display_name": "x"},
    )
    assert_auth0_error(response, 404, "inexistent_connection")


# -- in-process ----------------------------------------------------------------------------------


@pytest.fixture
def stored() -> Connections:
    """One stored connection, as Auth0 keeps it."""
    return {CON: {"id": CON, "name": "apple", "display_name": "Apple", "strategy": "oauth2",
                  "options": {"client_secret": "old"}, "enabled_clients": ["c1"]}}


def call(stored: Connections, method: str, path: str, query: dict[str, list[str]] | None = None,
         body: object = None, scopes: frozenset[str] = ALL) -> tuple[int, Any]:
    """route() with a valid token of ``scopes``: (status, body)."""
    answer = route(stored, scopes, method, path, query or {}, body)
    return answer.status, answer.body


def test_an_error_is_auth0_shaped() -> None:
    """statusCode, error (the reason phrase), message, errorCode; "Error" for an odd status."""
    made = api_error(409, "taken", "conflict")
    assert isinstance(made, Response)
    assert (made.status, made.body) == (409, {"statusCode": 409, "error": "Conflict",
                                              "message": "taken", "errorCode": "conflict"})
    assert isinstance(odd := api_error(418, "tea", "teapot").body, dict)
    assert odd["error"] == "Error"


@pytest.mark.parametrize(("method", "path", "query"), [
    ("GET", "/api/v2/connections", {"per_page": ["5"], "q": ["x"]}),
    ("GET", f"/api/v2/connections/{CON}", {"strategy": ["oauth2"]}),
    ("PATCH", f"/api/v2/connections/{CON}", {"fields": ["id"]}),
], ids=["list", "get", "patch"])
def test_a_query_parameter_the_operation_does_not_declare_is_400(
    stored: Connections, method: str, path: str, query: dict[str, list[str]],
) -> None:
    """Each operation takes only its declared parameters (PATCH none), naming the others."""
    extra = next(name for name in query if name not in ("per_page",))
    status, said = call(stored, method, path, query, {"display_name": "x"})
    assert status == 400
    assert said["errorCode"] == "invalid_query_string"
    assert said["message"] == (
        f"Query validation error: 'Additional properties not allowed: {extra}'")


@pytest.mark.parametrize("query", [
    {"per_page": ["0"]}, {"per_page": ["101"]}, {"page": ["-1"]}, {"page": ["one"]},
    {"include_totals": ["yes"]}, {"include_fields": ["maybe"]}, {"take": ["0"]},
    {"from": ["not-a-checkpoint"]},
], ids=["per_page-0", "per_page-101", "page-negative", "page-word", "include_totals",
        "include_fields", "take-0", "from"])
def test_a_bad_paging_value_is_400(stored: Connections, query: dict[str, list[str]]) -> None:
    """per_page 1-100, page >= 0, take 1-100, booleans true/false, a real checkpoint."""
    status, said = call(stored, "GET", "/api/v2/connections", query)
    assert (status, said["errorCode"]) == (400, "invalid_query_string")
    assert said["message"].startswith("Query validation error: ")


def test_the_largest_page_is_100(stored: Connections) -> None:
    """per_page=100 and take=100 are accepted."""
    assert call(stored, "GET", "/api/v2/connections", {"per_page": ["100"]})[0] == 200
    assert call(stored, "GET", "/api/v2/connections", {"take": ["100"]})[0] == 200


@pytest.mark.parametrize("path", ["/api/v2/clients", f"/api/v2/connections/{CON}/status",
                                  "/api/v2/connections/"])
def test_what_is_not_a_connections_route_is_404(stored: Connections, path: str) -> None:
    """Another resource, a sub-resource, an empty id: Auth0's 404 not_found."""
    status, said = call(stored, "GET", path)
    assert (status, said["errorCode"]) == (404, "not_found")


def test_null_options_and_enabled_clients_are_stored_as_empty(stored: Connections) -> None:
    """PATCH options or enabled_clients null: the answer keeps their types ({} and [])."""
    status, said = call(stored, "PATCH", f"/api/v2/connections/{CON}",
                        body={"options": None, "enabled_clients": None})
    assert status == 200
    assert (said["options"], said["enabled_clients"]) == ({}, [])
    assert (stored[CON]["options"], stored[CON]["enabled_clients"]) == ({}, [])


def test_the_scope_is_checked_before_the_id(stored: Connections) -> None:
    """Without read:connections even a malformed id answers 403, as Auth0 does."""
    status, said = call(stored, "GET", "/api/v2/connections/apple", scopes=frozenset())
    assert (status, said["errorCode"]) == (403, "insufficient_scope")


def test_an_answer_is_a_copy_of_what_is_stored(stored: Connections) -> None:
    """Changing an answer's options changes nothing stored."""
    status, said = call(stored, "GET", f"/api/v2/connections/{CON}")
    assert status == 200
    said["options"]["client_secret"] = "changed"
    assert stored[CON]["options"] == {"client_secret": "old"}
