"""Tests for rotator.runner: one run over every connection, with the world passed in.

Two entries naming one connection (by name and by con_ id) are found whatever
settings differ around them (issue 19): an audience spelled out for one of
them, or a second M2M application of the same tenant. Neither is written.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest
from auth0_env import SERVICES_ID, Tenant
from conftest import assert_refused, run_rotator

from rotator import cli, config, runner
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


def run_cli(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = cli.main([*args, "--log-format", "json"])
    _, err = capsys.readouterr()
    return code, err


def named(stderr: str, event: str) -> list[dict[str, Any]]:
    return [e for e in (json.loads(x) for x in stderr.splitlines() if x.startswith("{"))
            if e["event"] == event]


def _second_entry(tenant: Tenant, con_id: str, how: str) -> str:
    """The same connection by its con_ id, reaching the tenant another way."""
    entry = f'[[connections]]\nconnection = "{con_id}"\nclient_id = "{SERVICES_ID}"\n'
    if how == "explicit-audience":
        return entry + f'audience = "https://{tenant.emu.domain}/api/v2/"\n'
    client_id, secret = f"m2m{secrets.token_hex(6)}", f"second-{secrets.token_urlsafe(24)}"
    tenant.emu.add_client(client_id, secret)
    (tenant.tmp / "second_secret").write_text(secret)
    return entry + (f'[connections.auth0]\nclient_id = "{client_id}"\n'
                    f'client_secret_file = "{tenant.tmp / "second_secret"}"\n')


@pytest.mark.parametrize("how", ["explicit-audience", "second-m2m-application"])
def test_one_connection_twice_is_found_whatever_settings_differ_around_it(
    how: str, tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """By name and by con_ id, through different [auth0] settings: both refused, no PATCH."""
    conn = tenant.add(client_secret=None)
    config = tenant.write_config()
    config.write_text(config.read_text() + "\n" + _second_entry(tenant, conn["id"], how))
    code, err = run_cli("run-now", "--config", str(config), capsys=capsys)
    assert code == 1, err
    assert tenant.patches() == []
    failed = named(err, "rotation.failed")
    assert len(failed) == 2, failed
    for event in failed:
        assert f"the same connection {conn['id']}" in event["error"]


def test_one_name_twice_spelled_differently_is_refused_at_load(
    tenant: Tenant,
) -> None:
    """The same name twice, the domain once in capitals and the audience spelled out: exit 2."""
    config = tenant.write_config()
    extra = (f'[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n'
             f'domain = "{tenant.emu.domain.upper()}"\n'
             f'audience = "https://{tenant.emu.domain}/api/v2"\n')
    config.write_text(config.read_text() + "\n" + extra)
    assert_refused(run_rotator("check-config", "--config", str(config)), "listed twice",
                   "#1", "#2")
