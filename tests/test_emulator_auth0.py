"""Tests for rotator.emulator.auth0: tokens, the rate limit and the audience, over real HTTPS
and in-process (the connections endpoints: test_emulator_management.py)."""

from __future__ import annotations

import math
import time

import httpx
import pytest
from conftest import wait_for
from emulator_helpers import (
    SECRET,
    assert_auth0_error,
    bearer,
    client_for,
    get_token,
    sample_emu,
    sample_emulator,
    sample_http,
    token_request,
)

from rotator.auth0_rules import SCOPES
from rotator.emulator import Emulator
from rotator.emulator.auth0 import Auth0

FIXTURES = (sample_emu, sample_http)  # the `emu` and `http` fixtures, used here by those names


# -- tokens -----------------------------------------------------------------------


def test_token_success(http: httpx.Client, emu: Emulator) -> None:
    """The right secret and audience get an opaque bearer token with the scopes."""
    response = http.post("/oauth/token", data=token_request(emu))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "scope", "expires_in", "token_type"}
    assert len(body["access_token"]) >= 32
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert body["scope"].split() == list(SCOPES)  # by default, all that rotator needs


def test_token_accepts_json_body(http: httpx.Client, emu: Emulator) -> None:
    """The token endpoint takes a JSON body as well as a form."""
    response = http.post("/oauth/token", json=token_request(emu))
    assert response.status_code == 200
    assert response.json()["scope"].split()[0] == "read:connections"


@pytest.mark.parametrize(("client_id", "secret"), [("full", "wrong"), ("nobody", SECRET)])
def test_token_bad_credentials(
    http: httpx.Client, emu: Emulator, client_id: str, secret: str
) -> None:
    """An unknown client or a wrong secret gets 401 access_denied."""
    response = http.post("/oauth/token", data=token_request(emu, client_id, secret))
    assert response.status_code == 401
    assert response.json() == {"error": "access_denied", "error_description": "Unauthorized"}


def test_token_wrong_audience(http: httpx.Client, emu: Emulator) -> None:
    """A token request for another audience gets 403 naming that audience."""
    fields = token_request(emu) | {"audience": "https://other.example/api/v2/"}
    response = http.post("/oauth/token", data=fields)
    assert response.status_code == 403
    assert response.json() == {
        "error": "access_denied",
        "error_description": "Service not enabled within domain: https://other.example/api/v2/",
    }


