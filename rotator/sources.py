"""Where each setting came from, and the secret values read from files or the environment.

A :class:`Value` carries a raw setting with its origin (file and key, variable
or flag) so every message can name it. :class:`SecretSources` reads the M2M
client secret and the Apple key from their files or variables, with a size
limit, once per file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotator.errors import ConfigError
from rotator.files import read_limited

if TYPE_CHECKING:
    from rotator.secret import AppleKey


@dataclass(frozen=True)
class Value:
    """A raw setting, where it came from (for messages), and whether a connection set it."""

    value: Any
    origin: str
    own: bool = False  # set by the connection's own [[connections]] entry


Table = dict[str, Value]


def str_value(v: Value, what: str) -> str:
    if not isinstance(v.value, str) or not v.value.strip():
        raise ConfigError(f"{v.origin} must be a non-empty string ({what})")
    return v.value.strip()


class SecretSources:
    """Reads secret values from the environment or files, once per file.

    Precedence for each: a file set by the connection's own entry, else the
    environment's value, else the file from [auth0]/[apple] or its variable.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self._keys: dict[str, AppleKey] = {}
        self.warnings: list[str] = []

    def _env_value(self, var: str) -> str | None:
        value = self.env.get(var)
        if value and self.env.get(f"{var}_FILE"):
            raise ConfigError(f"{var} and {var}_FILE are both set; unset one")
        return value or None

    def auth0_secret(self, file: Value | None) -> str:
        """The M2M secret: a connection's own file, else the environment, else [auth0]."""
        env_secret = self._env_value("AUTH0_CLIENT_SECRET")
        if env_secret and not (file and file.own):
            return env_secret.strip()
        if file is None:
            raise ConfigError(
                "no Auth0 client secret: set auth0.client_secret_file, "
                "AUTH0_CLIENT_SECRET_FILE or AUTH0_CLIENT_SECRET"
            )
        path = Path(str(file.value))
        data = read_limited(path, file.origin, "the M2M client secret", 64 * 1024)
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"{file.origin}: {path} is not UTF-8 text") from None
        if not text:
            raise ConfigError(f"{file.origin}: {path} is empty; it must hold the M2M client secret")
        return text

    def apple_key(self, file: Value | None) -> AppleKey:
        """The .p8 key: a connection's own file, else APPLE_PRIVATE_KEY, else [apple]."""
        from rotator import secret

        env_pem = self._env_value("APPLE_PRIVATE_KEY")
        if env_pem and not (file and file.own):
            if "env" not in self._keys:
                self._keys["env"] = secret.load_key(secret.pem_from_env(env_pem),
                                                    "APPLE_PRIVATE_KEY")
            return self._keys["env"]
        if file is None:
            raise ConfigError(
                "no Apple key: set apple.private_key_file, APPLE_PRIVATE_KEY_FILE or "
                "APPLE_PRIVATE_KEY (the .p8 key from the Apple developer portal)"
            )
        path = Path(str(file.value))
        cache_key = str(path)
        if cache_key not in self._keys:
            pem = secret.read_key_file(path, file.origin)
            self._keys[cache_key] = secret.load_key(pem, f"{file.origin} ({path})")
            if warning := secret.key_file_warning(path):
                self.warnings.append(f"{file.origin}: {warning}")
        return self._keys[cache_key]
