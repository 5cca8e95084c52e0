"""`check-config` refuses, offline, everything a run would refuse; and a run refuses it too.

Each bad file below (a `listen` that is no HOST:PORT, a hook command that is
missing or not executable, a `ca_bundle` that is not PEM certificates, is
missing or is a directory, a `token_url` or `audience` that is not https) must
make `check-config` and `run-once` alike exit 2 with one line on stderr naming
the key and the fix: no traceback, no secret, and nothing contacted (the
emulator's journal stays empty). Most cases run the CLI in this process
(``cli.main``, the console script's code path); a few run the real process.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from auth0_env import SERVICES_ID, EmulatedTenant
from conftest import assert_refused, run_cli, run_rotator


@dataclass(frozen=True)
class Case:
    """A configuration (and environment) rotator must refuse, and what the refusal says."""

    config: Path
    says: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


Make = Callable[[EmulatedTenant, Path], Case]


def _with(tenant: EmulatedTenant, *, auth0: str = "", apple: str = "", extra: str = "",
          entry: str = "") -> Path:
    """The tenant's config with lines added to [auth0], [apple], the end, or the connection."""
    body = (tenant.auth0_toml() + auth0 + "\n" + tenant.apple_toml() + apple + "\n" + extra
            + f'\n[[connections]]\nconnection = "apple"\nclient_id = "{SERVICES_ID}"\n' + entry)
    path = tenant.tmp / "rotator.toml"
    path.write_text(body)
    return path


def _ca(tenant: EmulatedTenant, path: Path) -> Path:
    """The tenant's config with [auth0] ca_bundle pointing at ``path``, not the emulator's CA."""
    body = _with(tenant).read_text().replace(tenant.emu.ca_pem_path, str(path))
    config = tenant.tmp / "rotator.toml"
    config.write_text(body)
    return config


def _script(tmp: Path, name: str, mode: int) -> Path:
    path = tmp / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(mode)
    return path


def _hook(key: str, argv0: str) -> str:
    return f'[hooks]\n{key} = ["{argv0}", "--quiet"]\n'


CASES: dict[str, Make] = {
    "listen-without-port": lambda t, p: Case(
        _with(t, extra='[server]\nlisten = "localhost"\n'),
        ("server.listen", "'localhost'", "HOST:PORT", '"0.0.0.0:8080"')),
    "listen-port-out-of-range": lambda t, p: Case(
        _with(t, extra='[server]\nlisten = "0.0.0.0:65536"\n'),
        ("server.listen", "a port from 1 to 65535")),
    "listen-ipv6-without-brackets": lambda t, p: Case(
        _with(t, extra='[server]\nlisten = "::1:8080"\n'),
        ("server.listen", "IPv6 host in brackets")),
    "listen-from-environment": lambda t, p: Case(
        _with(t), ("ROTATOR_LISTEN", "HOST:PORT"), {"ROTATOR_LISTEN": "8080"}),
    "post-rotate-missing": lambda t, p: Case(
        _with(t, extra=_hook("post_rotate", str(p / "gone" / "hook"))),
        ("hooks.post_rotate", str(p / "gone" / "hook"), "does not exist", "fix the path")),
    "post-rotate-not-on-path": lambda t, p: Case(
        _with(t, extra=_hook("post_rotate", "no-such-rotator-hook")),
        ("hooks.post_rotate", "'no-such-rotator-hook'", "not on PATH", "absolute path")),
    "post-rotate-not-executable": lambda t, p: Case(
        _with(t, extra=_hook("post_rotate", str(_script(p, "hook.sh", 0o644)))),
        ("hooks.post_rotate", str(p / "hook.sh"), "not executable", "chmod +x")),
    "on-failure-missing": lambda t, p: Case(
        _with(t, extra=_hook("on_failure", str(p / "gone" / "page"))),
        ("hooks.on_failure", str(p / "gone" / "page"), "does not exist", "fix the path")),
    "on-failure-not-executable": lambda t, p: Case(
        _with(t, extra=_hook("on_failure", str(_script(p, "page.sh", 0o600)))),
        ("hooks.on_failure", str(p / "page.sh"), "not executable", "chmod +x")),
    "ca-bundle-not-pem": lambda t, p: Case(
        _ca(t, _text(p / "corp-ca.pem", "this is not a certificate\n")),
        ("[auth0] ca_bundle", str(p / "corp-ca.pem"), "no PEM certificate",
         "-----BEGIN CERTIFICATE-----")),
    "ca-bundle-der": lambda t, p: Case(
        _ca(t, _der(t, p / "corp-ca.der")),
        ("[auth0] ca_bundle", "no PEM certificate", "openssl x509 -inform der")),
    "ca-bundle-is-the-apple-key": lambda t, p: Case(
        _ca(t, t.key_path), ("[auth0] ca_bundle", "no PEM certificate")),
    "ca-bundle-empty": lambda t, p: Case(
        _ca(t, _text(p / "empty.pem", "")), ("[auth0] ca_bundle", "no PEM certificate")),
    "ca-bundle-missing": lambda t, p: Case(
        _ca(t, p / "no-such-ca.pem"),
        ("[auth0] ca_bundle", str(p / "no-such-ca.pem"), "does not exist",
         "PEM file of CA certificates")),
    "ca-bundle-directory": lambda t, p: Case(
        _ca(t, p), ("[auth0] ca_bundle", "is not a regular file", "PEM file of CA certificates")),
    "ca-bundle-of-one-connection": lambda t, p: Case(
        _with(t, entry=f'ca_bundle = "{_text(p / "bad.pem", "junk")}"\n'),
        ("[[connections]] #1 ca_bundle", "no PEM certificate")),
    "token-url-http": lambda t, p: Case(
        _token_url(t, "http://"),
        ("[apple] token_url", "is not an https:// URL", "TLS cannot be turned off")),
    "token-url-from-environment": lambda t, p: Case(
        _token_url(t, None),
        ("APPLE_TOKEN_URL", "is not an https:// URL"),
        {"APPLE_TOKEN_URL": "http://appleid.apple.com/auth/token"}),
    "audience-http": lambda t, p: Case(
        _with(t, auth0=f'audience = "http://{t.emu.domain}/api/v2/"\n'),
        ("[auth0] audience", f"'http://{t.emu.domain}/api/v2/'", "is not an https:// URL")),
    "audience-from-environment": lambda t, p: Case(
        _with(t), ("AUTH0_AUDIENCE", "is not an https:// URL"),
        {"AUTH0_AUDIENCE": "example.eu.auth0.com/api/v2/"}),
}


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _der(tenant: EmulatedTenant, path: Path) -> Path:
    """The emulator's own CA certificate, in DER: the right certificate, the wrong format."""
    path.write_bytes(ssl.PEM_cert_to_DER_cert(Path(tenant.emu.ca_pem_path).read_text()))
    return path


