"""``python -m rotator.emulator``: serve an emulator, or change a running one's Apple keys.

``serve`` (the default) starts an emulator with a sample M2M client, a sample
connection and an Apple team, prints how to reach them, and runs until Ctrl-C
or SIGTERM. From another shell, ``apple-register`` and ``apple-revoke`` change
its Apple keys through its admin endpoints, found through the admin file it
printed. ``--help`` of each command works offline and starts nothing.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path

from rotator.emulator import admin
from rotator.emulator.sample import apple_connection

PROG = "python -m rotator.emulator"
COMMANDS = ("serve", "apple-register", "apple-revoke")
SAMPLE_TEAM, SAMPLE_KEY, SAMPLE_SERVICES_ID = "EMUTEAM001", "EMUKEY0001", "com.example.webapp"
EXAMPLE = f"""\
example, in two shells:
  {PROG}          # prints, among others, "admin file: PATH"
  {PROG} apple-register --admin-file PATH ABCDE12345 ABC123DEFG \\
      AuthKey_ABC123DEFG.p8 --services-id com.example.webapp
  {PROG} apple-revoke --admin-file PATH ABC123DEFG

exit codes: 0 done; 1 the emulator refused or could not be reached; 2 bad usage or key file
"""


def _apple_key(spec: str) -> tuple[str, str, Path]:
    team_id, key_id, path = [*spec.split(":", 2), "", ""][:3]
    if not (team_id and key_id and path):
        raise argparse.ArgumentTypeError(f"expected TEAM_ID:KEY_ID:PEM_FILE, got {spec!r}")
    return team_id, key_id, Path(path)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="An Auth0 tenant and Apple's token endpoint on loopback over TLS, "
        "for trying rotator with no accounts. Without a command: serve.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="serve until Ctrl-C or SIGTERM (the default)",
        description="Serve an emulator with a sample M2M client, a connection named 'apple' "
        "and an Apple team; print how to reach them; run until Ctrl-C or SIGTERM.",
    )
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: any free one)")
    serve.add_argument("--audience", help="the Management API identifier token requests must "
                       "name (default https://localhost:PORT/api/v2/; another one emulates a "
                       "custom domain)")
    serve.add_argument("--apple-key", type=_apple_key, action="append", default=[],
                       metavar="TEAM_ID:KEY_ID:PEM_FILE",
                       help="register this Apple key (PEM, public or private; repeatable); "
                       "default: a throwaway key of team " + SAMPLE_TEAM)
    serve.add_argument("--services-id", action="append", default=[], metavar="SERVICES_ID",
                       help=f"a Services ID of every team above (repeatable; default "
                       f"{SAMPLE_SERVICES_ID})")
    serve.add_argument("--client-auth", choices=("client-secret", "private-key-jwt"),
                       default="client-secret",
                       help="how the sample M2M client authenticates: with a client secret "
                       "(the default), or with Private Key JWT only (no secret: a throwaway "
                       "RSA key is written to a mode 0600 file whose path is printed)")
    serve.add_argument("--client-alg", choices=("RS256", "RS384", "PS256"), default="RS256",
                       help="the algorithm the Private Key JWT credential is registered for "
                       "(default RS256)")
    register = commands.add_parser(
        "apple-register", help="register an Apple key with a running emulator",
        description="Register an Apple key, and optionally Services IDs, with a running emulator.",
    )
    register.add_argument("team_id", metavar="TEAM_ID")
    register.add_argument("key_id", metavar="KEY_ID")
    register.add_argument("pem_file", type=Path, metavar="PEM_FILE",
                          help="the key, PEM: public, or private (only its public half is sent)")
    register.add_argument("--services-id", action="append", default=[], metavar="SERVICES_ID",
                          help="also register this Services ID for the team (repeatable)")
    revoke = commands.add_parser(
        "apple-revoke", help="revoke an Apple key of a running emulator",
        description="Revoke an Apple key: the emulator refuses the secrets it signed from now on.",
    )
    revoke.add_argument("key_id", metavar="KEY_ID")
    for sub in (register, revoke):
        sub.add_argument("--admin-file", type=Path, required=True,
                         help="the admin file the running emulator printed")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit code (0 done, 1 the emulator refused or was unreachable)."""
    args_in = sys.argv[1:] if argv is None else argv
    if not args_in or args_in[0] not in (*COMMANDS, "-h", "--help"):
        args_in = ["serve", *args_in]
    parser = build_parser()
    args = parser.parse_args(args_in)
    if args.command == "serve":
        return serve(parser, args)
    try:
        if args.command == "apple-register":
            register(parser, args)
        else:
            admin.call(args.admin_file, "DELETE", f"{admin.KEYS}/{args.key_id}")
            print(f"revoked key {args.key_id}")
    except (OSError, RuntimeError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _public_pem(parser: argparse.ArgumentParser, path: Path) -> str:
    from cryptography.hazmat.primitives import serialization

    from rotator.emulator.apple import public_key_of

    try:
        key = public_key_of(path.read_bytes())
    except (OSError, ValueError) as exc:
        parser.error(f"{path}: {exc}")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return key.public_bytes(serialization.Encoding.PEM, spki).decode("ascii")


def register(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``apple-register``: send the key's public half, then each Services ID."""
    pem = _public_pem(parser, args.pem_file)
    key = {"team_id": args.team_id, "key_id": args.key_id, "public_key": pem}
    admin.call(args.admin_file, "POST", admin.KEYS, key)
    print(f"registered key {args.key_id} of team {args.team_id}")
    for services_id in args.services_id:
        ids = {"team_id": args.team_id, "services_id": services_id}
        admin.call(args.admin_file, "POST", admin.SERVICES_IDS, ids)
        print(f"registered Services ID {services_id} for team {args.team_id}")


def serve(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``serve``: an emulator with sample state until Ctrl-C or SIGTERM."""
    from rotator.emulator.loopback import Emulator
    from rotator.secret import generate_throwaway_key

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    services_ids: list[str] = args.services_id or [SAMPLE_SERVICES_ID]
    with tempfile.TemporaryDirectory(prefix="rotator-emulator-key-") as tmp:
        keys: list[tuple[str, str, Path]] = args.apple_key
        if not keys:
            keys = [(SAMPLE_TEAM, SAMPLE_KEY, Path(tmp) / f"AuthKey_{SAMPLE_KEY}.p8")]
            generate_throwaway_key(keys[0][2])
        pems = [(team, kid, _public_pem(parser, path)) for team, kid, path in keys]
        with Emulator(port=args.port, audience=args.audience) as emu:
            client_id = "emulator-client"
            client_secret = (secrets.token_urlsafe(24) if args.client_auth == "client-secret"
                             else None)
            emu.add_client(client_id, client_secret)
            signing_key = None
            if client_secret is None:
                signing_key = Path(tmp) / "auth0_m2m_key.pem"
                emu.add_client_key(client_id, write_rsa_key(signing_key), args.client_alg)
            conn = emu.add_connection(apple_connection(services_ids[0]))
            for team, kid, pem in pems:
                emu.apple_register_key(team, kid, pem)
                for services_id in services_ids:
                    emu.apple_add_services_id(team, services_id)
            _say("domain", emu.domain)
            _say("CA bundle", emu.ca_pem_path)
            _say("client id", client_id)
            if client_secret is not None:
                _say("client secret", f"{client_secret}  (throwaway, valid only here)")
            else:
                _say("signing key", f"{signing_key}  (Private Key JWT, {args.client_alg}; "
                     "throwaway, no client secret)")
            _say("connection", f"apple ({conn['id']})")
            _say("audience", emu.audience)
            _say("apple token", emu.apple_token_url)
            for team, kid, path in keys:
                throwaway = "" if args.apple_key else "  (throwaway)"
                _say("apple key", f"team {team}, key {kid}: {path}{throwaway}")
            _say("services ids", ", ".join(services_ids))
            _say("admin file", f"{emu.admin_file}  (for apple-register, apple-revoke)")
            print("Ctrl-C to stop.", flush=True)
            while not stop.wait(0.5):
                pass
    return 0


def write_rsa_key(path: Path, bits: int = 2048) -> object:
    """Write a fresh unencrypted RSA private key (PKCS#8 PEM) to ``path``, mode 0600.

    Returns its public key, to register as the client's credential.
    """
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key.public_key()


def _say(label: str, value: str) -> None:
    print(f"{label + ':':<15}{value}")
