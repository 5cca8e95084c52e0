"""The ``rotator`` command: parse flags, load settings, call one command, exit.

Exit codes are decided here and only here, from one map (:data:`EXIT`): 0 done,
1 a connection (or hook, or check) failed, 2 bad configuration, key or usage
(nothing contacted), 130/143 interrupted by SIGINT/SIGTERM. Known errors become
one line on stderr; an unexpected one says so, with the traceback only at
``--log-level debug``. Heavy libraries are imported inside the command that
needs them, so ``--help`` and ``mint`` stay fast. ``python -m rotator`` and the
console script both enter through :func:`entry`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

from rotator import __version__
from rotator.errors import ConfigError, RotatorError, unexpected

if TYPE_CHECKING:
    from rotator import config
    from rotator.modes import Needs
    from rotator.outcome import InFlight, Report
    from rotator.settings import Settings

#: The one map from how a command ended to the process exit code.
EXIT = {"ok": 0, "failed": 1, "invalid": 2, "SIGINT": 130, "SIGTERM": 143}

DESCRIPTION = """\
Keep the "Sign in with Apple" client secret of an Auth0 custom social
connection fresh: mint a new ES256 secret before the live one expires, have
Apple accept it, and write it into the connection, keeping every other option
as it was."""

EXIT_CODES = """\
exit codes: 0 success, 1 a connection or hook failed (status: a secret is
expired, refused by Apple or inside --warn-within), 2 bad configuration or key
(nothing was contacted), 130/143 interrupted by SIGINT/SIGTERM."""


#: The flags every command but ``demo`` takes, accepted before or after the command.
COMMON = ("config", "connection", "log_format", "log_level", "secret_lifetime", "rotate_every",
          "check_every", "deadline")
#: Where a flag given before the command lands, before it is merged (see :func:`_merge`).
_BEFORE = "before_"


def _common(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
            prefix: str = "") -> None:
    def add(flag: str, **kwargs: object) -> None:
        dest = prefix + flag.lstrip("-").replace("-", "_")
        parser.add_argument(flag, dest=dest, **kwargs)  # type: ignore[arg-type]

    add("--config", metavar="PATH", help="TOML config file (else $ROTATOR_CONFIG)")
    add("--connection", metavar="[TENANT/]NAME", action="append", default=[],
        help="only this connection (its name or con_ id as configured) in every tenant, or "
             "in the tenant whose auth0.domain is TENANT; repeatable")
    add("--log-format", choices=("json", "console"),
        help="log lines as JSON or for people (default: JSON unless stderr is a terminal)")
    add("--log-level", choices=("debug", "info", "warning", "error"),
        help="least important log level shown (default: warning at a terminal, else info)")
    add("--secret-lifetime", metavar="DURATION",
        help="exp - iat of each minted secret, at most 15777000s (default 180d)")
    add("--rotate-every", metavar="DURATION",
        help="a secret older than this is due (default 30d)")
    add("--check-every", metavar="DURATION", help="how often `start` looks (default 1h)")
    add("--deadline", metavar="DURATION",
        help="the longest one run (or one check of `start`) may take (default 5m)")


def _merge(args: argparse.Namespace) -> argparse.Namespace:
    """Common flags given before the command count as if given after it.

    A flag given in both places: the one after the command wins (``--connection``
    adds up).
    """
    for name in COMMON:
        before = getattr(args, _BEFORE + name)
        delattr(args, _BEFORE + name)
        if name == "connection":
            args.connection = [*before, *getattr(args, "connection", [])]
        elif getattr(args, name, None) is None and before is not None:
            setattr(args, name, before)
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rotator", description=DESCRIPTION, epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rotator {__version__}")
    _common(parser.add_argument_group(
        "common options (accepted before or after the command)"), prefix=_BEFORE)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], str], summary: str,
            common: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=summary, description=summary, epilog=EXIT_CODES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        if common:
            _common(p)
        return p

    p = add("start", cmd_start,
            "run as a service: check every connection every check_every (and at start-up), "
            "rotate what is due, serve /healthz, /readyz and /metrics; stop on SIGTERM")
    p.add_argument("--listen", metavar="HOST:PORT", help="address for the HTTP endpoints")
    for name, func, summary in (
        ("run-once", cmd_run_once,
         "for cron: check every connection once, rotate what is due, exit"),
        ("run-now", cmd_run_now, "rotate every selected connection now, due or not"),
    ):
        p = add(name, func, summary)
        p.add_argument("--dry-run", action="store_true",
                       help="read, mint and ask Apple; report what would be written, write "
                            "nothing")
        p.add_argument("--metrics-file", metavar="PATH",
                       help="after the run, write its metrics there (node_exporter textfile "
                            "format, replaced atomically)")
    p = add("status", cmd_status,
            "read-only: each connection's live secret, expiry, whether it is due, and whether "
            "Apple accepts it")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--warn-within", metavar="DURATION",
                   help="also fail (exit 1) when a secret expires within this time")
    add("mint", cmd_mint, "print one fresh secret to stdout; contacts nothing")
    p = add("check-config", cmd_check_config,
            "validate configuration and key offline; --online also fetches a token, checks its "
            "scopes, reads each connection and asks Apple about its live secret and about one "
            "minted now (writes nothing)")
    p.add_argument("--online", action="store_true", help="also contact Auth0 and Apple "
                                                         "(read only)")
    p = add("demo", cmd_demo,
            "the whole flow on this machine with no accounts: a local Auth0 and Apple emulator, "
            "a throwaway Apple key, a rotation, the status", common=False)
    p.add_argument("--log-format", choices=("json", "console"), help=argparse.SUPPRESS)
    p.add_argument("--log-level", help=argparse.SUPPRESS)
    # Its flags belong to rotator.emulator's own command line (see main); listing
    # them here would import the emulator into every `rotator --help`.
    add("emulator", cmd_emulator,
        "serve the Auth0 and Apple emulator until Ctrl-C; --write-config PATH also writes a "
        "configuration pointing at it ('rotator emulator --help' for its flags)", common=False)
    return parser


def _overrides(args: argparse.Namespace) -> config.Overrides:
    """What the command line says, for the loader."""
    from rotator import config

    return config.Overrides(
        config=args.config, connections=tuple(args.connection),
        secret_lifetime=args.secret_lifetime, rotate_every=args.rotate_every,
        check_every=args.check_every, deadline=args.deadline,
        listen=getattr(args, "listen", None), log_format=args.log_format,
        log_level=args.log_level,
    )


def _settings(args: argparse.Namespace, needs: Needs | None = None,
              load: Callable[[], Settings] | None = None) -> Settings:
    """Load settings (with ``load`` when given), set up logging, log configuration warnings.

    ``needs`` defaults to everything. The run vocabulary is imported here, not at
    the top: ``rotator --help`` loads no dataclasses.
    """
    from rotator import config
    from rotator.modes import Needs

    needs = Needs.EVERYTHING if needs is None else needs

    settings = load() if load is not None else config.load(_overrides(args), needs=needs)
    if needs.auth0 or settings.warnings:
        from rotator import logs

        logs.configure(settings.log_format, settings.log_level)
        for warning in settings.warnings:
            logs.get().warning("config.warning", message=warning)
    return settings


def _ending(report: Report, interrupted: Sequence[str] = ()) -> str:
    if interrupted:
        return interrupted[0]
    return "ok" if report.succeeded else "failed"


def exit_code(report: Report, interrupted: Sequence[str] = ()) -> int:
    """The exit code of ``run-once``/``run-now`` for ``report`` (and the signals received)."""
    return EXIT[_ending(report, interrupted)]


def _rotate(args: argparse.Namespace, *, force: bool) -> str:
    from rotator import commands, signals
    from rotator.paths import resolve

    settings = _settings(args)
    metrics_file = resolve(args.metrics_file, None) if args.metrics_file else None
    if metrics_file is not None:
        commands.check_metrics_path(metrics_file)
    from rotator.modes import Mode
    from rotator.outcome import InFlight

    mode = Mode.rotating(force=force, dry_run=args.dry_run)
    in_flight = InFlight()
    with signals.caught(on_first_interrupt=_finishing(in_flight)) as caught:
        report = commands.rotate(settings, mode, stop=caught.stop, in_flight=in_flight)
    ending = _ending(report, caught.received)
    _print_results(settings, report, dry_run=args.dry_run)
    if metrics_file is not None:
        commands.write_metrics(metrics_file, report, ok=ending == "ok")
    return ending


def _finishing(in_flight: InFlight) -> Callable[[], None]:
    """What the first Ctrl-C at a terminal says: what is being finished, and how to stop now."""

    def say() -> None:
        if not sys.stderr.isatty():
            return  # cron, systemd: the log says what was abandoned
        busy = in_flight.describe()
        doing = (f"finishing {busy}: a rotation already writing completes, one not yet "
                 "writing stops before its write" if busy else "finishing up")
        sys.stderr.write(f"rotator: interrupted; {doing}. Press Ctrl-C again to stop at once.\n")
        sys.stderr.flush()

    return say


def _print_results(settings: Settings, report: Report, *, dry_run: bool) -> None:
    from rotator import results
    from rotator.settings import label, several_tenants

    several = several_tenants(settings.connections)
    names = [label(o.connection, o.tenant, several) for o in report.outcomes]
    print("\n".join(results.lines(report, names, dry_run=dry_run)), flush=True)


def cmd_run_once(args: argparse.Namespace) -> str:
    return _rotate(args, force=False)


def cmd_run_now(args: argparse.Namespace) -> str:
    return _rotate(args, force=True)


def cmd_status(args: argparse.Namespace) -> str:
    from rotator import commands, status
    from rotator.settings import MAXIMA, parse_duration

    warn = None
    if args.warn_within:
        warn = parse_duration(args.warn_within, "--warn-within", MAXIMA["warn_within"])
    from rotator.modes import Mode

    settings = _settings(args)
    report = commands.look(settings, Mode.check(warn_within=warn))
    print((status.to_json if args.json else status.to_table)(report))
    return _ending(report)


def cmd_mint(args: argparse.Namespace) -> str:
    from rotator.lazy_imports import defer_unused_imports

    defer_unused_imports()  # mint only: single-threaded, short-lived
    from rotator import commands
    from rotator.modes import Needs

    print(commands.mint(_settings(args, Needs.KEY)))
    return "ok"


def cmd_check_config(args: argparse.Namespace) -> str:
    from rotator import commands, lock
    from rotator.endpoints import listen_address

    settings = _settings(args)
    lock.prepared(settings.lock_dir)  # a run would refuse it
    listen_address(settings.listen)  # as `start` will: bindable here, not only well formed
    print("\n".join(commands.summary(settings)))
    if not args.online:
        return "ok"
    from rotator.modes import Mode

    lines, ok = commands.online_lines(commands.look(settings, Mode.online()))
    print("\n".join(lines))
    return "ok" if ok else "failed"


def cmd_start(args: argparse.Namespace) -> str:
    from rotator import commands, config
    from rotator.reload import Reloader

    overrides = _overrides(args)
    reloader = Reloader(lambda: config.load(overrides))
    if commands.start(_settings(args, load=reloader.load), reloader):
        return "ok"
    # The check still in flight runs in a thread the interpreter would join at
    # exit, for as long as Auth0 keeps it waiting. Leave now, as promised.
    import os

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT["ok"])


def cmd_demo(args: argparse.Namespace) -> str:
    from rotator import demo

    level = args.log_level or "warning"
    return "ok" if demo.main(log_format=args.log_format, log_level=level) else "failed"


def cmd_emulator(args: argparse.Namespace) -> str:
    """Bare ``rotator emulator``: serve (with flags, :func:`main` hands over before parsing)."""
    return _emulator([])


def _emulator(argv: Sequence[str]) -> str:
    from rotator.emulator import cli as emulator_cli

    code = emulator_cli.main(list(argv), prog="rotator emulator")
    return {0: "ok", 2: "invalid"}.get(code, "failed")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the one place that turns how it ended into an exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["emulator"]:
        # The emulator's own command line parses its flags (and prints its --help).
        return EXIT[_emulator(argv[1:])]
    args = _merge(build_parser().parse_args(argv))
    from rotator import coredumps

    coredumps.disable()  # before any command reads a secret
    try:
        ending: str = args.func(args)
    except ConfigError as exc:
        print(f"rotator: error: {exc}", file=sys.stderr)
        ending = "invalid"
    except RotatorError as exc:
        print(f"rotator: error: {_scrub(str(exc))}", file=sys.stderr)
        ending = "failed"
    except KeyboardInterrupt:
        print("rotator: interrupted", file=sys.stderr)
        ending = "SIGINT"
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        print(f"rotator: {unexpected(exc)}; run with --log-level debug for the traceback",
              file=sys.stderr)
        if getattr(args, "log_level", None) == "debug":
            _print_traceback()
        ending = "failed"
    return EXIT[ending]


def _scrub(text: str) -> str:
    from rotator import logs

    return logs.scrub(text)


def _print_traceback() -> None:
    import traceback

    from rotator import logs

    print(logs.scrub(traceback.format_exc(), logs.MAX_TRACEBACK), file=sys.stderr)


def entry(argv: Sequence[str] | None = None) -> NoReturn:
    """The console script and ``python -m rotator``: :func:`main`, then exit.

    ``rotator mint`` is a one-line, short-lived command; tearing the interpreter
    down (finalising every module) adds about a tenth to its run time, so after
    flushing its output it leaves with ``os._exit``. Every other command exits
    normally.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    code = main(args)
    if args[:1] == ["mint"]:
        import os

        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            code = code or EXIT["failed"]
        os._exit(code)
    sys.exit(code)
