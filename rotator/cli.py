"""The ``rotator`` command: parse flags, load settings, call one function, exit.

Exit codes are decided here and only here: 0 done, 1 a connection (or check)
failed, 2 bad configuration, key or usage (nothing contacted). Known errors
become one line on stderr; an unexpected one says so, with the traceback only
at ``--log-level debug``. Heavy libraries are imported inside the command that
needs them, so ``--help`` and ``mint`` stay fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from rotator import __version__
from rotator.errors import RotatorError

DESCRIPTION = """\
Keep the "Sign in with Apple" client secret of an Auth0 custom social
connection fresh: mint a new ES256 secret before the live one expires and write
it into the connection, keeping every other option as it was."""

EXIT_CODES = """\
exit codes: 0 success, 1 a connection failed (or is expired, for status),
2 bad configuration or key (nothing was contacted)."""


def _common(parser: argparse.ArgumentParser, *, connections: bool = True) -> None:
    parser.add_argument("--config", metavar="PATH", help="TOML config file (else $ROTATOR_CONFIG)")
    if connections:
        parser.add_argument(
            "--connection",
            metavar="NAME",
            action="append",
            default=[],
            help="only this connection (name or con_ id as configured); repeatable",
        )
    parser.add_argument(
        "--log-format", choices=("json", "console"),
        help="log lines as JSON or for people (default: JSON unless stderr is a terminal)",
    )
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), default="info",
        help="least important log level shown (default: info)",
    )


def _schedule_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--secret-lifetime", metavar="DURATION",
                        help="exp - iat of each minted secret, at most 15777000s (default 180d)")
    parser.add_argument("--rotate-every", metavar="DURATION",
                        help="a secret older than this is due (default 30d)")
    parser.add_argument("--check-every", metavar="DURATION",
                        help="how often `start` looks (default 1h)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rotator", description=DESCRIPTION, epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rotator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], summary: str,
            **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=summary, description=summary, epilog=EXIT_CODES,
                           formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
        p.set_defaults(func=func)
        return p

    p = add("start", cmd_start,
            "run as a service: check every connection every check_every (and at start-up), "
            "rotate what is due, serve /healthz, /readyz and /metrics; stop on SIGTERM")
    _common(p)
    _schedule_flags(p)
    p.add_argument("--listen", metavar="HOST:PORT", help="address for the HTTP endpoints")

    for name, func, summary in (
        ("run-once", cmd_run_once,
         "for cron: check every connection once, rotate what is due, exit"),
        ("run-now", cmd_run_now, "rotate every selected connection now, due or not"),
    ):
        p = add(name, func, summary)
        _common(p)
        _schedule_flags(p)
        p.add_argument("--dry-run", action="store_true",
                       help="read and mint, report what would be written, write nothing")

    p = add("status", cmd_status,
            "read-only: each connection's live secret, expiry, and whether it is due")
    _common(p)
    _schedule_flags(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = add("mint", cmd_mint, "print one fresh secret to stdout; contacts nothing")
    _common(p)
    _schedule_flags(p)

    p = add("check-config", cmd_check_config,
            "validate configuration and key offline; --online also fetches a token and reads "
            "each connection (writes nothing)")
    _common(p)
    _schedule_flags(p)
    p.add_argument("--online", action="store_true", help="also contact Auth0 (read only)")

    p = add("demo", cmd_demo,
            "the whole flow on this machine with no accounts: a local Auth0 emulator, a "
            "throwaway Apple key, a rotation, the status")
    p.add_argument("--log-format", choices=("json", "console"), help=argparse.SUPPRESS)
    p.add_argument("--log-level", default="warning", help=argparse.SUPPRESS)
    return parser


def _overrides(args: argparse.Namespace) -> Any:
    from rotator.config import Overrides

    return Overrides(
        config=getattr(args, "config", None),
        connections=tuple(getattr(args, "connection", ()) or ()),
        secret_lifetime=getattr(args, "secret_lifetime", None),
        rotate_every=getattr(args, "rotate_every", None),
        check_every=getattr(args, "check_every", None),
        listen=getattr(args, "listen", None),
        log_format=getattr(args, "log_format", None),
        log_level=getattr(args, "log_level", None),
    )


def _settings(args: argparse.Namespace, **kw: Any) -> Any:
    """Load settings, set up logging, and log any configuration warnings."""
    from rotator.startup import defer_unused_imports

    defer_unused_imports()
    from rotator import config

    settings = config.load(_overrides(args), **kw)
    if settings.warnings:
        _configure_logs(settings.log_format, settings.log_level)
        from rotator import logs

        for warning in settings.warnings:
            logs.get().warning("config.warning", message=warning)
    return settings


def _configure_logs(fmt: str | None, level: str) -> None:
    from rotator import logs

    logs.configure(fmt, level)


def _service_settings(args: argparse.Namespace) -> Any:
    settings = _settings(args)
    _configure_logs(settings.log_format, settings.log_level)
    from rotator import logs

    for conn in settings.connections:
        assert conn.auth0 is not None
        logs.redact(conn.auth0.client_secret)
    return settings


def _run(args: argparse.Namespace, *, force: bool) -> int:
    from rotator import hooks, rotation

    settings = _service_settings(args)
    hooks.validate(settings.post_rotate)
    hook = (
        hooks.Hook(settings.post_rotate, settings.hook_timeout)
        if settings.post_rotate and not args.dry_run else None
    )
    report = rotation.run(settings, force=force, dry_run=args.dry_run, on_rotated=hook)
    return report.exit_code


def cmd_run_once(args: argparse.Namespace) -> int:
    return _run(args, force=False)


def cmd_run_now(args: argparse.Namespace) -> int:
    return _run(args, force=True)


def cmd_status(args: argparse.Namespace) -> int:
    from rotator import status

    settings = _service_settings(args)
    rows = status.collect(settings)
    print(status.to_json(rows) if args.json else status.to_table(rows))
    return status.exit_code(rows)


def cmd_mint(args: argparse.Namespace) -> int:
    import time

    settings = _settings(args, need_auth0=False, need_connection_name=False)
    from rotator import secret
    from rotator.errors import ConfigError

    if len(settings.connections) != 1:
        names = ", ".join(c.connection or c.client_id for c in settings.connections)
        raise ConfigError(
            f"mint prints one secret but {len(settings.connections)} connections are configured "
            f"({names}); choose one with --connection"
        )
    conn = settings.connections[0]
    print(secret.mint(
        conn.apple.key,
        team_id=conn.apple.team_id,
        key_id=conn.apple.key_id,
        services_id=conn.client_id,
        lifetime=settings.schedule.secret_lifetime,
        now=int(time.time()),
    ))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from rotator.config import format_duration

    settings = _settings(args)
    s = settings.schedule
    tenants = sorted({c.tenant for c in settings.connections})
    print(
        f"configuration OK: {len(settings.connections)} connection(s) on "
        f"{len(tenants)} tenant(s); secret_lifetime {format_duration(s.secret_lifetime)}, "
        f"rotate_every {format_duration(s.rotate_every)}, check_every "
        f"{format_duration(s.check_every)}"
    )
    for conn in settings.connections:
        print(f"  {conn.connection} on {conn.tenant}: Services ID {conn.client_id}, "
              f"team {conn.apple.team_id}, key {conn.apple.key_id}")
    if not args.online:
        return 0
    _configure_logs(settings.log_format, settings.log_level)
    from rotator import status

    rows = status.collect(settings)
    failed = [row for row in rows if row.error]
    for row in rows:
        state = f"FAILED: {row.error}" if row.error else "readable, writable options present"
        print(f"  online: {row.connection} on {row.tenant}: {state}")
    return 1 if failed else 0


def cmd_start(args: argparse.Namespace) -> int:
    from rotator import service

    settings = _service_settings(args)
    return service.serve(settings)


def cmd_demo(args: argparse.Namespace) -> int:
    from rotator import demo

    return demo.main(log_format=args.log_format, log_level=args.log_level)


def entry() -> None:
    """The console script: :func:`main`, then exit.

    ``rotator mint`` is a one-line, short-lived command; tearing the interpreter
    down (finalising some 200 modules) adds about a tenth to its run time, so
    after flushing its output it leaves with ``os._exit``. Every other command
    exits normally.
    """
    code = main()
    if sys.argv[1:2] == ["mint"]:
        import os

        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            code = code or 1
        os._exit(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: the one place that turns errors into exit codes."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "log_level", None) == "debug"
    try:
        code: int = args.func(args)
        return code
    except RotatorError as exc:
        print(f"rotator: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("rotator: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        print(
            f"rotator: unexpected error ({type(exc).__name__}); "
            "run with --log-level debug for the traceback",
            file=sys.stderr,
        )
        if debug:
            import traceback

            traceback.print_exc()
        return 1
