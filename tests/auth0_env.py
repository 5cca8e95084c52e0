"""Helpers to stand up an emulated tenant and a config file pointing at it."""

from __future__ import annotations

import copy
import functools
import secrets
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from conftest import KEY_ID, SERVICES_ID, TEAM_ID
from cryptography.hazmat.primitives.asymmetric import rsa

from rotator import secret
from rotator.auth0_rules import SCOPES
from rotator.emulator import Emulator
from rotator.emulator.cli import write_rsa_key
from rotator.emulator.sample import apple_options


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    """One RSA key per test process for every emulated M2M client: each test has an
    emulator of its own, and a 2048-bit key costs 0.1-0.3 s of CPU to make."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def write_signing_key(path: Path) -> rsa.RSAPublicKey:
    """The process's M2M signing key at ``path`` (PKCS#8 PEM, mode 0600); its public half.

    A test that needs a key no client knows makes one with ``write_rsa_key``.
    """
    public: rsa.RSAPublicKey = write_rsa_key(path, key=_signing_key())
    return public


def realistic_options(client_secret: str | None, services_id: str = SERVICES_ID) -> dict[str, Any]:
    """The emulator's sample options, plus values whose types and shapes must survive."""
    options = apple_options(services_id)
    options["customHeaders"]["X-Empty"] = ""
    options.update({
        "x_custom": {"nested": {"deeper": [1, 2.5, None, True, {"k": "v"}]}, "empty": {}},
        "unicode_label": "Connexion Apple — ßø",
        "null_option": None,
    })
    if client_secret is not None:
        options["client_secret"] = client_secret
    return options


def live_secret(emu: Emulator, connection: str = "apple") -> str:
    """The client secret stored in the emulator's ``connection``."""
    return str(emu.connection(connection)["options"]["client_secret"])


def register_apple(emu: Emulator, key: secret.AppleKey, team_id: str = TEAM_ID,
                   key_id: str = KEY_ID, services_ids: tuple[str, ...] = ()) -> None:
    """Make the emulated Apple know the team's key and Services IDs (as the portal would)."""
    emu.apple_register_key(team_id, key_id, key.public_key)
    for services_id in services_ids or (SERVICES_ID, "com.example.ios", "com.example.other"):
        emu.apple_add_services_id(team_id, services_id)


