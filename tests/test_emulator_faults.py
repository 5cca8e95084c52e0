"""Tests for rotator.emulator.faults: injected faults on every route, over real HTTPS."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest
from conftest import wait_for
from emulator_helpers import (
    assert_auth0_error,
    bearer,
    client_for,
    conn_id,
    get_token,
    sample_emu,
    sample_emulator,
    sample_http,
    token_request,
)

from rotator.emulator import Emulator, Fault

FIXTURES = (sample_emu, sample_http)  # the `emu` and `http` fixtures, used here by those names


# -- faults ---------------------------------------------------------------------------------


def test_fault_status_and_retry_after(http: httpx.Client, emu: Emulator) -> None:
    """A status fault answers an Auth0-shaped error with Retry-After rounded up, once."""
    headers = bearer(get_token(http, emu))
    emu.inject(Fault(path="/api/v2/connections", status=503, retry_after=1.2))
    response = http.get("/api/v2/connections", headers=headers)
    assert_auth0_error(response, 503, "service_unavailable")
    assert response.headers["retry-after"] == "2"
    assert http.get("/api/v2/connections", headers=headers).status_code == 200


def test_fault_on_token_endpoint(http: httpx.Client, emu: Emulator) -> None:
    """A status fault on /oauth/token answers an OAuth-shaped error."""
    emu.inject(Fault(path="/oauth/token", status=429, retry_after=1))
    response = http.post("/oauth/token", data=token_request(emu))
    assert response.status_code == 429
    assert response.json()["error"] == "too_many_requests"
    assert response.headers["retry-after"] == "1"
    assert http.post("/oauth/token", data=token_request(emu)).status_code == 200


def test_fault_drop(http: httpx.Client, emu: Emulator) -> None:
    """A drop fault closes the connection unanswered: the client sees a transport error."""
    headers = bearer(get_token(http, emu))
    emu.inject(Fault(method="GET", drop=True))
    with pytest.raises(httpx.TransportError):
        http.get("/api/v2/connections", headers=headers)
    assert emu.journal[-1].status == 0
    assert http.get("/api/v2/connections", headers=headers).status_code == 200


def test_fault_delay(http: httpx.Client, emu: Emulator) -> None:
    """A delay fault holds the answer back at least that long, then handles the request."""
    headers = bearer(get_token(http, emu))
    emu.inject(Fault(delay=0.3))
    started = time.monotonic()
    response = http.get("/api/v2/connections", headers=headers)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.25


def test_fault_times(http: httpx.Client, emu: Emulator) -> None:
    """times=N applies a fault to N requests; times=None until clear_faults()."""
    headers = bearer(get_token(http, emu))
    emu.inject(Fault(status=500, times=2))
    statuses = [http.get("/api/v2/connections", headers=headers).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    emu.inject(Fault(status=502, times=None))
    assert [http.get("/api/v2/connections", headers=headers).status_code for _ in range(4)] == [
        502
    ] * 4
    emu.clear_faults()
    assert http.get("/api/v2/connections", headers=headers).status_code == 200


def test_fault_after_and_method(http: httpx.Client, emu: Emulator) -> None:
    """after=1 with method PATCH makes the second PATCH fail and leaves GETs alone."""
    headers = bearer(get_token(http, emu))
    path = f"/api/v2/connections/{conn_id(emu)}"
    emu.inject(Fault(method="PATCH", path="/api/v2/connections/", status=500, after=1))
    body = {"display_name": "Apple"}
    assert http.get(path, headers=headers).status_code == 200
    assert http.patch(path, headers=headers, json=body).status_code == 200
    assert http.get(path, headers=headers).status_code == 200
    assert http.patch(path, headers=headers, json=body).status_code == 500
    assert http.patch(path, headers=headers, json=body).status_code == 200


def test_fault_expire_tokens_after(http: httpx.Client, emu: Emulator) -> None:
    """expire_tokens_after answers normally, then the next request has an expired token."""
    headers = bearer(get_token(http, emu))
    path = f"/api/v2/connections/{conn_id(emu)}"
    emu.inject(Fault(method="GET", expire_tokens_after=True))
    assert http.get(path, headers=headers).status_code == 200
    response = http.patch(path, headers=headers, json={"display_name": "Apple"})
    assert assert_auth0_error(response, 401, "invalid_token")["message"].startswith("Expired token")


def test_fault_validation() -> None:
    """Faults refuse statuses outside 400-599 and non-positive times."""
    with pytest.raises(ValueError, match="status"):
        Fault(status=200)
    with pytest.raises(ValueError, match="times"):
        Fault(times=0)


def test_new_fault_validation() -> None:
    """A body fault may answer any status; trickle, truncate and dropped answers are checked."""
    assert Fault(body=b"{}", status=200).status == 200
    with pytest.raises(ValueError, match="trickle"):
        Fault(trickle=0)
    with pytest.raises(ValueError, match="truncate"):
        Fault(truncate=-1)
    with pytest.raises(ValueError, match="no answer"):
        Fault(drop=True, body=b"{}")
    with pytest.raises(ValueError, match="no answer"):
        Fault(answer_dropped=True, truncate=3)


# -- answer_dropped, body, truncate, trickle ------------------------------------------------


def test_fault_answer_dropped_applies_the_request(http: httpx.Client, emu: Emulator) -> None:
    """answer_dropped stores the PATCH, then closes the connection without answering."""
    headers = bearer(get_token(http, emu))
    emu.inject(Fault(method="PATCH", answer_dropped=True))
    with pytest.raises(httpx.TransportError):
        http.patch(
            f"/api/v2/connections/{conn_id(emu)}", headers=headers, json={"display_name": "New"}
        )
    assert emu.connection("apple")["display_name"] == "New"
    assert (emu.journal[-1].method, emu.journal[-1].status) == ("PATCH", 0)


def test_fault_body_replaces_the_answer(http: httpx.Client, emu: Emulator) -> None:
    """A body fault answers those bytes (status 200, JSON type) and does not apply the request."""
    headers = bearer(get_token(http, emu))
    emu.inject(Fault(method="PATCH", body=b'{"not": "a connection"'))
    response = http.patch(
        f"/api/v2/connections/{conn_id(emu)}", headers=headers, json={"display_name": "New"}
    )
    assert response.status_code == 200
    assert response.content == b'{"not": "a connection"'
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert emu.connection("apple")["display_name"] == "Apple"
    emu.inject(Fault(path="/oauth/token", body=b"<html>busy</html>", status=502))
    busy = http.post("/oauth/token", data=token_request(emu))
    assert (busy.status_code, busy.content) == (502, b"<html>busy</html>")


def test_fault_truncate_cuts_the_applied_answer(http: httpx.Client, emu: Emulator) -> None:
    """truncate applies the PATCH and sends the answer's first N bytes, Content-Length N."""
    headers = bearer(get_token(http, emu))
    emu.inject(Fault(method="PATCH", truncate=25))
    response = http.patch(
        f"/api/v2/connections/{conn_id(emu)}", headers=headers, json={"display_name": "New"}
    )
    assert response.status_code == 200
    assert len(response.content) == 25
    assert response.headers["content-length"] == "25"
    with pytest.raises(json.JSONDecodeError):
        response.json()
    full = http.get(f"/api/v2/connections/{conn_id(emu)}", headers=headers)
    assert response.content == full.content[:25]
    assert emu.connection("apple")["display_name"] == "New"


