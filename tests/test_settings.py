"""Tests for rotator.settings: values that check themselves (the listen address here)."""

from __future__ import annotations

import pytest

from rotator.errors import ConfigError
from rotator.settings import parse_listen

ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - what parse_listen must return, nothing binds it


# -- parse_listen ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:8080", (ALL_INTERFACES, 8080)),
        ("127.0.0.1:1", ("127.0.0.1", 1)),
        ("localhost:65535", ("localhost", 65535)),
        (":8080", (ALL_INTERFACES, 8080)),
        ("[::]:8080", ("::", 8080)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_parse_listen_accepts_host_and_port(listen: str, expected: tuple[str, int]) -> None:
    """HOST:PORT, :PORT (all interfaces) and [IPv6]:PORT are understood."""
    assert parse_listen(listen) == expected


@pytest.mark.parametrize(
    "listen",
    [
        "nonsense",
        "1.2.3.4",
        "127.0.0.1:99999",
        "127.0.0.1:abc",
        "127.0.0.1:0",
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
    """Anything but HOST:PORT with a port from 1 to 65535 is a ConfigError naming server.listen."""
    with pytest.raises(ConfigError, match=r"^server\.listen = .* HOST:PORT") as caught:
        parse_listen(listen)
    assert "\n" not in str(caught.value)
