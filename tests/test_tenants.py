"""Many tenants side by side, each failing alone; the Auth0 border (issue 8).

Each tenant is its own emulator (its own TLS server, CA, rate limit, clients).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from auth0_env import SERVICES_ID, Tenant
from conftest import free_port, named, run_cli

from rotator import cli, config, runner
from rotator.auth0_rules import SCOPES
from rotator.emulator import Emulator, Fault


def entries(tenant: Tenant, names: list[str], extra: str = "") -> str:
    """[[connections]] tables for ``names`` on ``tenant``'s emulator (its own M2M client)."""
    out = ""
    for name in names:
        out += (
            f'[[connections]]\nconnection = "{name}"\nclient_id = "{SERVICES_ID}"\n'
            f'domain = "{tenant.emu.domain}"\nca_bundle = "{tenant.emu.ca_pem_path}"\n'
            f'client_secret_file = "{tenant.secret_file}"\n'
            f'token_url = "{tenant.emu.apple_token_url}"\n{extra}'
            f'[connections.auth0]\nclient_id = "{tenant.client_id}"\n\n'
        )
    return out


@pytest.fixture
def tenants(tmp_path: Path, key_path: Path) -> Iterator[list[Tenant]]:
    """Six emulated free-tier tenants (burst 2, 2 requests a second), four due connections each."""
    with ExitStack() as stack:
        made = []
        for n in range(6):
            emu = stack.enter_context(Emulator(rate_limit_burst=2, rate_limit_per_second=2))
            work = tmp_path / f"t{n}"
            work.mkdir()
            tenant = Tenant(emu, work, key_path, name=f"t{n}")
            for c in range(4):
                tenant.add(f"apple-{c}", client_secret=tenant.mint(age=40 * 86400))
            made.append(tenant)
        yield made


def write(tmp_path: Path, first: Tenant, body: str) -> Path:
    path = tmp_path / "rotator.toml"
    path.write_text(first.apple_toml() + "\n" + body)
    return path


@pytest.mark.slow
def test_six_free_tier_tenants_rotate_side_by_side(
    tenants: list[Tenant], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """24 due connections on 6 rate-limited tenants: all rotate intact, tenants overlap in time."""
    body = "".join(entries(t, [f"apple-{c}" for c in range(4)]) for t in tenants)
    code, _, err = run_cli("run-once", "--config", str(write(tmp_path, tenants[0], body)),
                           capsys=capsys)
    assert code == 0, err
    for tenant in tenants:
        for c in range(4):
            stored = tenant.stored(f"apple-{c}")
            assert {k: v for k, v in stored["options"].items() if k != "client_secret"} == (
                tenant.other_options(stored))
        assert len(tenant.patches()) == 4
        assert not [r for r in tenant.emu.journal if r.status == 429]
    spans = []
    for tenant in tenants:
        times = [r.time for r in tenant.emu.journal if r.path.startswith("/api/v2/")]
        spans.append((min(times), max(times)))
    # Side by side: every tenant's Management API work overlaps every other's.
    latest_start = max(start for start, _ in spans)
    earliest_end = min(end for _, end in spans)
    assert latest_start < earliest_end, spans
    [finished] = named(err, "run.finished")
    assert (finished["checked"], finished["rotated"], finished["failed"]) == (24, 24, 0)


class _Refusing(socketserver.BaseRequestHandler):
    """A proxy that wants credentials: answers every CONNECT with 407."""

    def handle(self) -> None:
        self.request.recv(4096)
        self.request.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                             b"Proxy-Authenticate: Basic realm=\"proxy\"\r\n"
                             b"Content-Length: 0\r\n\r\n")


@pytest.fixture
def proxy_407() -> Iterator[str]:
    """The URL of a running proxy that answers 407."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Refusing)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_broken_tenants_fail_alone_each_named(
    tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A closed port, a 401 token and an unbuildable client fail alone; healthy tenants rotate."""
    with ExitStack() as stack:
        made = []
        for n in range(4):
            emu = stack.enter_context(Emulator())
            (tmp_path / f"t{n}").mkdir()
            made.append(Tenant(emu, tmp_path / f"t{n}", key_path, name=f"t{n}"))
        healthy, unauthorized, unbuildable, other = made
        for tenant in made:
            tenant.add(client_secret=tenant.mint(age=40 * 86400))
        unauthorized.secret_file.write_text("not-the-secret")
        closed = f"localhost:{free_port()}"
        body = (entries(healthy, ["apple"]) + entries(unauthorized, ["apple"])
                + entries(unbuildable, ["apple"]) + entries(other, ["apple"])
                + entries(healthy, ["apple"]).replace(healthy.emu.domain, closed))
        cfg = write(tmp_path, healthy, '[schedule]\ndeadline = "4s"\n\n' + body)
        settings = config.load(config.Overrides(config=str(cfg)), environ={})
        bundle = Path(unbuildable.emu.ca_pem_path)
        bundle.write_text("not a certificate any more\n")  # after the configuration loaded
        import io

        from rotator import logs

        stream = io.StringIO()
        logs.configure("json", "info", stream)
        report = runner.run(settings)

    assert cli.exit_code(report) == 1
    by_tenant = {o.tenant: o for o in report.outcomes}
    assert by_tenant[healthy.emu.domain].rotated
    assert by_tenant[other.emu.domain].rotated
    assert by_tenant[unauthorized.emu.domain].step == "token"
    assert "401" in (by_tenant[unauthorized.emu.domain].error or "")
    assert "auth0.client_id and the M2M client secret" in (
        by_tenant[unauthorized.emu.domain].error or "")
    assert by_tenant[unbuildable.emu.domain].step == "connect"
    assert "auth0.ca_bundle" in (by_tenant[unbuildable.emu.domain].error or "")
    assert by_tenant[closed].step == "token"
    assert "connection refused" in (by_tenant[closed].error or "")
    failed = {e["tenant"] for e in named(stream.getvalue(), "rotation.failed")}
    assert failed == {unauthorized.emu.domain, unbuildable.emu.domain, closed}