def test_token_bad_grant_type(http: httpx.Client, emu: Emulator) -> None:
    """A grant type other than client_credentials gets 400 unsupported_grant_type."""
    response = http.post("/oauth/token", data=token_request(emu) | {"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_missing_and_unknown_token(http: httpx.Client) -> None:
    """The Management API answers 401 without a token and with an unknown one."""
    missing = assert_auth0_error(http.get("/api/v2/connections"), 401, "invalid_token")
    assert missing["message"] == "Missing authentication"
    unknown = http.get("/api/v2/connections", headers=bearer("not-a-token"))
    assert assert_auth0_error(unknown, 401, "invalid_token")["message"] == "Invalid token"


def test_token_lifetime_elapsed(http: httpx.Client, emu: Emulator) -> None:
    """A token past its lifetime answers 401 Expired token."""
    emu.add_client("short", "short-secret", token_lifetime=0)
    token = get_token(http, emu, "short", "short-secret")
    response = http.get("/api/v2/connections", headers=bearer(token))
    body = assert_auth0_error(response, 401, "invalid_token")
    assert body["message"] == "Expired token received for JSON Web Token validation"


def test_expire_tokens(http: httpx.Client, emu: Emulator) -> None:
    """expire_tokens() expires every token issued so far, but not later ones."""
    old = get_token(http, emu)
    emu.expire_tokens()
    response = http.get("/api/v2/connections", headers=bearer(old))
    assert assert_auth0_error(response, 401, "invalid_token")["message"].startswith("Expired token")
    assert http.get("/api/v2/connections", headers=bearer(get_token(http, emu))).status_code == 200


# -- rate limit --------------------------------------------------------------------------


def test_rate_limit_headers_by_default(http: httpx.Client, emu: Emulator) -> None:
    """With no rate limit set, answers carry the headers of a paid tenant's generous bucket."""
    response = http.get("/api/v2/connections", headers=bearer(get_token(http, emu)))
    assert response.headers["x-ratelimit-limit"] == "1000"
    assert 990 <= int(response.headers["x-ratelimit-remaining"]) < 1000
    assert time.time() - 1 <= int(response.headers["x-ratelimit-reset"]) <= time.time() + 2


def test_rate_limit_headers_and_429(http: httpx.Client, emu: Emulator) -> None:
    """An empty bucket answers 429; every answer carries the rate-limit headers."""
    headers = bearer(get_token(http, emu))
    emu.set_rate_limit(2, 0.1)  # a token every 10 s: three quick requests exhaust the bucket
    first, second, third = (http.get("/api/v2/connections", headers=headers) for _ in range(3))
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["x-ratelimit-limit"] == "2"
    assert first.headers["x-ratelimit-remaining"] == "1"
    assert second.headers["x-ratelimit-remaining"] == "0"
    body = assert_auth0_error(third, 429, "too_many_requests")
    assert body["message"] == "Global limit has been reached"
    assert third.headers["x-ratelimit-remaining"] == "0"
    reset = int(third.headers["x-ratelimit-reset"])
    assert math.floor(time.time()) <= reset <= time.time() + 2 / 0.1 + 2


def test_rate_limit_burst_from_constructor() -> None:
    """The constructor's burst 2 at 2/s eventually answers 429, and the bucket refills."""
    with Emulator(rate_limit_burst=2, rate_limit_per_second=2) as limited:
        limited.add_client("full", SECRET)
        with client_for(limited) as client:
            headers = bearer(get_token(client, limited))
            statuses = [
                client.get("/api/v2/connections", headers=headers).status_code for _ in range(20)
            ]
            assert 429 in statuses
            wait_for(lambda: client.get("/api/v2/connections", headers=headers).status_code == 200,
                     10, "the bucket to refill")


def test_429_consumes_no_token(http: httpx.Client, emu: Emulator) -> None:
    """A stream of 429 answers does not starve the bucket: it still refills."""
    headers = bearer(get_token(http, emu))
    emu.set_rate_limit(1, 4)
    statuses: list[int] = []

    def next_is_ok() -> bool:
        statuses.append(http.get("/api/v2/connections", headers=headers).status_code)
        return len(statuses) > 1 and statuses[-1] == 200 and 429 in statuses

    wait_for(next_is_ok, 10, "a 200 after a 429")


def test_token_endpoint_not_rate_limited(http: httpx.Client, emu: Emulator) -> None:
    """Token requests neither consume nor are refused by the Management API bucket."""
    emu.set_rate_limit(1, 0.01)
    tokens = [get_token(http, emu) for _ in range(3)]
    assert http.get("/api/v2/connections", headers=bearer(tokens[0])).status_code == 200
    assert http.get("/api/v2/connections", headers=bearer(tokens[1])).status_code == 429
    emu.set_rate_limit(None, None)
    assert http.get("/api/v2/connections", headers=bearer(tokens[2])).status_code == 200


# -- custom domain audience, and the behaviour in-process ---------------------------------


def test_custom_audience_refuses_the_default_one() -> None:
    """With audience set, a token request naming https://localhost:PORT/api/v2/ gets Auth0's 403."""
    custom = "https://tenant.emulated.auth0.com/api/v2/"
    with sample_emulator(audience=custom) as emu, client_for(emu) as http:
        assert emu.audience == custom
        default = f"https://localhost:{emu.port}/api/v2/"
        refused = http.post("/oauth/token", data=token_request(emu) | {"audience": default})
        assert refused.status_code == 403
        assert refused.json() == {
            "error": "access_denied",
            "error_description": f"Service not enabled within domain: {default}",
        }
        assert http.post("/oauth/token", data=token_request(emu)).status_code == 200


def test_auth0_in_process_without_a_socket() -> None:
    """Auth0.handle answers tokens, reads and PATCHes as plain Python, no server involved."""
    tenant = Auth0(audience="https://t.example/api/v2/")
    tenant.add_client("m2m", "s3cret")
    conn = tenant.add_connection({"name": "apple", "display_name": "Apple", "options": {"a": 1}})
    form = {"grant_type": "client_credentials", "client_id": "m2m", "client_secret": "s3cret",
            "audience": "https://t.example/api/v2/"}
    token = tenant.handle("POST", "/oauth/token", {}, {}, form)
    assert token.status == 200
    assert isinstance(token.body, dict)
    auth = {"authorization": f"Bearer {token.body['access_token']}"}
    path = f"/api/v2/connections/{conn['id']}"
    patched = tenant.handle("PATCH", path, {}, auth, {"options": {"b": 2}})
    assert patched.status == 200
    assert tenant.connection("apple")["options"] == {"b": 2}
    assert tenant.connection("apple")["display_name"] == "apple"
    assert tenant.handle("GET", path, {}, {}, None).status == 401