class EmulatedTenant:
    """An emulator with one M2M client, and the files rotator needs to reach it."""

    def __init__(
        self, emu: Emulator, tmp: Path, key_path: Path, *, scopes: tuple[str, ...] = SCOPES,
        name: str = "tenant", signing_alg: str | None = None,
    ) -> None:
        """``signing_alg`` set: the M2M client has no secret, only an RSA credential for it."""
        self.emu = emu
        self.tmp = tmp
        self.key_path = key_path
        self.key = secret.load_key(key_path.read_bytes(), str(key_path))
        self.client_id = f"m2m{secrets.token_hex(8)}"
        self.client_secret = f"m2m-secret-{secrets.token_urlsafe(24)}"
        self.secret_file = tmp / f"{name}_client_secret"
        self.signing_alg = signing_alg
        self.signing_key_file = tmp / f"{name}_m2m_key.pem"
        if signing_alg is None:
            self.secret_file.write_text(self.client_secret)
            emu.add_client(self.client_id, self.client_secret, scopes=scopes)
        else:
            emu.add_client(self.client_id, None, scopes=scopes)
            self.credential = emu.add_client_key(
                self.client_id, write_signing_key(self.signing_key_file), signing_alg)
        register_apple(emu, self.key)


    def mint(self, *, age: int = 0, lifetime: int = 180 * 86400, **claims: str) -> str:
        """A secret made by the configured key, issued ``age`` seconds ago."""
        return secret.mint(
            self.key,
            team_id=claims.get("team_id", TEAM_ID),
            key_id=claims.get("key_id", KEY_ID),
            services_id=claims.get("services_id", SERVICES_ID),
            lifetime=lifetime,
            now=int(time.time()) - age,
        )

    def add(self, name: str = "apple", *, client_secret: str | None = "fresh",
            services_id: str = SERVICES_ID, **extra: Any) -> dict[str, Any]:
        """Add a realistic oauth2 connection; ``"fresh"`` puts a not-due secret in it."""
        live = self.mint(services_id=services_id) if client_secret == "fresh" else client_secret
        conn = {
            "name": name,
            "display_name": f"Sign in with Apple ({name})",
            "strategy": "oauth2",
            "options": realistic_options(live, services_id),
            **extra,
        }
        return self.emu.add_connection(conn)

    def auth0_toml(self) -> str:
        credential = f'client_secret_file = "{self.secret_file}"\n'
        if self.signing_alg is not None:
            credential = (f'client_assertion_signing_key_file = "{self.signing_key_file}"\n'
                          f'client_assertion_signing_alg = "{self.signing_alg}"\n')
        return (
            "[auth0]\n"
            f'domain = "{self.emu.domain}"\n'
            f'client_id = "{self.client_id}"\n'
            + credential +
            f'ca_bundle = "{self.emu.ca_pem_path}"\n'
        )

    def token_requests(self) -> list[dict[str, Any]]:
        """The form of every token request rotator sent."""
        forms: list[dict[str, Any]] = [r.body for r in self.emu.journal
                                       if r.path == "/oauth/token" and isinstance(r.body, dict)]
        return forms

    def apple_toml(self) -> str:
        return (
            "[apple]\n"
            f'team_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\nprivate_key_file = "{self.key_path}"\n'
            f'token_url = "{self.emu.apple_token_url}"\n'
        )

    def write_config(self, connections: list[tuple[str, str]] | None = None,
                     extra: str = "") -> Path:
        """A config file for this tenant and ``(connection, services_id)`` pairs."""
        conns = connections or [("apple", SERVICES_ID)]
        body = self.auth0_toml() + "\n" + self.apple_toml() + "\n" + extra + "\n"
        for name, services_id in conns:
            body += f'[[connections]]\nconnection = "{name}"\nclient_id = "{services_id}"\n\n'
        path = self.tmp / "rotator.toml"
        path.write_text(body)
        return path

    def other_options(self, conn: dict[str, Any]) -> dict[str, Any]:
        """The connection's options as added, without the secret."""
        options: dict[str, Any] = copy.deepcopy(conn["options"])
        options.pop("client_secret", None)
        return options

    def stored(self, ref: str) -> dict[str, Any]:
        return self.emu.connection(ref)

    def patches(self) -> list[Any]:
        return [r for r in self.emu.journal if r.method == "PATCH"]

    def access_tokens(self) -> set[str]:
        """Every bearer token rotator presented to the emulator."""
        found = set()
        for request in self.emu.journal:
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                found.add(auth.split(" ", 1)[1])
        return found


def tenants_on_emulators(stack: ExitStack, tmp_path: Path, key_path: Path,
                         count: int = 2) -> list[EmulatedTenant]:
    """``count`` tenants, each on an emulator of its own (closed with ``stack``), t0, t1, ..."""
    tenants = []
    for n in range(count):
        emu = stack.enter_context(Emulator())
        work = tmp_path / f"t{n}"
        work.mkdir()
        tenants.append(EmulatedTenant(emu, work, key_path, name=f"t{n}"))
    return tenants


def two_tenants(tmp_path: Path, tenants: list[EmulatedTenant], name: str = "apple") -> Path:
    """A config file with connection ``name`` on each of ``tenants`` (each its own emulator)."""
    body = tenants[0].apple_toml() + "\n"
    for tenant in tenants:
        body += (
            f'[[connections]]\nconnection = "{name}"\nclient_id = "{SERVICES_ID}"\n'
            f'domain = "{tenant.emu.domain}"\nca_bundle = "{tenant.emu.ca_pem_path}"\n'
            f'client_secret_file = "{tenant.secret_file}"\n'
            f'token_url = "{tenant.emu.apple_token_url}"\n'
            f'[connections.auth0]\nclient_id = "{tenant.client_id}"\n\n'
        )
    path = tmp_path / "two.toml"
    path.write_text(body)
    return path
