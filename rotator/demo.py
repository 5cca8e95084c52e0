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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rotator import commands, config, logs, secret, status
from rotator.emulator.sample import apple_connection
from rotator.modes import Mode

if TYPE_CHECKING:
    from rotator.emulator import Emulator, Request

TEAM_ID = "DEMO123456"
KEY_ID = "DEMOKEY001"
SERVICES_ID = "com.example.webapp"
M2M_CLIENT = "demoRotatorM2MClient0000000000001"


def _say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _config(work: Path, emu: Emulator, key_path: Path) -> Path:
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


@dataclass
class _Stage:
    """What every scene works with."""

    emu: Emulator
    settings: config.Settings
    conn: dict[str, Any]

    def patches(self) -> list[Request]:
        return [r for r in self.emu.journal if r.method == "PATCH"]

    def stored(self) -> str:
        return str(self.emu.connection(self.conn["id"])["options"]["client_secret"])


def main(log_format: str | None = None, log_level: str = "warning") -> bool:
    """Run the demo; True when every scene went as it should."""
    from rotator.emulator import Emulator

    logs.configure(log_format or "console", log_level)
    with tempfile.TemporaryDirectory(prefix="rotator-demo-") as tmp, Emulator() as emu:
        stage = _set_up(Path(tmp), emu)
        _say("rotator status: what is live now, and whether Apple accepts it")
        print(status.to_table(commands.look(stage.settings)))
        rotated = _run_now(stage)
        if rotated:
            _say("rotator status: the fresh secret")
            print(status.to_table(commands.look(stage.settings)))
        quiet = _run_once(stage)
        caught = _typo(stage)
        _say("done: the emulator is stopped and the throwaway key deleted")
        print("Next: point --config at your tenant (see config/rotator.example.toml) and run "
              "'rotator check-config --online'.")
        return rotated and quiet and caught


def _set_up(work: Path, emu: Emulator) -> _Stage:
    """A throwaway key Apple knows, an M2M client, a connection with a hand-made secret."""
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
    conn = emu.add_connection(apple_connection(SERVICES_ID, old))
    settings = config.load(config.Overrides(config=str(_config(work, emu, key_path))), {})
    print("rotator demo: everything below runs on this machine; nothing leaves it.")
    print(f"  emulator:        https://{emu.domain} plays Auth0 and Apple (a throwaway CA, "
          "trusted by rotator only)")
    print(f"  Apple key:       {key_path.name} (a fresh P-256 key, team {TEAM_ID}, "
          f"key id {KEY_ID}, registered with the emulated Apple)")
    print(f"  connection:      'apple' ({conn['id']}), a custom social connection with "
          f"{len(conn['options'])} options, its secret made by hand 60 days ago")
    return _Stage(emu, settings, conn)


def _run_now(stage: _Stage) -> bool:
    _say("rotator run-now: mint a new secret, have Apple accept it, write it, keeping "
         "every other option")
    if commands.rotate(stage.settings, Mode.rotating(force=True)).failed:
        print("run-now failed; see the log above")
        return False
    before, after = stage.conn, stage.emu.connection(stage.conn["id"])
    kept = [k for k in before["options"] if k != "client_secret"
            and after["options"].get(k) == before["options"][k]]
    changed = bool(after["options"]["client_secret"] != before["options"]["client_secret"])
    print(f"  new secret stored: {'yes' if changed else 'NO'}; other options kept: "
          f"{len(kept)} of {len(before['options']) - 1}; display_name: "
          f"{after.get('display_name')!r}")
    body = stage.patches()[-1].body if stage.patches() else None
    carried = sorted(body) if isinstance(body, dict) else []
    print(f"  the PATCH carried only: {', '.join(carried)}")
    return changed


def _run_once(stage: _Stage) -> bool:
    _say("rotator run-once: what cron runs; nothing is due, so nothing is written")
    before = len(stage.patches())
    report = commands.rotate(stage.settings, Mode.rotating())
    writes = len(stage.patches()) - before
    print(f"  writes during run-once: {writes}")
    return not report.failed and writes == 0


def _typo(stage: _Stage) -> bool:
    _say("a mistyped team id: Apple refuses the new secret, so nothing is written")
    live = stage.stored()
    [outcome] = commands.rotate(_with_team(stage.settings, "DEMO12345X"),
                                   Mode.rotating(force=True)).outcomes
    untouched = stage.stored() == live
    print(f"  failed at step: {outcome.step}; live secret untouched: "
          f"{'yes' if untouched else 'NO'}")
    return outcome.step == "apple_check" and untouched


def _with_team(settings: config.Settings, team_id: str) -> config.Settings:
    conns = tuple(
        dataclasses.replace(c, apple=dataclasses.replace(c.apple, team_id=team_id))
        for c in settings.connections
    )
    return dataclasses.replace(settings, connections=conns)
