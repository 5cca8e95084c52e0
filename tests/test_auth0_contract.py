"""rotator and its emulator held against Auth0's published Management API description.

The emulator and the client were written by the same hands; these tests hold
both to a referee neither wrote: Auth0's own OpenAPI description (an extract
in tests/contract/, see tests/auth0_oas.py). Real flows (run-once rotating by
name and by id, with a retried 429 and the free tier's rate limit, status,
check-config --online, a dry run) go through the emulator over TLS; its
journal then holds every request rotator made and every answer it got.
Auth0's documented behaviour beyond the schemas (a PATCH without display_name
resets it to the name; ``options`` is replaced whole) is tested in
tests/test_emulator_management.py and tests/test_rotation.py.
"""

from __future__ import annotations

import importlib.machinery
import json
import secrets
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from auth0_env import EmulatedTenant, realistic_options
from auth0_oas import description, operation, query_errors, schema_errors, validator
from conftest import DAY, KEY_ID, ROOT, SERVICES_ID, run_rotator
from emulator_helpers import bearer, client_for, get_token

from rotator.emulator import Emulator, Fault, Request
from rotator.secret import generate_throwaway_key

# One worker runs the module: its flows are set up once, not once per worker.
pytestmark = pytest.mark.xdist_group("auth0_contract")

EXTRACTOR = ROOT / "scripts" / "extract-auth0-oas"
FILLERS = 55  # more oauth2 connections than one page of 50 holds


@dataclass(frozen=True)
class Flows:
    """The emulator after rotator's real flows, and what they left in its journal."""

    tenant: EmulatedTenant
    rotator: list[Request]  # the Management API requests rotator made
    began: float  # time.time() around the flows
    ended: float


def _management(journal: list[Request]) -> list[Request]:
    return [r for r in journal if r.path.startswith("/api/v2")]


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flows]:
    """Run-once, status, check-config --online and a dry run against one emulated tenant."""
    tmp = tmp_path_factory.mktemp("contract")
    key_path = tmp / f"AuthKey_{KEY_ID}.p8"
    generate_throwaway_key(key_path)
    with Emulator() as emu:
        tenant = EmulatedTenant(emu, tmp, key_path)
        for number in range(FILLERS):
            emu.add_connection({"name": f"filler-{number:02d}", "display_name": "Filler"})
        tenant.add("apple", client_secret=tenant.mint(age=40 * DAY))  # due: read by name
        ios = tenant.add("apple-ios", services_id="com.example.ios")  # not due: read by id
        # An older connection without display_name, and no secret yet: due.
        emu.add_connection({"name": "bare", "strategy": "oauth2",
                            "options": realistic_options(None, "com.example.other")})
        config = tenant.write_config([("apple", SERVICES_ID),
                                      (ios["id"], "com.example.ios"),
                                      ("bare", "com.example.other")])
        emu.inject(Fault(method="PATCH", path="/api/v2/connections/", status=429, retry_after=0))
        began = time.time()
        runs = [
            run_rotator("run-once", "--config", str(config)),
            run_rotator("status", "--config", str(config)),
            run_rotator("status", "--json", "--config", str(config)),
            run_rotator("check-config", "--online", "--config", str(config)),
            run_rotator("run-now", "--dry-run", "--config", str(config)),
        ]
        emu.set_rate_limit(2, 2.0)  # Auth0's free tier: the pacer and 429s come into play
        runs.append(run_rotator("run-now", "--connection", "apple", "--config", str(config)))
        runs.append(run_rotator("status", "--config", str(config)))
        emu.set_rate_limit(None, None)
        # A native apple connection: looked up among oauth2, then by name alone, refused.
        emu.add_connection({"name": "native", "strategy": "apple", "options": {}})
        native = tenant.write_config([("native", SERVICES_ID)])  # over config
        refused = run_rotator("status", "--config", str(native))
        assert refused.code == 1, refused.output
        ended = time.time()
        for run in runs:
            assert run.code == 0, run.output
        yield Flows(tenant, _management(emu.journal), began, ended)