def _token_url(tenant: EmulatedTenant, scheme: str | None) -> Path:
    """The config with apple.token_url made plain http (or left out, for the environment)."""
    config = _with(tenant)
    url = tenant.emu.apple_token_url
    line = f'token_url = "{url}"\n'
    new = f'token_url = "{url.replace("https://", scheme)}"\n' if scheme else ""
    config.write_text(config.read_text().replace(line, new))
    return config


def secrets(tenant: EmulatedTenant) -> list[str]:
    """What no refusal may print: the M2M secret and every line of the Apple key."""
    lines = [ln.strip() for ln in tenant.key_path.read_text().splitlines()
             if ln.strip() and not ln.startswith("-----")]
    return [tenant.client_secret, *lines]




@pytest.mark.parametrize("name", list(CASES))
def test_check_config_and_run_once_refuse_it_alike(
    name: str, tenant: EmulatedTenant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """check-config and run-once: exit 2, one line naming the key and the fix, nothing contacted."""
    tenant.add()
    case = CASES[name](tenant, tmp_path)
    for var, value in case.env.items():
        monkeypatch.setenv(var, value)
    for command in ("check-config", "run-once"):
        run = run_cli(command, "--config", str(case.config), capsys=capsys)
        assert_refused(run, *case.says, secrets=secrets(tenant))
    assert tenant.emu.journal == []


@pytest.mark.parametrize(("command", "name"), [
    ("check-config", "listen-without-port"),
    ("run-once", "post-rotate-not-executable"),
    ("check-config", "ca-bundle-not-pem"),
    ("run-once", "audience-from-environment"),
])
def test_the_real_process_refuses_it_with_one_line(
    name: str, command: str, tenant: EmulatedTenant, tmp_path: Path
) -> None:
    """As a process too: exit 2, one stderr line, no traceback, nothing contacted."""
    tenant.add()
    case = CASES[name](tenant, tmp_path)
    run = run_rotator(command, "--config", str(case.config), env=case.env, process=True)

    assert_refused(run, *case.says, secrets=secrets(tenant))
    assert tenant.emu.journal == []


def test_the_same_settings_done_right_pass_offline(
    tenant: EmulatedTenant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid listen, hooks, ca_bundle, token_url and audience: check-config 0, still offline."""
    tenant.add()
    hook = _script(tmp_path, "hook.sh", 0o755)
    config = _with(
        tenant, auth0=f'audience = "https://{tenant.emu.domain}/api/v2/"\n',
        extra=('[server]\nlisten = "[::1]:8080"\n'
               f'[hooks]\npost_rotate = ["{hook}"]\non_failure = ["sh", "-c", "true"]\n'),
    )
    run = run_cli("check-config", "--config", str(config), capsys=capsys)

    assert run.code == 0, run.output
    assert run.stdout.startswith("configuration OK: 1 connection(s)")
    assert tenant.emu.journal == []