def test_token_request_503_twice_then_a_token_succeeds(
    tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """/oauth/token answering 503 twice is retried, and the run succeeds."""
    tenant.add(client_secret=None)
    tenant.emu.inject(Fault(path="/oauth/token", status=503, times=2, retry_after=1))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    assert [r.status for r in tenant.emu.journal if r.path == "/oauth/token"] == [503, 503, 200]


def test_token_request_429_with_retry_after_waits_and_succeeds(
    tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """/oauth/token answering 429 with Retry-After: 1 is waited out."""
    tenant.add(client_secret=None)
    tenant.emu.inject(Fault(path="/oauth/token", status=429, times=1, retry_after=1))
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    tokens = [r for r in tenant.emu.journal if r.path == "/oauth/token"]
    assert [r.status for r in tokens] == [429, 200]
    assert tokens[1].time - tokens[0].time >= 0.9


def test_check_config_online_names_a_missing_write_scope(
    emu: Emulator, tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A token without update:connections_options: check-config --online exits 1 naming it."""
    narrow = Tenant(emu, tmp_path, key_path,
                    scopes=tuple(s for s in SCOPES if s != "update:connections_options"))
    narrow.add(client_secret=narrow.mint())
    code, out, _ = run_cli("check-config", "--online", "--config", str(narrow.write_config()),
                           capsys=capsys)
    assert code == 1
    assert "the token lacks update:connections_options" in out
    assert narrow.patches() == []


def test_custom_domain_needs_the_audience_and_works_with_it(
    tmp_path: Path, key_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A custom domain: without auth0.audience the message says what to do; with it, it works."""
    canonical = "https://tenant.emulated.auth0.com/api/v2/"
    with Emulator(audience=canonical) as emu:
        tenant = Tenant(emu, tmp_path, key_path)
        conn = tenant.add(client_secret=None)
        config_path = tenant.write_config()
        code, _, err = run_cli("run-now", "--config", str(config_path), capsys=capsys)
        assert code == 1
        [failed] = named(err, "rotation.failed")
        assert failed["step"] == "token"
        assert "Service not enabled within domain" in failed["error"]
        assert "set auth0.audience" in failed["error"]
        assert "canonical domain" in failed["error"]

        text = config_path.read_text().replace("[auth0]\n", f'[auth0]\naudience = "{canonical}"\n')
        config_path.write_text(text)
        code, _, err = run_cli("run-now", "--config", str(config_path), capsys=capsys)
        assert code == 0, err
        assert "client_secret" in tenant.stored(conn["id"])["options"]


def _fails_with(tenant: Tenant, capsys: pytest.CaptureFixture[str], config_text: str,
                tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "net.toml"
    path.write_text(config_text)
    code, _, err = run_cli("run-once", "--config", str(path), capsys=capsys)
    assert code == 1, err
    [failed] = named(err, "rotation.failed")
    return failed


def test_network_failures_name_what_failed_and_the_setting_to_check(
    tenant: Tenant, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, proxy_407: str,
) -> None:
    """Unresolvable domain, refused port, proxy asking 407, unreachable proxy: each said plainly."""
    tenant.add(client_secret=None)
    base = tenant.write_config(extra='[schedule]\ndeadline = "2s"\n').read_text()
    domain = tenant.emu.domain

    failed = _fails_with(tenant, capsys, base.replace(domain, "nonexistent-tenant.invalid"),
                         tmp_path)
    assert "cannot resolve the host name nonexistent-tenant.invalid" in failed["error"]
    assert "check auth0.domain" in failed["error"]

    failed = _fails_with(tenant, capsys, base.replace(domain, f"localhost:{free_port()}"),
                         tmp_path)
    assert "connection refused" in failed["error"]
    assert "check auth0.domain" in failed["error"]

    monkeypatch.setenv("HTTPS_PROXY", proxy_407)
    failed = _fails_with(tenant, capsys, base, tmp_path)
    assert "answered 407" in failed["error"]
    assert "HTTPS_PROXY" in failed["error"]

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nothing = f"http://127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("HTTPS_PROXY", nothing)
    failed = _fails_with(tenant, capsys, base, tmp_path)
    assert "cannot reach the proxy" in failed["error"]
    assert "HTTPS_PROXY" in failed["error"]

    monkeypatch.setenv("NO_PROXY", "localhost")
    code, _, err = run_cli("run-once", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err


def test_a_wrong_audience_is_called_that_not_a_custom_domain(
    tenant: Tenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """auth0.audience without its trailing slash: the error names the audience, not the domain."""
    tenant.add()
    config_path = tenant.write_config()
    wrong = f"https://{tenant.emu.domain}/api/v2"
    config_path.write_text(config_path.read_text().replace(
        "[auth0]\n", f'[auth0]\naudience = "{wrong}"\n'))
    code, out, err = run_cli("run-once", "--config", str(config_path), capsys=capsys)

    assert code == 1, err
    [failed] = named(err, "rotation.failed")
    assert failed["step"] == "token"
    assert f"auth0.audience '{wrong}' is not an API of this tenant" in failed["error"]
    assert "the trailing slash is part of it" in failed["error"]
    assert "custom domain" not in failed["error"]
    assert "FAILED at token" in out
