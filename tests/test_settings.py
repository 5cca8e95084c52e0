"""Tests for rotator.settings: values that check themselves (the listen address, domains,
https URLs, durations and their maxima)."""

from __future__ import annotations

import re

import pytest
from auth0_env import EmulatedTenant
from conftest import run_cli
from hypothesis import assume, given
from hypothesis import strategies as st

from rotator import config
from rotator.errors import ConfigError
from rotator.settings import (
    AUDIENCE_EXAMPLE,
    check_apple_id,
    check_domain,
    check_https_url,
    check_identifier,
    parse_listen,
)

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what parse_listen must return, nothing binds it


# -- parse_listen ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:8080", (ALL_INTERFACES, 8080)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
        ("localhost:65535", ("localhost", 65535)),
        (":8080", (ALL_INTERFACES, 8080)),
        ("[::]:8080", ("::", 8080)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_parse_listen_accepts_host_and_port(listen: str, expected: tuple[str, int]) -> None:
    """HOST:PORT, :PORT (all interfaces) and [IPv6]:PORT are understood; port 0 too."""
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen",
    [
        "nonsense",
        "1.2.3.4",
        "127.0.0.1:99999",
        "127.0.0.1:abc",
        "127.0.0.1:",
        "127.0.0.1:-1",
        "127.0.0.1: 80",
        "127.0.0.1:٨٠٨٠",
        "::1",
        "[::1]",
        "",
    ],
)
def test_parse_listen_refuses_what_is_not_host_and_port(listen: str) -> None:
    """Anything but HOST:PORT with a port from 0 to 65535 is a ConfigError naming server.listen."""
    with pytest.raises(ConfigError, match=r"^server\.listen = .* HOST:PORT") as caught:
        parse_listen(listen)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("domain", ["example.auth0.com:99999", "...", "a..b", "-x.auth0.com",
                                    "host:0", "host:", "exa mple.com", "tenant.auth0.com/"])
def test_a_domain_that_is_no_host_and_port_is_refused(domain: str) -> None:
    """auth0.domain must be dot-separated host labels with an optional port from 1 to 65535."""
    with pytest.raises(ConfigError, match=r"^auth0\.domain = .* not a bare domain"):
        check_domain(domain, "auth0.domain")


@pytest.mark.parametrize("domain", ["example.eu.auth0.com", "localhost:8443", "127.0.0.1:1",
                                    "login.example-company.com"])
def test_host_names_and_ports_are_accepted_as_domains(domain: str) -> None:
    """Ordinary tenant and custom domains, with or without a port, pass."""
    assert check_domain(domain, "auth0.domain") == domain


@pytest.mark.parametrize("url", ["http://appleid.apple.com/auth/token",
                                 "https://appleid.apple.com:99999/auth/token",
                                 "https://user:pw@/x", "https://user:pw@appleid.apple.com/x",
                                 "https:///auth/token", "appleid.apple.com/auth/token"])
def test_an_https_setting_without_a_plain_host_is_refused_with_its_own_example(url: str) -> None:
    """Not https, no host, a bad port or credentials in the URL: refused, naming the example."""
    with pytest.raises(ConfigError, match="user:password") as caught:
        check_https_url(url, "auth0.audience", AUDIENCE_EXAMPLE)
    assert AUDIENCE_EXAMPLE in str(caught.value)
    assert "pw" not in str(caught.value).replace(url, "")


# -- no setting holds a line break, whoever builds it ---------------------------------------


@pytest.mark.parametrize("check", [
    lambda: check_apple_id("ABCDE12345\n", "apple.team_id", "Team ID"),
    lambda: check_domain("example.eu.auth0.com\n", "auth0.domain"),
    lambda: check_https_url("https://appleid.apple.com/auth/token\n", "apple.token_url",
                            AUDIENCE_EXAMPLE),
    lambda: check_identifier("com.example.webapp\n", "client_id", "the Apple Services ID"),
    lambda: check_identifier("apple\u200b", "connection", "the Auth0 connection name"),
], ids=["team-id", "domain", "url", "services-id", "zero-width-space"])
def test_a_trailing_newline_or_invisible_character_is_refused_by_the_value_itself(
    check: object,
) -> None:
    """The checks the settings run refuse "ABCDE12345\\n" ($ in a regex would let it through)."""
    with pytest.raises(ConfigError):
        check()  # type: ignore[operator]


