"""Tests for rotator.runner: one run over every connection, with the world passed in."""

from __future__ import annotations

from auth0_env import Tenant

from rotator import config, runner
from rotator.deadline import Deadline
from rotator.seams import AppleSide
from rotator.settings import Trust


def test_apple_is_asked_with_the_connections_own_tls_trust(tenant: Tenant) -> None:
    """Apple's client gets the connection's Trust setting (the emulator's CA), over real TLS."""
    tenant.add(client_secret=tenant.mint())
    settings = config.load(config.Overrides(config=str(tenant.write_config())), environ={})
    [conn] = settings.connections
    trusts: list[Trust] = []

    def make_apple(token_url: str, trust: Trust, deadline: Deadline) -> AppleSide:
        trusts.append(trust)
        return runner.Pool().make_apple(token_url, trust, deadline)  # the real client

    pool = runner.Pool(apple=make_apple)
    try:
        report = runner.run(settings, pool=pool)
    finally:
        pool.close()
    assert conn.trust.ca_bundle is not None
    assert trusts == [conn.trust]
    assert report.outcomes[0].apple == "accepted"
