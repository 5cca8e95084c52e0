"""``rotator demo``: the whole flow on this machine, no accounts needed.

Starts the Auth0 emulator on loopback with a realistic custom social
connection for Apple, makes a throwaway Apple key, then runs the real
commands (``run-now``, ``status``, ``run-once``) against it over TLS,
narrating each step, and stops everything it started.
"""

from __future__ import annotations

import secrets as random_secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rotator import cli, secret

TEAM_ID = "DEMO123456"
KEY_ID = "DEMOKEY001"
SERVICES_ID = "com.example.webapp"


def realistic_connection(old_secret: str) -> dict[str, Any]:
    """A custom social connection for Apple as teams set it up in Auth0."""
    return {
        "name": "apple",
        "display_name": "Sign in with Apple",
        "strategy": "oauth2",
        "enabled_clients": ["demoAppClientId000000000000000001"],
        "options": {
            "client_id": SERVICES_ID,
            "client_secret": old_secret,
            "authorizationURL": "https://appleid.apple.com/auth/authorize",
            "tokenURL": "https://appleid.apple.com/auth/token",
            "scope": "name email",
            "scripts": {
                "fetchUserProfile": (
                    "function(accessToken, ctx, cb) {\n"
                    "  const claims = JSON.parse(Buffer.from(ctx.id_token.split('.')[1], "
                    "'base64'));\n"
                    "  cb(null, { user_id: claims.sub, email: claims.email });\n}"
                ),
            },
            "customHeaders": {"X-Requested-By": "auth0"},
            "upstream_params": {"response_mode": {"value": "form_post"}},
            "set_user_root_attributes": "on_each_login",
            "non_persistent_attrs": [],
            "icon_url": "https://example.com/apple.png",
        },
    }


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def main(log_format: str | None = None, log_level: str = "warning") -> int:
    from rotator.emulator import Emulator

    log_format = log_format or "console"
    with tempfile.TemporaryDirectory(prefix="rotator-demo-") as tmp, Emulator() as emu:
        work = Path(tmp)
        key_path = work / f"AuthKey_{KEY_ID}.p8"
        secret.generate_throwaway_key(key_path)
        key = secret.load_key(key_path.read_bytes(), str(key_path))
        m2m_secret = random_secrets.token_urlsafe(32)
        (work / "auth0_client_secret").write_text(m2m_secret)
        (work / "auth0_client_secret").chmod(0o600)
        emu.add_client("demoRotatorM2MClient0000000000001", m2m_secret)
        # A secret someone made by hand two months ago, valid for 180 days.
        old = secret.mint(key, team_id=TEAM_ID, key_id=KEY_ID, services_id=SERVICES_ID,
                          lifetime=180 * 86400, now=int(time.time()) - 60 * 86400)
        conn = emu.add_connection(realistic_connection(old))
        config = work / "rotator.toml"
        config.write_text(
            "[auth0]\n"
            f'domain = "{emu.domain}"\n'
            'client_id = "demoRotatorM2MClient0000000000001"\n'
            f'client_secret_file = "{work / "auth0_client_secret"}"\n'
            f'ca_bundle = "{emu.ca_pem_path}"\n\n'
            "[apple]\n"
            f'team_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\nprivate_key_file = "{key_path}"\n\n'
            "[[connections]]\n"
            'connection = "apple"\n'
            f'client_id = "{SERVICES_ID}"\n'
        )
        flags = ["--config", str(config), "--log-format", log_format]  # for run-now/run-once
        quiet = [*flags, "--log-level", log_level]  # for status: the table, not the log

        print("rotator demo: everything below runs on this machine; nothing leaves it.")
        print(f"  Auth0 emulator:  https://{emu.domain} (a throwaway CA, trusted by rotator only)")
        print(f"  Apple key:       {key_path.name} (a fresh P-256 key, team {TEAM_ID}, "
              f"key id {KEY_ID})")
        print(f"  connection:      'apple' ({conn['id']}), a custom social connection with "
              f"{len(conn['options'])} options, its secret made by hand 60 days ago")

        _say("rotator status: what is live now")
        code = cli.main(["status", *quiet])

        _say("rotator run-now: mint a new secret and write it, keeping every other option")
        code = cli.main(["run-now", "--log-level", "info", *flags])
        if code != 0:
            print("run-now failed; see the log above", file=sys.stderr)
            return code
        after = emu.connection(conn["id"])
        kept = [k for k in conn["options"] if k != "client_secret"
                and after["options"].get(k) == conn["options"][k]]
        changed = after["options"]["client_secret"] != conn["options"]["client_secret"]
        print(f"  new secret stored: {'yes' if changed else 'NO'}; other options kept: "
              f"{len(kept)} of {len(conn['options']) - 1}; display_name: "
              f"{after.get('display_name')!r}")
        patches = [r for r in emu.journal if r.method == "PATCH"]
        if patches:
            body = patches[-1].body
            keys = sorted(body) if isinstance(body, dict) else []
            print(f"  the PATCH carried only: {', '.join(keys)}")

        _say("rotator status: the fresh secret")
        cli.main(["status", *quiet])

        _say("rotator run-once: what cron runs; nothing is due, so nothing is written")
        before = len([r for r in emu.journal if r.method == "PATCH"])
        code = cli.main(["run-once", "--log-level", "info", *flags])
        after_count = len([r for r in emu.journal if r.method == "PATCH"])
        print(f"  writes during run-once: {after_count - before}")

        _say("done: the emulator is stopped and the throwaway key deleted")
        print("Next: point --config at your tenant (see config/rotator.example.toml) and run "
              "'rotator check-config --online'.")
        return code
