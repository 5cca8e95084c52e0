"""``rotator demo``: the whole flow on this machine, no accounts needed.

Starts the emulator on loopback (Auth0's Management API and Apple's token
endpoint) with a realistic custom social connection for Apple, makes a
throwaway Apple key and registers it with the emulated Apple, then runs the
real commands (status, run-now, run-once, and run-now with a mistyped team id
that Apple's check catches) against it over TLS, narrating each step.
"""

from __future__ import annotations

import dataclasses
import secrets as random_secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from rotator import commands, config, logs, secret, status

TEAM_ID = "DEMO123456"
KEY_ID = "DEMOKEY001"
SERVICES_ID = "com.example.webapp"
M2M_CLIENT = "demoRotatorM2MClient0000000000001"


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


def _config(work: Path, emu: Any, key_path: Path) -> Path:
    path = work / "rotator.toml"
    path.write_text(
        "[auth0]\n"
        f'domain = "{emu.domain}"\n'
        f'client_id = "{M2M_CLIENT}"\n'
        f'client_secret_file = "{work / "auth0_client_secret"}"\n'
        f'ca_bundle = "{emu.ca_pem_path}"\n\n'
        "[apple]\n"
        f'team_id = "{TEAM_ID}"\nkey_id = "{KEY_ID}"\nprivate_key_file = "{key_path}"\n'
        f'token_url = "{emu.apple_token_url}"\n\n'
        "[[connections]]\n"
        'connection = "apple"\n'
        f'client_id = "{SERVICES_ID}"\n'
    )
    return path


def main(log_format: str | None = None, log_level: str = "warning") -> bool:
    """Run the demo; True when every scene went as it should."""
    from rotator.emulator import Emulator

    logs.configure(log_format or "console", log_level)
    with tempfile.TemporaryDirectory(prefix="rotator-demo-") as tmp, Emulator() as emu:
        work = Path(tmp)
        key_path = work / f"AuthKey_{KEY_ID}.p8"
        secret.generate_throwaway_key(key_path)
        key = secret.load_key(key_path.read_bytes(), str(key_path))
        emu.apple_register_key(TEAM_ID, KEY_ID, key.public_key)
        emu.apple_add_services_id(TEAM_ID, SERVICES_ID)
        m2m_secret = random_secrets.token_urlsafe(32)
        (work / "auth0_client_secret").write_text(m2m_secret)
        (work / "auth0_client_secret").chmod(0o600)
        emu.add_client(M2M_CLIENT, m2m_secret)
        # A secret someone made by hand two months ago, valid for 180 days.
        old = secret.mint(key, team_id=TEAM_ID, key_id=KEY_ID, services_id=SERVICES_ID,
                          lifetime=180 * 86400, now=int(time.time()) - 60 * 86400)
        conn = emu.add_connection(realistic_connection(old))
        settings = config.load(config.Overrides(config=str(_config(work, emu, key_path))), {})

        print("rotator demo: everything below runs on this machine; nothing leaves it.")
        print(f"  emulator:        https://{emu.domain} plays Auth0 and Apple (a throwaway CA, "
              "trusted by rotator only)")
        print(f"  Apple key:       {key_path.name} (a fresh P-256 key, team {TEAM_ID}, "
              f"key id {KEY_ID}, registered with the emulated Apple)")
        print(f"  connection:      'apple' ({conn['id']}), a custom social connection with "
              f"{len(conn['options'])} options, its secret made by hand 60 days ago")

        _say("rotator status: what is live now, and whether Apple accepts it")
        print(status.to_table(commands.look(settings), time.time()))

        _say("rotator run-now: mint a new secret, have Apple accept it, write it, keeping "
             "every other option")
        report = commands.rotate(settings, force=True)
        if report.failed:
            print("run-now failed; see the log above")
            return False
        after = emu.connection(conn["id"])
        kept = [k for k in conn["options"] if k != "client_secret"
                and after["options"].get(k) == conn["options"][k]]
        changed = after["options"]["client_secret"] != conn["options"]["client_secret"]
        print(f"  new secret stored: {'yes' if changed else 'NO'}; other options kept: "
              f"{len(kept)} of {len(conn['options']) - 1}; display_name: "
              f"{after.get('display_name')!r}")
        patches = [r for r in emu.journal if r.method == "PATCH"]
        body = patches[-1].body if patches else None
        carried = sorted(body) if isinstance(body, dict) else []
        print(f"  the PATCH carried only: {', '.join(carried)}")

        _say("rotator status: the fresh secret")
        print(status.to_table(commands.look(settings), time.time()))

        _say("rotator run-once: what cron runs; nothing is due, so nothing is written")
        before = len([r for r in emu.journal if r.method == "PATCH"])
        quiet = commands.rotate(settings)
        writes = len([r for r in emu.journal if r.method == "PATCH"]) - before
        print(f"  writes during run-once: {writes}")

        _say("a mistyped team id: Apple refuses the new secret, so nothing is written")
        wrong = _with_team(settings, "DEMO12345X")
        stored = emu.connection(conn["id"])["options"]["client_secret"]
        typo = commands.rotate(wrong, force=True)
        [outcome] = typo.outcomes
        untouched = emu.connection(conn["id"])["options"]["client_secret"] == stored
        print(f"  failed at step: {outcome.step}; live secret untouched: "
              f"{'yes' if untouched else 'NO'}")

        _say("done: the emulator is stopped and the throwaway key deleted")
        print("Next: point --config at your tenant (see config/rotator.example.toml) and run "
              "'rotator check-config --online'.")
        return not quiet.failed and outcome.step == "apple_check" and untouched


def _with_team(settings: config.Settings, team_id: str) -> config.Settings:
    conns = tuple(
        dataclasses.replace(c, apple=dataclasses.replace(c.apple, team_id=team_id))
        for c in settings.connections
    )
    return dataclasses.replace(settings, connections=conns)