def test_flows_cover_every_operation_rotator_uses(flows: Flows) -> None:
    """The flows read by name and strategy, read by id, and PATCH (once refused with 429)."""
    seen = {(operation(r.method, r.path) or _unknown(r)).name for r in flows.rotator}
    assert seen == {"GET /connections", "GET /connections/{id}", "PATCH /connections/{id}"}
    lists = [r for r in flows.rotator if r.method == "GET" and r.path == "/api/v2/connections"]
    assert all(r.query.get("name") for r in lists)
    assert {tuple(r.query.get("strategy", [])) for r in lists} == {("oauth2",), ()}
    assert 429 in {r.status for r in flows.rotator}
    assert {r.status for r in flows.rotator if r.method == "PATCH"} >= {200, 429}


def _unknown(request: Request) -> Any:
    pytest.fail(f"{request.method} {request.path} is no operation of Auth0's description")


def test_every_request_is_an_operation_with_declared_query_parameters(flows: Flows) -> None:
    """Each Management API request rotator made is an operation of the description, its
    query only declared parameters with valid values, authorised by a bearer token."""
    for request in flows.rotator:
        op = operation(request.method, request.path) or _unknown(request)
        assert query_errors(op, request.query) == [], request
        for name, param in op.parameters("path").items():
            assert validator(param["schema"]).is_valid(op.path_params[name])
        assert request.headers["authorization"].startswith("Bearer "), op.name
        if request.method == "GET":
            assert request.body is None, op.name


def test_every_patch_body_validates_against_update_connection_request_content(
    flows: Flows,
) -> None:
    """Every PATCH body rotator sent validates against UpdateConnectionRequestContent and
    carries options plus display_name only when the connection has one (Auth0 resets it)."""
    patches = [r for r in flows.rotator if r.method == "PATCH"]
    assert patches
    bare = flows.tenant.stored("bare")["id"]
    for request in patches:
        assert request.headers["content-type"].startswith("application/json")
        assert schema_errors("UpdateConnectionRequestContent", request.body) == []
        assert isinstance(request.body, dict)
        expected = {"options"} if request.path.endswith(bare) else {"options", "display_name"}
        assert set(request.body) == expected, request


def _get(http: httpx.Client, path: str, token: str, **params: Any) -> httpx.Response:
    response = http.get(path, headers=bearer(token), params=params)
    assert response.status_code == 200, response.text
    return response


def _token(http: httpx.Client, tenant: EmulatedTenant) -> str:
    answer = http.post("/oauth/token", data={
        "grant_type": "client_credentials", "client_id": tenant.client_id,
        "client_secret": tenant.client_secret, "audience": tenant.emu.audience,
    })
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@pytest.fixture(scope="module")
def every_form(flows: Flows) -> list[Request]:
    """Beside the flows' answers, each answer form of the three operations, asked directly."""
    emu = flows.tenant.emu
    with client_for(emu) as http:
        token = _token(http, flows.tenant)
        base = "/api/v2/connections"
        _get(http, base, token, strategy="oauth2", name="apple")
        _get(http, base, token)
        _get(http, base, token, page=1, per_page=20)
        _get(http, base, token, page=0, per_page=20, include_totals="true")
        first = _get(http, base, token, take=25, include_totals="true").json()
        following = _get(http, base, token, take=25, **{"from": first["next"]}).json()
        _get(http, base, token, take=25, **{"from": following["next"]})
        _get(http, base, token, fields="id,name", include_fields="true")
        conn_id = emu.connection("apple")["id"]
        _get(http, f"{base}/{conn_id}", token)
        _get(http, f"{base}/{conn_id}", token, fields="options", include_fields="false")
        patched = http.patch(f"{base}/{conn_id}", headers=bearer(token),
                             json={"display_name": "Sign in with Apple", "show_as_button": True})
        assert patched.status_code == 200, patched.text
    return _management(emu.journal)


def _answer_body(request: Request) -> Any:
    assert request.answer is not None, request
    return request.answer.body


