"""Where each setting came from, and what settings point at: secrets, the key, CA bundles.

A :class:`Value` carries a raw setting with its origin (file and key, variable
or flag) so every message can name it. :class:`Sources` reads the M2M client
secret and the Apple key from their files or variables, and proves each CA
bundle loads, with a size limit, once per file for one load of the settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotator.errors import ConfigError
from rotator.files import CA_BUNDLE_MAX, read_limited

if TYPE_CHECKING:
    from rotator.client_auth import ClientAuth
    from rotator.secret import AppleKey


@dataclass(frozen=True)
class Value:
    """A raw setting, where it came from (for messages), and whether a connection set it.

    The one normalisation rule: surrounding whitespace (newlines included) of a
    string value is stripped here, wherever it came from (file, variable,
    flag), before anything validates or uses it. ``kubectl create secret
    --from-file`` and env files add a trailing newline; no id, name, domain,
    URL, path or duration has one. Whitespace *inside* a value stays, and the
    settings refuse it where it cannot belong.
    """

    value: Any
    origin: str
    own: bool = False  # set by the connection's own [[connections]] entry
    #: The folder a relative path in it is relative to: the config file's for
    #: values from the file, None (the current folder) for variables and flags.
    base: Path | None = None

    def path(self, what: str) -> Path:
        """The value as an absolute path (PRODUCT.md, "Paths")."""
        from rotator.paths import resolve

        return resolve(str_value(self, what), self.base)

    def __post_init__(self) -> None:
        if isinstance(self.value, str):
            object.__setattr__(self, "value", self.value.strip())


Table = dict[str, Value]


def str_value(v: Value, what: str) -> str:
    if not isinstance(v.value, str) or not v.value:
        raise ConfigError(f"{v.origin} must be a non-empty string ({what})")
    return str(v.value)


class Sources:
    """Reads what settings point at, from the environment or files, once per file.

    Precedence for each: a file set by the connection's own entry, else the
    environment's value, else the file from [auth0]/[apple] or its variable.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self._keys: dict[str, AppleKey] = {}
        self._signing_keys: dict[tuple[str, str], ClientAuth] = {}
        self._bundles: set[Path] = set()
        self.warnings: list[str] = []

    def _env_value(self, var: str) -> str | None:
        value = self.env.get(var)
        if value and self.env.get(f"{var}_FILE"):
            raise ConfigError(f"{var} and {var}_FILE are both set; unset one")
        return value or None

    def _warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def _overridden(self, var: str, file: Value | None) -> None:
        """Warn that ``var`` wins over a file the configuration names."""
        if file is not None:
            self._warn(f"{var} is set in the environment and wins over {file.origin} "
                       f"({file.value}); unset {var} to use the file")

    def client_auth(self, auth0: Table) -> ClientAuth:
        """How the M2M application authenticates: a client secret or Private Key JWT.

        A connection's own entry that names a credential (either kind) replaces
        every inherited one; at one level, a client secret and a signing key
        together are refused, whichever sources they come from.
        """
        from rotator import client_auth

        secret_file = auth0.get("client_secret_file")
        key_file = auth0.get("client_assertion_signing_key_file")
        alg_value = auth0.get("client_assertion_signing_alg")
        alg = client_auth.DEFAULT_ALG
        if alg_value is not None:
            alg = client_auth.check_alg(alg_value.value, alg_value.origin)
        own = [v for v in (secret_file, key_file) if v is not None and v.own]
        if own:
            secret_file, key_file = (v if v in own else None for v in (secret_file, key_file))
            env_secret = env_key = None
        else:
            env_secret = self._env_value("AUTH0_CLIENT_SECRET")
            env_key = self._env_value("AUTH0_CLIENT_ASSERTION_SIGNING_KEY")
        secrets = [name for name, set_ in (("AUTH0_CLIENT_SECRET", env_secret),
                   (secret_file.origin if secret_file else "", secret_file)) if set_]
        keys = [name for name, set_ in (("AUTH0_CLIENT_ASSERTION_SIGNING_KEY", env_key),
                (key_file.origin if key_file else "", key_file)) if set_]
        if secrets and keys:
            raise ConfigError(
                f"both a client secret ({secrets[0]}) and a Private Key JWT signing key "
                f"({keys[0]}) are configured; the M2M application authenticates with one: "
                "remove the client secret to use Private Key JWT, or the signing key to use "
                "the secret"
            )
        if keys:
            if env_key:
                from rotator.secret import pem_from_env

                self._overridden("AUTH0_CLIENT_ASSERTION_SIGNING_KEY", key_file)

                if ("env", alg) not in self._signing_keys:
                    self._signing_keys[("env", alg)] = client_auth.load_signing_key(
                        pem_from_env(env_key), "AUTH0_CLIENT_ASSERTION_SIGNING_KEY", alg)
                return self._signing_keys[("env", alg)]
            assert key_file is not None
            return self._signing_key(key_file, alg)
        if alg_value is not None and (alg_value.own or not own):
            raise ConfigError(
                f"{alg_value.origin} is set, but no signing key is configured "
                f"(the M2M application authenticates with its client secret); remove it, or "
                f"set {client_auth.KEY_SETTING} for Private Key JWT"
            )
        return client_auth.ClientSecret(*self._auth0_secret(env_secret, secret_file))

    def _signing_key(self, file: Value, alg: str) -> ClientAuth:
        from rotator import client_auth
        from rotator.secret import key_file_warning

        path = file.path("the path of the RSA private key")
        if (cached := self._signing_keys.get((str(path), alg))) is not None:
            return cached
        pem = read_limited(path, file.origin, "a PEM private key", 64 * 1024,
                           fix=f"make one with '{client_auth.MAKE_KEY}'")
        loaded = client_auth.load_signing_key(pem, f"{file.origin} ({path})", alg)
        self._signing_keys[(str(path), alg)] = loaded
        if warning := key_file_warning(path):
            self.warnings.append(f"{file.origin}: {warning}")
        return loaded

    def _auth0_secret(self, env_secret: str | None, file: Value | None) -> tuple[str, str]:
        """The M2M secret and where it came from: the environment, else its file."""
        if env_secret:
            self._overridden("AUTH0_CLIENT_SECRET", file)
            return env_secret.strip(), "AUTH0_CLIENT_SECRET"
        if file is None:
            raise ConfigError(
                "no Auth0 client secret or signing key: set auth0.client_secret_file, "
                "AUTH0_CLIENT_SECRET_FILE or AUTH0_CLIENT_SECRET (the M2M client secret), or "
                "auth0.client_assertion_signing_key_file or AUTH0_CLIENT_ASSERTION_SIGNING_KEY "
                "(Private Key JWT)"
            )
        path = file.path("the path of the M2M client secret file")
        data = read_limited(path, file.origin, "the M2M client secret", 64 * 1024)
        try:
            text = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise ConfigError(f"{file.origin}: {path} is not UTF-8 text") from None
        if not text:
            raise ConfigError(f"{file.origin}: {path} is empty; it must hold the M2M client secret")
        return text, f"{file.origin} ({path})"

    def apple_key(self, file: Value | None) -> AppleKey:
        """The .p8 key: a connection's own file, else APPLE_PRIVATE_KEY, else [apple]."""
        from rotator import secret

        env_pem = self._env_value("APPLE_PRIVATE_KEY")
        if env_pem and not (file and file.own):
            self._overridden("APPLE_PRIVATE_KEY", file)
            if "env" not in self._keys:
                self._keys["env"] = secret.load_key(secret.pem_from_env(env_pem),
                                                    "APPLE_PRIVATE_KEY")
            return self._keys["env"]
        if file is None:
            raise ConfigError(
                "no Apple key: set apple.private_key_file, APPLE_PRIVATE_KEY_FILE or "
                "APPLE_PRIVATE_KEY (the .p8 key from the Apple developer portal)"
            )
        path = file.path("the path of the .p8 key file")
        cache_key = str(path)
        if cache_key not in self._keys:
            pem = secret.read_key_file(path, file.origin)
            self._keys[cache_key] = secret.load_key(pem, f"{file.origin} ({path})", path)
            if warning := secret.key_file_warning(path):
                self._warn(f"{file.origin}: {warning}")
        return self._keys[cache_key]

    def key_name(self, key: AppleKey, key_id: Value, team_id: Value) -> None:
        """Warn when the key's file name (``AuthKey_<ID>.p8``) names another key id."""
        from rotator import secret

        named = secret.id_in_file_name(key.path)
        if named is None or named == key_id.value:
            return
        if named == team_id.value:
            self._warn(
                f"{team_id.origin} {team_id.value} is the id in the key's file name "
                f"{key.path.name if key.path else ''}, and {key_id.origin} is {key_id.value}: "
                "apple.team_id and apple.key_id look swapped")
            return
        self._warn(
            f"{key_id.origin} {key_id.value} differs from the id in the key's file name "
            f"{key.path.name if key.path else ''} ({named}); Apple names each key "
            "AuthKey_<Key ID>.p8: check that the key and the key id belong together")

    def ca_bundle(self, v: Value) -> Path:
        """A file of PEM CA certificates that OpenSSL accepts (proven once per file)."""
        import ssl  # here: only tenants with a ca_bundle need it at load time

        path = v.path("a PEM file of CA certificates")
        if path in self._bundles:
            return path
        if not path.is_file():
            missing = "does not exist" if not path.exists() else "is not a regular file"
            raise ConfigError(f"{v.origin}: {path} {missing}; give a PEM file of CA certificates")
        pem = read_limited(path, v.origin, "a PEM file of CA certificates", CA_BUNDLE_MAX)
        try:
            # A bare context: proving the file loads needs none of the system's CAs.
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
                cadata=pem.decode("ascii"))
        except (ssl.SSLError, UnicodeDecodeError, ValueError):
            raise ConfigError(
                f"{v.origin}: {path} holds no PEM certificate OpenSSL can load; it must contain "
                "'-----BEGIN CERTIFICATE-----' blocks (convert DER with 'openssl x509 -inform der')"
            ) from None
        self._bundles.add(path)
        return path
