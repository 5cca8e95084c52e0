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
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

from rotator import signals
from rotator.emulator import admin, tryout
from rotator.emulator.auth0 import DEFAULT_SCOPES
from rotator.emulator.sample import apple_connection

PROG = "python -m rotator.emulator"
COMMANDS = ("serve", "apple-register", "apple-revoke")
SAMPLE_TEAM, SAMPLE_KEY, SAMPLE_SERVICES_ID = "EMUTEAM001", "EMUKEY0001", "com.example.webapp"
#: The Management API identifier served with --custom-domain (a tenant's canonical one).
CUSTOM_DOMAIN_AUDIENCE = "https://emulated-tenant.eu.auth0.com/api/v2/"
#: The custom social connection's name beside a native one (which takes "apple").
CUSTOM_BESIDE_NATIVE = "apple-custom"


def _example(prog: str) -> str:
    return f"""\
example, in two shells:
  {prog} --write-config /tmp/emu/rotator.toml   # prints, among others, "admin file: PATH"
  rotator check-config --online --config /tmp/emu/rotator.toml
  {prog} apple-register --admin-file PATH ABCDE12345 ABC123DEFG \\
      AuthKey_ABC123DEFG.p8 --services-id com.example.webapp
  {prog} apple-revoke --admin-file PATH ABC123DEFG

exit codes: 0 done (serve: stopped by Ctrl-C or SIGTERM); 1 the emulator refused or could not
be reached; 2 bad usage or key file
"""