def test_fault_trickle_sends_byte_by_byte(emu: Emulator) -> None:
    """trickle sends the whole answer slowly: no read waits long, yet the answer takes long."""
    emu.inject(Fault(path="/nowhere", trickle=0.001))
    with client_for(emu, timeout=httpx.Timeout(5, read=0.1)) as http:
        started = time.monotonic()
        response = http.get("/nowhere")
        elapsed = time.monotonic() - started
    assert_auth0_error(response, 404, "not_found")
    assert elapsed >= 0.001 * (len(response.content) + 100)  # the head is over 100 bytes
    assert elapsed < 2


def test_fault_trickle_stops_with_the_emulator() -> None:
    """A trickling answer ends promptly when the emulator stops."""
    with sample_emulator() as emu, client_for(emu) as http:
        emu.inject(Fault(path="/nowhere", trickle=0.5))
        failures: list[Exception] = []

        def ask() -> None:
            try:
                http.get("/nowhere")
            except httpx.TransportError as exc:
                failures.append(exc)

        asking = threading.Thread(target=ask)
        asking.start()
        wait_for(lambda: len(emu.journal) == 1, 10, "the trickled request in the journal")
        started = time.monotonic()
        emu.stop()
        asking.join(timeout=5)
        assert time.monotonic() - started < 1.0
    assert len(failures) == 1


# -- every fault on every route ---------------------------------------------------------------

ROUTES = ["/oauth/token", "/auth/token", "/api/v2/connections"]


def send(http: httpx.Client, emu: Emulator, path: str, token: str) -> httpx.Response:
    """One ordinary request to a route: a token, an Apple check, a listing."""
    if path == "/oauth/token":
        return http.post(path, data=token_request(emu))
    if path == "/auth/token":
        form = {"client_id": "x", "client_secret": "y", "grant_type": "authorization_code"}
        return http.post(path, data=form | {"code": "z"})
    return http.get(path, headers=bearer(token))


@pytest.mark.parametrize("path", ROUTES)
def test_status_times_after_retry_after_on_every_route(
    http: httpx.Client, emu: Emulator, path: str
) -> None:
    """status, times, after and retry_after apply alike to Auth0's, Apple's and the API's routes."""
    token = get_token(http, emu)
    normal = send(http, emu, path, token).status_code
    emu.inject(Fault(path=path, status=503, times=2, after=1, retry_after=0.5))
    answers = [send(http, emu, path, token) for _ in range(4)]
    assert [a.status_code for a in answers] == [normal, 503, 503, normal]
    assert answers[1].headers["retry-after"] == "1"
    assert "error" in answers[1].json()


@pytest.mark.parametrize("path", ROUTES)
def test_drop_and_delay_on_every_route(http: httpx.Client, emu: Emulator, path: str) -> None:
    """drop and delay apply alike to Auth0's, Apple's and the API's routes."""
    token = get_token(http, emu)
    emu.inject(Fault(path=path, drop=True))
    with pytest.raises(httpx.TransportError):
        send(http, emu, path, token)
    emu.inject(Fault(path=path, delay=0.2))
    started = time.monotonic()
    assert send(http, emu, path, token).status_code < 500
    assert time.monotonic() - started >= 0.15


def test_apple_fault_answers_apple_shaped(http: httpx.Client, emu: Emulator) -> None:
    """Faults on /auth/token answer Apple-style errors, then expire Auth0 tokens if asked."""
    token = get_token(http, emu)
    emu.inject(Fault(path="/auth/token", status=500, expire_tokens_after=True))
    emu.inject(Fault(path="/auth/token", status=429))
    assert send(http, emu, "/auth/token", token).json() == {"error": "server_error"}
    assert send(http, emu, "/auth/token", token).json() == {"error": "too_many_requests"}
    assert send(http, emu, "/api/v2/connections", token).status_code == 401
