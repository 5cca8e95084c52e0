"""Tests for rotator.words: times and Apple's verdict said the same way everywhere."""

from __future__ import annotations

from rotator import words
from rotator.seams import AppleAnswer

SERVICES_ID = "com.example.web"


def test_iso_says_epoch_seconds_in_utc() -> None:
    """iso gives ISO 8601 UTC with a Z, and None for an unknown time."""
    assert words.iso(0) == "1970-01-01T00:00:00Z"
    assert words.iso(1_700_000_000) == "2023-11-14T22:13:20Z"
    assert words.iso(None) is None


def test_minute_says_date_and_minute_or_a_dash() -> None:
    """minute gives a UTC date and minute for tables, and "-" when the time is unknown."""
    assert words.minute(1_700_000_000) == "2023-11-14 22:13"
    assert words.minute(None) == "-"


def test_apple_problem_names_likely_causes_of_a_refusal() -> None:
    """A refused live secret is named, with the Services ID and the likely causes."""
    text = words.apple_problem(AppleAnswer("refused", "invalid_client"), "live", SERVICES_ID)
    assert text == (f"Apple refuses the live secret for {SERVICES_ID} (invalid_client); "
                    f"likely causes: {words.LIKELY_CAUSES}")


def test_apple_problem_says_evidence_instead_of_causes() -> None:
    """Evidence, when rotator has it, replaces the list of likely causes."""
    text = words.apple_problem(AppleAnswer("refused", "invalid_client"), "a secret minted now",
                               SERVICES_ID, evidence="the key id looks wrong")
    assert text == (f"Apple refuses a secret minted now for {SERVICES_ID} (invalid_client); "
                    "the key id looks wrong")


def test_apple_problem_for_an_unknown_answer_gives_the_switch() -> None:
    """When Apple could not be asked, the reason and the apple.check switch are said."""
    text = words.apple_problem(AppleAnswer("unknown", "timed out"), "new", SERVICES_ID)
    assert text == f"could not ask Apple about the new secret: timed out; {words.SWITCH_HINT}"


def test_apple_problem_is_none_when_accepted_or_off() -> None:
    """An accepted secret, or Apple not asked, is no problem."""
    assert words.apple_problem(AppleAnswer("accepted", ""), "live", SERVICES_ID) is None
    assert words.apple_problem(AppleAnswer("off", "off"), "live", SERVICES_ID) is None
