"""Tests for rotator.emulator.exchange: bodies as parsed, responses as sent, requests as
journalled (in order of arrival, secrets out of repr)."""

from __future__ import annotations

import pytest

from rotator.emulator.exchange import INVALID, Journal, Request, Response, parse_body

FORM = "application/x-www-form-urlencoded"


def request(path: str, seq: int = 0) -> Request:
    """A journal entry for ``path`` (the sequence number in the query, to tell entries apart)."""
    return Request("GET", path, {"seq": [str(seq)]}, {}, None, 200, 0.0)


# -- bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"  \r\n\t"], ids=["empty", "blank"])
def test_an_empty_body_is_none(raw: bytes) -> None:
    """No body, or only whitespace, parses as None whatever the content type says."""
    assert parse_body(raw, "application/json") is None
    assert parse_body(raw, FORM) is None


def test_json_is_parsed_whatever_the_content_type() -> None:
    """A JSON body parses as JSON, typed or not (Auth0 reads it so)."""
    assert parse_body(b'{"a": [1, true, null]}', "application/json") == {"a": [1, True, None]}
    assert parse_body(b"[1]", "") == [1]
    assert parse_body(b'"text"', "text/plain") == "text"


def test_a_body_that_does_not_parse_is_invalid() -> None:
    """Unparsable JSON is INVALID (which says so in a repr), not an exception."""
    assert parse_body(b"{not json", "application/json") is INVALID
    assert repr(INVALID) == "INVALID"


def test_a_form_is_a_dict_whose_last_value_wins() -> None:
    """A form (content type with parameters too) is a dict; blanks kept; a repeat's last wins."""
    raw = b"grant_type=client_credentials&scope=&client_id=a&client_id=b&x=%2F%20"
    assert parse_body(raw, FORM + "; charset=utf-8") == {
        "grant_type": "client_credentials", "scope": "", "client_id": "b", "x": "/ "}


def test_a_form_with_bad_utf8_still_parses() -> None:
    """Bytes that are not UTF-8 are replaced, not refused: the form's other fields stay usable."""
    assert parse_body(b"a=%FF&b=1", FORM) == {"a": "\ufffd", "b": "1"}


# -- responses and requests ----------------------------------------------------------------


def test_a_response_sends_its_body_as_json_or_its_raw_bytes() -> None:
    """content() is the JSON of body, unless raw bytes (even empty ones) were given."""
    assert Response(200, {"a": "é"}).content() == b'{"a": "\\u00e9"}'
    assert Response(204).content() == b"null"
    assert Response(200, {"a": 1}, raw=b"<html>").content() == b"<html>"
    assert Response(200, {"a": 1}, raw=b"").content() == b""


def test_a_request_repr_shows_the_route_and_hides_headers_and_body() -> None:
    """Headers, body and answer stay out of repr: they carry secrets and tokens."""
    answer = Response(200, {"access_token": "tok-in-answer"})
    entry = Request("POST", "/oauth/token", {}, {"authorization": "Bearer tok-in-header"},
                    {"client_secret": "secret-in-body"}, 200, 1.0, answer)
    shown = repr(entry)
    assert "POST" in shown
    assert "/oauth/token" in shown
    assert "status=200" in shown
    for secret in ("tok-in-answer", "tok-in-header", "secret-in-body"):
        assert secret not in shown


# -- the journal ------------------------------------------------------------------------------


def test_requests_are_kept_in_order_of_arrival_not_of_answer() -> None:
    """A request answered late is listed where it arrived; in flight until recorded."""
    journal = Journal()
    slow, quick = journal.arrive("PATCH", "/slow"), journal.arrive("GET", "/quick")
    assert journal.in_flight() == [("PATCH", "/slow"), ("GET", "/quick")]
    journal.record(quick, request("/quick"))
    assert journal.in_flight() == [("PATCH", "/slow")]
    assert [r.path for r in journal.entries()] == ["/quick"]
    journal.record(slow, request("/slow"))
    assert journal.in_flight() == []
    assert [r.path for r in journal.entries()] == ["/slow", "/quick"]


def test_clear_forgets_what_was_recorded_and_numbering_goes_on() -> None:
    """After clear() the journal is empty; later requests are numbered after the earlier."""
    journal = Journal()
    journal.record(journal.arrive(), request("/before"))
    journal.clear()
    assert journal.entries() == []
    later = journal.arrive()
    assert later == 2
    journal.record(later, request("/after"))
    assert [r.path for r in journal.entries()] == ["/after"]

