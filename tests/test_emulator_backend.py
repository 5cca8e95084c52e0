"""Tests for rotator.emulator.backend: one request answered in-process (routing, journal,
faults) and the state helpers the tests and the emulator's users call."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from conftest import wait_for
from emulator_helpers import (
    SECRET,
    bearer,
    conn_id,
    get_token,
    sample_emu,
    sample_http,
)

from rotator.emulator import Emulator, Fault
from rotator.emulator.apple import TOKEN_PATH
from rotator.emulator.backend import Backend

FIXTURES = (sample_emu, sample_http)  # the `emu` and `http` fixtures, used here by those names
AUDIENCE = "https://backend.example/api/v2/"
JSON = {"content-type": "application/json"}


# -- over real HTTPS ----------------------------------------------------------------------------


def test_journal_records_requests(http: httpx.Client, emu: Emulator) -> None:
    """The journal keeps method, path, query, headers, body, status and answer, in order."""
    token = get_token(http, emu)
    path = f"/api/v2/connections/{conn_id(emu)}"
    http.patch(path, headers=bearer(token), params={"x": "1"}, json={"display_name": "Apple"})
    first, second = emu.journal
    assert (first.method, first.path, first.status) == ("POST", "/oauth/token", 200)
    assert isinstance(first.body, dict)
    assert first.body["grant_type"] == "client_credentials"
    assert (second.method, second.path, second.query, second.status) == (
        "PATCH",
        path,
        {"x": ["1"]},
        400,  # x is no query parameter of the operation
    )
    assert second.answer is not None
    assert second.answer.status == 400
    assert isinstance(second.answer.body, dict)
    assert second.answer.body["errorCode"] == "invalid_query_string"
    assert second.headers["authorization"] == f"Bearer {token}"
    assert second.body == {"display_name": "Apple"}
    assert first.time <= second.time
    assert SECRET not in repr(first)
    assert token not in repr(second)
    emu.clear_journal()
    assert emu.journal == []


def test_state_helpers(emu: Emulator) -> None:
    """add_connection stores a deep copy with defaults; the helpers take id or name."""
    source: dict[str, Any] = {"name": "extra", "options": {"nested": {"a": 1}}}
    stored = emu.add_connection(source)
    source["options"]["nested"]["a"] = 2
    assert stored["id"].startswith("con_")
    assert len(stored["id"]) == 20
    assert stored["strategy"] == "oauth2"
    assert emu.connection(stored["id"])["options"] == {"nested": {"a": 1}}
    emu.set_connection_options(stored["id"], {"client_secret": "s"})
    assert emu.connection("extra")["options"] == {"client_secret": "s"}
    with pytest.raises(ValueError, match="already exists"):
        emu.add_connection({"name": "extra"})
    with pytest.raises(KeyError):
        emu.connection("missing")


# -- in-process ----------------------------------------------------------------------------------


def test_the_audience_must_be_known_before_a_token_is_asked_for() -> None:
    """Without audience= (and before an emulator starts) asking for it says what to do."""
    with pytest.raises(RuntimeError, match="start the emulator, or give audience="):
        _ = Backend().audience
    assert Backend(audience=AUDIENCE).audience == AUDIENCE


def test_each_path_goes_to_its_service() -> None:
    """/auth/token to Apple (OAuth error), everything else to Auth0 (its JSON errors)."""
    backend = Backend(audience=AUDIENCE)
    apple = backend.exchange("POST", TOKEN_PATH, {}, JSON, b"{}").response
    token = backend.exchange("POST", "/oauth/token", {}, JSON, b'{"grant_type": "x"}').response
    api = backend.exchange("GET", "/api/v2/connections", {}, {}, b"").response
    other = backend.exchange("GET", "/elsewhere", {}, {}, b"").response
    assert apple is not None
    assert (apple.status, apple.body) == (400, {"error": "invalid_request"})
    assert token is not None
    assert isinstance(token.body, dict)
    assert (token.status, token.body["error"]) == (400, "unsupported_grant_type")
    assert api is not None
    assert isinstance(api.body, dict)
    assert (api.status, api.body["message"]) == (401, "Missing authentication")
    assert other is not None
    assert isinstance(other.body, dict)
    assert (other.status, other.body["errorCode"]) == (404, "not_found")
    assert [(r.path, r.status) for r in backend.journal] == [
        (TOKEN_PATH, 400), ("/oauth/token", 400), ("/api/v2/connections", 401),
        ("/elsewhere", 404)]


def test_a_body_that_does_not_parse_is_journalled_as_the_text_received() -> None:
    """The journal keeps unparsable bodies as text, so a test can see what was sent."""
    backend = Backend(audience=AUDIENCE)
    backend.exchange("PATCH", "/api/v2/connections/con_0000000000000000", {}, JSON, b"{not json")
    assert backend.journal[0].body == "{not json"


def test_a_dropped_request_is_journalled_with_no_answer() -> None:
    """drop: no answer to deliver; the journal shows status 0 and no answer."""
    backend = Backend(audience=AUDIENCE)
    backend.inject(Fault(drop=True))
    answer = backend.exchange("GET", "/api/v2/connections", {}, {}, b"")
    assert answer.response is None
    (entry,) = backend.journal
    assert (entry.status, entry.answer) == (0, None)


def test_a_delayed_request_is_in_flight_and_journalled_where_it_arrived() -> None:
    """Held by a delay, a request is in flight, then listed before a later one answered first."""
    backend = Backend(audience=AUDIENCE)
    backend.inject(Fault(path="/slow", delay=0.3))
    held = threading.Thread(target=backend.exchange, args=("GET", "/slow", {}, {}, b""))
    held.start()
    wait_for(lambda: backend.in_flight() == [("GET", "/slow")], 10, "the request in flight")
    backend.exchange("GET", "/quick", {}, {}, b"")
    assert [r.path for r in backend.journal] == ["/quick"]
    held.join(timeout=5)
    assert backend.in_flight() == []
    assert [r.path for r in backend.journal] == ["/slow", "/quick"]