def test_every_emulator_answer_validates_against_the_response_schema(
    every_form: list[Request],
) -> None:
    """Every 200 answer to the three operations (the flows' and each form asked directly)
    validates against the operation's response schema in Auth0's description."""
    forms: set[str] = set()
    for request in every_form:
        if request.status != 200:
            continue
        op = operation(request.method, request.path) or _unknown(request)
        schema = op.response_schema(200)
        assert schema is not None, op.name
        if op.name == "GET /connections":
            schema = _list_branch(request.query)
        body = _answer_body(request)
        errors = [e.message for e in validator(schema).iter_errors(body)]
        assert errors == [], (op.name, request.query, json.dumps(body)[:500])
        forms.add(_form(op.name, body))
    assert forms == {
        "GET /connections array", "GET /connections offset",
        "GET /connections checkpoint, next", "GET /connections checkpoint, last",
        "GET /connections/{id}", "PATCH /connections/{id}",
    }


def _list_branch(query: dict[str, list[str]]) -> dict[str, Any]:
    """The branch of ListConnectionsResponseContent's oneOf for the form the query asks.

    The oneOf alone cannot judge a last checkpoint page: ``{"connections": [...]}``
    is valid under both object branches (each property optional), so oneOf
    refuses it although it is what Auth0 answers. The form asked for picks the
    branch instead: checkpoint (``from``/``take``), offset with totals, or the array.
    """
    branches = description()["components"]["schemas"]["ListConnectionsResponseContent"]["oneOf"]
    array, offset, checkpoint = branches
    assert offset["$ref"].endswith("/ListConnectionsOffsetPaginatedResponseContent")
    assert checkpoint["$ref"].endswith("/ListConnectionsCheckpointPaginatedResponseContent")
    if "from" in query or "take" in query:
        return dict(checkpoint)
    if query.get("include_totals", ["false"])[-1] == "true":
        return dict(offset)
    return dict(array)


def _form(name: str, body: Any) -> str:
    if name != "GET /connections":
        return name
    if isinstance(body, list):
        return f"{name} array"
    if "total" in body:
        return f"{name} offset"
    return f"{name} checkpoint, {'next' if 'next' in body else 'last'}"


def test_every_management_answer_carries_the_rate_limit_headers(flows: Flows) -> None:
    """Every Management API answer, 429s included, carries x-ratelimit-limit, -remaining and
    -reset (epoch seconds), as Auth0 documents
    (https://auth0.com/docs/troubleshoot/customer-support/operational-policies/rate-limit-policy)."""
    answered = [r for r in flows.rotator if r.answer is not None]
    assert {r.status for r in answered} >= {200, 429}
    for request in answered:
        assert request.answer is not None
        headers = request.answer.headers
        limit, remaining = int(headers["x-ratelimit-limit"]), int(headers["x-ratelimit-remaining"])
        reset = int(headers["x-ratelimit-reset"])
        assert 0 <= remaining <= limit
        assert flows.began - 1 <= reset <= flows.ended + limit + 1, request
        if request.status == 429:
            assert remaining == 0 or "retry-after" in headers, request


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v2/connections"), ("GET", "/api/v2/connections/{id}"),
    ("PATCH", "/api/v2/connections/{id}"),
])
def test_emulator_refuses_query_parameters_the_description_does_not_declare(
    patcher: tuple[httpx.Client, str, str], method: str, path: str,
) -> None:
    """A query parameter the operation does not declare is refused with Auth0's 400
    invalid_query_string; every declared one is accepted (the forms asked above)."""
    http, token, target = patcher
    url = path.replace("/api/v2/connections/{id}", target)
    op = operation(method, url) or pytest.fail(url)
    assert "per_page_max" not in op.parameters("query")
    body = {"display_name": "x"} if method == "PATCH" else None
    response = http.request(method, url, headers=bearer(token), params={"per_page_max": "1"},
                            json=body)
    assert response.status_code == 400, response.text
    said = response.json()
    assert said["errorCode"] == "invalid_query_string"
    assert said["message"].startswith("Query validation error: "), said


