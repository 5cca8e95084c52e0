"""An emulated Auth0 tenant and a config file pointing at it, for the benchmarks.

Benchmarks do not import the tests: this is the small set-up they need, built
on the public API of :class:`rotator.emulator.Emulator` and
:mod:`rotator.secret` only.

Apple: an emulator that plays Apple's token endpoint (``apple_register_key``,
``apple_add_services_id``, ``apple_token_url``) is told the team's key and
Services IDs, and the config points ``[apple] token_url`` at it, so rotator's
question to Apple stays on loopback. An emulator without them (the tree before
the Apple check) gets neither, and rotator asks nothing.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

from rotator import secret
from rotator.auth0_rules import SCOPES
from rotator.emulator import Emulator
from rotator.emulator.sample import apple_options

TEAM_ID = "ABCDE12345"
KEY_ID = "ABC123DEFG"
SERVICES_ID = "com.example.webapp"
LIFETIME = 180 * 86400


def options(client_secret: str | None, services_id: str = SERVICES_ID) -> dict[str, Any]:
    """A custom social connection's options for Apple: the emulator's sample."""
    return apple_options(services_id, client_secret)


class BenchTenant:
    """One emulated tenant: an M2M client with rotator's four scopes, and its files."""

    def __init__(self, emu: Emulator, tmp: Path, key_path: Path) -> None:
        self.emu = emu
        self.tmp = tmp
        self.key_path = key_path
        self.key = secret.load_key(key_path.read_bytes(), str(key_path))
        self.client_id = f"m2m{secrets.token_hex(8)}"
        client_secret = f"m2m-secret-{secrets.token_urlsafe(24)}"
        self.secret_file = tmp / "auth0_client_secret"
        self.secret_file.write_text(client_secret)
        emu.add_client(self.client_id, client_secret, scopes=SCOPES)
        #: Whether this emulator plays Apple (see the module docstring).
        self.apple = hasattr(emu, "apple_register_key")
        if self.apple:
            emu.apple_register_key(TEAM_ID, KEY_ID, self.key.public_key)
        self._services_ids: set[str] = set()

    def add(self, name: str, *, fresh: bool = True,
            services_id: str = SERVICES_ID) -> dict[str, Any]:
        """Add an oauth2 connection, holding a not-yet-due secret when ``fresh``."""
        if self.apple and services_id not in self._services_ids:
            self.emu.apple_add_services_id(TEAM_ID, services_id)
            self._services_ids.add(services_id)
        live = None
        if fresh:
            live = secret.mint(self.key, team_id=TEAM_ID, key_id=KEY_ID,
                               services_id=services_id, lifetime=LIFETIME,
                               now=int(time.time()))
        return self.emu.add_connection({
            "name": name,
            "display_name": f"Sign in with Apple ({name})",
            "strategy": "oauth2",
            "options": options(live, services_id),
        })

    def write_config(self, connections: list[tuple[str, str]], extra: str = "",
                     name: str = "rotator.toml") -> Path:
        """A config file (``name``) for this tenant and ``(connection, services_id)`` pairs."""
        body = (
            "[auth0]\n"
            f'domain = "{self.emu.domain}"\n'
            f'client_id = "{self.client_id}"\n'
            f'client_secret_file = "{self.secret_file}"\n'
            f'ca_bundle = "{self.emu.ca_pem_path}"\n'
            "\n[apple]\n"
            f'team_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\n'
            f'private_key_file = "{self.key_path}"\n'
            + (f'token_url = "{self.emu.apple_token_url}"\n' if self.apple else "")
            + f"\n{extra}\n"
        )
        for conn, services_id in connections:
            body += f'[[connections]]\nconnection = "{conn}"\nclient_id = "{services_id}"\n\n'
        path = self.tmp / name
        path.write_text(body)
        return path
