"""A rotator configuration that points at a served emulator (``--write-config PATH``).

The file and the secrets it names (the M2M client secret, the Apple ``.p8``
key, the emulator's CA bundle) are written side by side, each mode 0600, with
absolute paths, so every rotator command works with ``--config PATH`` from any
folder while the emulator runs. A file of the user's is never overwritten: the
configuration may replace only one this module wrote (it starts with
:data:`MARK`), and the files beside it only together with it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

MARK = "# Written by `rotator emulator --write-config`"
CLIENT_SECRET_FILE = "emulator_client_secret"  # noqa: S105 - a file name
CA_FILE = "emulator_ca.pem"
SIGNING_KEY_FILE = "emulator_m2m_key.pem"  # Private Key JWT (--client-auth private-key-jwt)


class Refused(Exception):
    """The target cannot be written; the message says why and what to do."""


@dataclass(frozen=True, kw_only=True)
class TryoutTenant:
    """What the written configuration points at."""

    base_url: str
    domain: str
    client_id: str
    client_secret: str | None  # None: Private Key JWT with signing_key
    signing_key: Path | None
    signing_alg: str
    ca_pem: bytes
    team_id: str
    key_id: str
    key_file: Path
    token_url: str
    connection: str
    services_id: str
    custom_audience: str | None  # set: the domain acts as a custom domain


def key_file(config: Path, key_id: str) -> Path:
    """Where the Apple key is written beside the configuration."""
    return config.parent / f"AuthKey_{key_id}.p8"


def target(path: str, key_id: str) -> Path:
    """The absolute configuration path, once it is known that writing there is safe."""
    config = Path(path).expanduser().absolute()
    beside = [config.parent / CLIENT_SECRET_FILE, config.parent / CA_FILE,
              config.parent / SIGNING_KEY_FILE, key_file(config, key_id)]
    if config.is_dir():
        raise Refused(f"--write-config {config} is a directory; give a file path such as "
                      f"{config / 'rotator.toml'}")
    if config.exists():
        try:
            ours = config.read_text(encoding="utf-8").startswith(MARK)
        except (OSError, UnicodeDecodeError):
            ours = False
        if not ours:
            raise Refused(f"--write-config {config} exists and was not written by rotator "
                          "emulator; give a new path (or remove the file)")
    else:
        taken = [p for p in beside if p.exists()]
        if taken:
            raise Refused(f"--write-config {config}: {taken[0]} already exists beside it; give "
                          "a path in a folder of its own")
    try:
        config.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise Refused(f"--write-config {config}: cannot create {config.parent} "
                      f"({exc.strerror or type(exc).__name__})") from None
    if not os.access(config.parent, os.W_OK | os.X_OK):
        raise Refused(f"--write-config {config}: {config.parent} is not writable; give a path "
                      "in a folder you can write")
    return config


def write(config: Path, tenant: TryoutTenant) -> None:
    """Write the secrets beside ``config``, then the configuration itself (all mode 0600)."""
    ca_file = config.parent / CA_FILE
    if tenant.client_secret is not None:
        secret_file = config.parent / CLIENT_SECRET_FILE
        _private(secret_file, tenant.client_secret.encode() + b"\n")
        auth = f"client_secret_file = {_q(str(secret_file))}\n"
    else:
        assert tenant.signing_key is not None
        auth = (f"client_assertion_signing_key_file = {_q(str(tenant.signing_key))}\n"
                f"client_assertion_signing_alg = {_q(tenant.signing_alg)}\n")
    _private(ca_file, tenant.ca_pem)
    audience = (
        f"# audience = {_q(tenant.custom_audience)}   # the domain acts as a custom domain: "
        "uncomment this line to fix the token request\n"
        if tenant.custom_audience else ""
    )
    _private(config, (
        f"{MARK} for the emulator at\n"
        f"# {tenant.base_url}; it works while that emulator runs. Secrets are in the files\n"
        "# beside it. Try: rotator check-config --online --config THIS_FILE\n\n"
        "[auth0]\n"
        f"domain = {_q(tenant.domain)}\n"
        f"client_id = {_q(tenant.client_id)}\n"
        f"{auth}"
        f"ca_bundle = {_q(str(ca_file))}\n"
        f"{audience}\n"
        "[apple]\n"
        f"team_id = {_q(tenant.team_id)}\n"
        f"key_id = {_q(tenant.key_id)}\n"
        f"private_key_file = {_q(str(tenant.key_file))}\n"
        f"token_url = {_q(tenant.token_url)}\n\n"
        "[server]\n"
        'listen = "127.0.0.1:8080"\n\n'
        "[[connections]]\n"
        f"connection = {_q(tenant.connection)}\n"
        f"client_id = {_q(tenant.services_id)}\n"
    ).encode())


def _q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text)


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(data)