def test_a_plain_list_holds_the_description_default_of_100() -> None:
    """Without page parameters a list answers per_page's documented default, 100, at most."""
    with Emulator() as emu:
        emu.add_client("m2m", "m2m-secret")
        for number in range(110):
            emu.add_connection({"name": f"filler-{number:03d}"})
        with client_for(emu) as http:
            token = get_token(http, emu, "m2m", "m2m-secret")
            response = _get(http, "/api/v2/connections", token)
            assert len(response.json()) == 100
            last = _get(http, "/api/v2/connections", token, page=1)
            assert len(last.json()) == 10


# -- the emulator's PATCH validation, held against UpdateConnectionRequestContent -------

#: A valid value for every key UpdateConnectionRequestContent allows.
ALLOWED = {
    "display_name": "Sign in with Apple",
    "options": {"client_id": "com.example.webapp", "client_secret": "s", "scope": "name email"},
    "enabled_clients": ["sampleAppClientId0000000000000001"],
    "is_domain_connection": False,
    "show_as_button": True,
    "realms": ["apple"],
    "metadata": {"team": "identity", "ticket": None},
    "authentication": {"active": True},
    "connected_accounts": {"active": False, "cross_app_access": False},
    "cross_app_access_requesting_app": {"active": False},
}
#: Bodies the description refuses, and why.
REFUSED: list[tuple[str, object]] = [
    ("empty body", {}),
    ("a list", [{"display_name": "x"}]),
    ("id", {"id": "con_0000000000000001"}),
    ("name", {"name": "apple", "display_name": "x"}),
    ("strategy", {"strategy": "oauth2"}),
    ("unknown key", {"options": {}, "client_secret": "x"}),
    ("display_name too long", {"display_name": "x" * 129}),
    ("display_name a number", {"display_name": 7}),
    ("options a list", {"options": []}),
    ("options a string", {"options": "{}"}),
    ("enabled_clients of numbers", {"enabled_clients": [1]}),
    ("is_domain_connection a string", {"is_domain_connection": "false"}),
    ("show_as_button null", {"show_as_button": None}),
    ("realms null", {"realms": None}),
    ("realms of objects", {"realms": [{}]}),
    ("metadata a list", {"metadata": ["a"]}),
    ("metadata of numbers", {"metadata": {"a": 1}}),
    ("metadata too many", {"metadata": {f"k{i}": "v" for i in range(11)}}),
    ("metadata value too long", {"metadata": {"k": "v" * 256}}),
    ("authentication without active", {"authentication": {}}),
    ("authentication with more", {"authentication": {"active": True, "more": 1}}),
    ("connected_accounts active a string", {"connected_accounts": {"active": "yes"}}),
    ("cross_app_access_requesting_app null", {"cross_app_access_requesting_app": None}),
]


@pytest.fixture(scope="module")
def patcher(flows: Flows) -> Iterator[tuple[httpx.Client, str, str]]:
    """An HTTPS client, a fresh token and the id of a throwaway connection to PATCH."""
    emu = flows.tenant.emu
    target = emu.add_connection({"name": f"target-{secrets.token_hex(4)}", "options": {}})
    with client_for(emu) as http:
        yield http, _token(http, flows.tenant), f"/api/v2/connections/{target['id']}"


def test_allowed_keys_are_exactly_those_of_the_description() -> None:
    """The table of allowed PATCH keys is the description's, each value valid under it."""
    schema = description()["components"]["schemas"]["UpdateConnectionRequestContent"]
    assert set(ALLOWED) == set(schema["properties"])
    for key, value in ALLOWED.items():
        assert schema_errors("UpdateConnectionRequestContent", {key: value}) == [], key


@pytest.mark.parametrize("key", sorted(ALLOWED))
def test_emulator_accepts_each_key_the_description_allows(
    patcher: tuple[httpx.Client, str, str], key: str,
) -> None:
    """A PATCH of each key UpdateConnectionRequestContent allows is stored and answered."""
    http, token, path = patcher
    response = http.patch(path, headers=bearer(token), json={key: ALLOWED[key]})
    assert response.status_code == 200, response.text
    assert response.json()[key] == ALLOWED[key]