def test_an_absurd_hook_timeout_is_refused(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """hooks.timeout = "999999999999999d" is refused naming the key (at most 1h)."""
    config = tenant.write_config(extra='[hooks]\ntimeout = "999999999999999d"\n')
    code, _, err = run_cli("check-config", "--config", str(config), capsys=capsys)
    assert code == 2
    assert "[hooks] timeout" in err
    assert "1h" in err


# -- durations --------------------------------------------------------------------------------


# The duration grammar, written independently of rotator.settings: ASCII digits,
# an optional unit, optional ASCII blanks around either.
GRAMMAR = re.compile(r"[ \t\n\r\f\v]*([0-9]+)[ \t\n\r\f\v]*([smhd]?)[ \t\n\r\f\v]*")


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 1}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("180d", 15552000), ("3600", 3600),
     (" 7d ", 604800), (3600, 3600)],
)
def test_parse_duration_examples(text: str | int, seconds: int) -> None:
    """Suffixed strings, plain integer strings and TOML integers all parse to seconds."""
    assert config.parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(15552000, "180d"), (90, "90s"), (7200, "2h"), (120, "2m"), (86401, "86401s")],
)
def test_format_duration_picks_the_largest_exact_unit(seconds: int, text: str) -> None:
    """format_duration spells a duration in the largest unit that divides it."""
    assert config.format_duration(seconds) == text


@given(st.integers(min_value=1, max_value=10**12))
def test_format_then_parse_round_trips(seconds: int) -> None:
    """Parsing what format_duration wrote gives back the same seconds."""
    assert config.parse_duration(config.format_duration(seconds)) == seconds


@given(st.integers(min_value=1, max_value=10**9), st.sampled_from(sorted(UNITS)))
def test_number_and_unit_parse_to_their_product(n: int, unit: str) -> None:
    """f"{n}{unit}" parses to n times the unit's seconds (no unit: seconds)."""
    assert config.parse_duration(f"{n}{unit}") == n * UNITS[unit]


NEAR_MISSES = st.text(alphabet="0123456789smhdSMHDy .,+-_eE\u0663\u00a0\u2003\uff11", max_size=12)


@given(st.one_of(st.text(), NEAR_MISSES))
def test_text_outside_the_grammar_raises_config_error(text: str) -> None:
    """Anything that is not digits plus an optional s/m/h/d raises ConfigError, nothing else."""
    assume(GRAMMAR.fullmatch(text) is None)
    with pytest.raises(ConfigError, match="secret_lifetime"):
        config.parse_duration(text, "secret_lifetime")


@given(st.one_of(st.text(), NEAR_MISSES))
def test_parse_duration_accepts_only_positive_grammar_matches(text: str) -> None:
    """parse_duration either returns the grammar's positive value or raises ConfigError."""
    try:
        seconds = config.parse_duration(text)
    except ConfigError:
        return
    match = GRAMMAR.fullmatch(text)
    assert match is not None
    assert seconds == int(match.group(1)) * UNITS[match.group(2)] > 0


@given(st.one_of(st.floats(), st.booleans(), st.none(), st.lists(st.integers()),
                 st.integers(max_value=0)))
def test_non_duration_values_raise_config_error(value: object) -> None:
    """Floats, booleans, lists, nothing and non-positive integers are refused as durations."""
    with pytest.raises(ConfigError, match="rotate_every"):
        config.parse_duration(value, "rotate_every")


@given(
    st.text(st.characters(categories=["Nd", "Zs"]), min_size=1, max_size=6),
    st.sampled_from(sorted(UNITS)),
)
def test_only_ascii_digits_and_blanks_count(number: str, unit: str) -> None:
    """Non-ASCII digits ("٣") and spaces (no-break space) are garbage, not a duration."""
    assume(not number.isascii())
    with pytest.raises(ConfigError, match="not a duration"):
        config.parse_duration(f"{number}{unit}", "check_every")


def test_overlong_digit_strings_raise_config_error() -> None:
    """A digit string too long for int() is a ConfigError, not a ValueError."""
    with pytest.raises(ConfigError, match="check_every"):
        config.parse_duration("1" * 5000, "check_every")