def _apple_key(spec: str) -> tuple[str, str, Path]:
    team_id, key_id, path = [*spec.split(":", 2), "", ""][:3]
    if not (team_id and key_id and path):
        raise argparse.ArgumentTypeError(f"expected TEAM_ID:KEY_ID:PEM_FILE, got {spec!r}")
    return team_id, key_id, Path(path)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The parser of every command; ``prog`` is how the user called it."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=prog,
        description="An Auth0 tenant and Apple's token endpoint on loopback over TLS, "
        "for trying rotator with no accounts. Without a command: serve.",
        epilog=_example(prog), formatter_class=raw,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="serve until Ctrl-C or SIGTERM (the default)",
        prog=prog if prog != PROG else None, epilog=_example(prog), formatter_class=raw,
        description=textwrap.fill(
            "Serve an emulator with a sample M2M client, a connection named 'apple' and an "
            "Apple team; print how to reach them; run until Ctrl-C or SIGTERM. "
            f"'{prog} apple-register --help' and 'apple-revoke --help' change its Apple keys "
            "while it runs.", 79),
    )
    serve.add_argument("--write-config", metavar="PATH",
                       help="also write a rotator configuration pointing at it, with its "
                       "secrets in files beside it (mode 0600, absolute paths), so "
                       "'rotator COMMAND --config PATH' works from any folder")
    serve.add_argument("--missing-scope", action="append", default=[], choices=DEFAULT_SCOPES,
                       metavar="SCOPE",
                       help="start with the M2M client lacking this Management API scope "
                       f"(repeatable; one of {', '.join(DEFAULT_SCOPES)})")
    serve.add_argument("--native-apple", action="store_true",
                       help="start with Auth0's native Apple connection (strategy apple) "
                       f"named 'apple', the custom one beside it named '{CUSTOM_BESIDE_NATIVE}'")
    serve.add_argument("--custom-domain", action="store_true",
                       help="start as a custom domain: token requests must name "
                       f"{CUSTOM_DOMAIN_AUDIENCE} (the fix: set auth0.audience to it)")
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


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Run one command; the exit code (0 done, 1 the emulator refused or was unreachable).

    Under another ``prog`` (``rotator emulator``), ``--help`` describes serve.
    """
    args_in = sys.argv[1:] if argv is None else argv
    own = (*COMMANDS, "-h", "--help") if prog == PROG else COMMANDS
    if not args_in or args_in[0] not in own:
        args_in = ["serve", *args_in]
    parser = build_parser(prog)
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
        print(f"{prog}: error: {exc}", file=sys.stderr)
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
    """``serve``: an emulator with sample state until Ctrl-C or SIGTERM (a second Ctrl-C
    stops it at once)."""
    config: Path | None = None
    if args.write_config:
        try:
            config = tryout.target(args.write_config, SAMPLE_KEY)
        except tryout.Refused as exc:
            parser.error(str(exc))
    with signals.caught() as caught:
        return _serve(parser, args, config, caught)


def _serve(parser: argparse.ArgumentParser, args: argparse.Namespace, config: Path | None,
           caught: signals.Caught) -> int:
    from rotator.emulator.loopback import Emulator
    from rotator.secret import generate_throwaway_key

    services_ids: list[str] = args.services_id or [SAMPLE_SERVICES_ID]
    audience = args.audience or (CUSTOM_DOMAIN_AUDIENCE if args.custom_domain else None)
    with tempfile.TemporaryDirectory(prefix="rotator-emulator-key-") as tmp:
        keys: list[tuple[str, str, Path]] = args.apple_key
        if not keys:
            where = tryout.key_file(config, SAMPLE_KEY) if config else Path(tmp) / \
                f"AuthKey_{SAMPLE_KEY}.p8"
            keys = [(SAMPLE_TEAM, SAMPLE_KEY, where)]
            generate_throwaway_key(keys[0][2])
        pems = [(team, kid, _public_pem(parser, path)) for team, kid, path in keys]
        with Emulator(port=args.port, audience=audience) as emu:
            client_id = "emulator-client"
            client_secret = (secrets.token_urlsafe(24) if args.client_auth == "client-secret"
                             else None)
            scopes = [s for s in DEFAULT_SCOPES if s not in args.missing_scope]
            emu.add_client(client_id, client_secret, scopes)
            signing_key = None
            if client_secret is None:
                signing_key = (config.parent / tryout.SIGNING_KEY_FILE if config
                               else Path(tmp) / "auth0_m2m_key.pem")
                emu.add_client_key(client_id, write_rsa_key(signing_key), args.client_alg)
            custom = CUSTOM_BESIDE_NATIVE if args.native_apple else "apple"
            conn = emu.add_connection(apple_connection(services_ids[0], name=custom))
            for team, kid, pem in pems:
                emu.apple_register_key(team, kid, pem)
                for services_id in services_ids:
                    emu.apple_add_services_id(team, services_id)
            _say("domain", emu.domain)
            _say("CA bundle", emu.ca_pem_path)
            _say("client id", client_id)
            if signing_key is not None:
                _say("signing key", f"{signing_key}  (Private Key JWT, {args.client_alg}; "
                     "throwaway, no client secret)")
            elif config is None:
                _say("client secret", f"{client_secret}  (throwaway, valid only here)")
            else:
                _say("client secret", f"in {config.parent / tryout.CLIENT_SECRET_FILE}")
            _say("scopes", " ".join(scopes) + _missing(args.missing_scope))
            _say("connection", f"{custom} ({conn['id']})")
            if args.native_apple:
                native = emu.add_connection(_native_apple())
                _say("native", f"apple ({native['id']}), strategy apple: rotator refuses it")
            custom_note = "  (a custom domain: set auth0.audience to this)" if audience else ""
            _say("audience", emu.audience + custom_note)
            _say("apple token", emu.apple_token_url)
            for team, kid, path in keys:
                throwaway = "" if args.apple_key else "  (throwaway)"
                _say("apple key", f"team {team}, key {kid}: {path}{throwaway}")
            _say("services ids", ", ".join(services_ids))
            _say("admin file", f"{emu.admin_file}  (for apple-register, apple-revoke)")
            if config is not None:
                tryout.write(config, tryout.TryoutTenant(
                    base_url=emu.base_url, domain=emu.domain, client_id=client_id,
                    client_secret=client_secret, signing_key=signing_key,
                    signing_alg=args.client_alg, ca_pem=emu.ca_pem, team_id=keys[0][0],
                    key_id=keys[0][1], key_file=keys[0][2].absolute(),
                    token_url=emu.apple_token_url, services_id=services_ids[0],
                    connection="apple", custom_audience=audience,
                ))
                _say("config", f"{config}  (secrets beside it, mode 0600)")
                print(f"Try, from any folder: rotator check-config --online --config {config}")
            print("Ctrl-C to stop.", flush=True)
            while not caught.stop.is_set():
                caught.wait(3600)
    return 0


def _missing(scopes: list[str]) -> str:
    return f"  (missing: {', '.join(scopes)})" if scopes else ""


def _native_apple() -> dict[str, object]:
    """Auth0's native Apple connection as the dashboard creates it: named apple."""
    return {"name": "apple", "display_name": "Apple", "strategy": "apple",
            "options": {"app_id": SAMPLE_SERVICES_ID, "team_id": SAMPLE_TEAM,
                        "kid": SAMPLE_KEY, "scope": "name email"}}


def write_rsa_key(path: Path, bits: int = 2048, key: Any = None) -> Any:
    """Write ``key``, or a fresh RSA private key, unencrypted (PKCS#8 PEM) to ``path``,
    mode 0600.

    Returns its public key, to register as the client's credential.
    """
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = key or rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key.public_key()


def _say(label: str, value: str) -> None:
    print(f"{label + ':':<15}{value}")