@pytest.mark.parametrize("key", ["options", "enabled_clients"])
def test_emulator_accepts_null_where_the_description_does(
    patcher: tuple[httpx.Client, str, str], key: str,
) -> None:
    """options and enabled_clients may be null (the description's type lists null)."""
    http, token, path = patcher
    assert schema_errors("UpdateConnectionRequestContent", {key: None}) == []
    response = http.patch(path, headers=bearer(token), json={key: None})
    assert response.status_code == 200, response.text
    assert schema_errors("UpdateConnectionResponseContent", response.json()) == []


@pytest.mark.parametrize(("why", "body"), REFUSED, ids=[why for why, _ in REFUSED])
def test_emulator_refuses_what_the_description_refuses_as_auth0_does(
    patcher: tuple[httpx.Client, str, str], why: str, body: object,
) -> None:
    """A body UpdateConnectionRequestContent refuses gets Auth0's 400 invalid_body
    "Payload validation error", and the connection is left as it was."""
    http, token, path = patcher
    assert schema_errors("UpdateConnectionRequestContent", body) != [], why
    before = http.get(path, headers=bearer(token)).json()
    response = http.patch(path, headers={**bearer(token), "content-type": "application/json"},
                          content=json.dumps(body))
    assert response.status_code == 400, (why, response.text)
    said = response.json()
    assert said["errorCode"] == "invalid_body"
    assert said["error"] == "Bad Request"
    assert said["message"].startswith("Payload validation error: '"), said
    assert http.get(path, headers=bearer(token)).json() == before


def test_the_extract_names_its_source() -> None:
    """The extract says where it comes from: auth0/docs-v2, its path and commit."""
    source = description()["info"]["x-source"]
    assert source == {
        "repository": "auth0/docs-v2",
        "path": "main/docs/oas/management/v2/management-api-oas.json",
        "commit": "7025885d35775606d69cce7c5d428e2ab5d3e522",
    }
    assert (Path(__file__).parent / "contract" / "README.md").is_file()


def test_the_extraction_script_keeps_operations_and_every_schema_they_reach() -> None:
    """scripts/extract-auth0-oas keeps the three operations (no code samples) and follows
    $refs through schemas transitively, leaving every other path and schema out."""
    loader = importlib.machinery.SourceFileLoader("extract_auth0_oas", str(EXTRACTOR))
    module = types.ModuleType(loader.name)
    loader.exec_module(module)
    ref = "#/components/schemas/"
    op = {"responses": {"200": {"content": {"application/json": {"schema": {"$ref": ref + "A"}}}}},
          "x-codeSamples": ["..."]}
    source = {
        "openapi": "3.1.0", "info": {"title": "T", "version": "2"}, "servers": [],
        "security": [{"bearerAuth": []}],
        "paths": {"/connections": {"get": op, "post": op},
                  "/connections/{id}": {"get": op, "patch": op, "delete": op},
                  "/users": {"get": {"responses": {}}}},
        "components": {"schemas": {"A": {"$ref": ref + "B"}, "B": {"items": {"$ref": ref + "C"}},
                                   "C": {"type": "string"}, "Unused": {"type": "object"}},
                       "securitySchemes": {"bearerAuth": {"type": "http"}, "other": {}}},
    }
    cut = module.extract(source, "abc")
    assert set(cut["paths"]) == {"/connections", "/connections/{id}"}
    assert set(cut["paths"]["/connections/{id}"]) == {"get", "patch"}
    assert "x-codeSamples" not in cut["paths"]["/connections"]["get"]
    assert set(cut["components"]["schemas"]) == {"A", "B", "C"}
    assert set(cut["components"]["securitySchemes"]) == {"bearerAuth"}
    assert cut["info"]["x-source"]["commit"] == "abc"
