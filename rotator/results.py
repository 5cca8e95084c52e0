"""What ``run-once`` and ``run-now`` print on stdout: a line per connection, then a count.

For people reading a terminal or a cron mail; the log (stderr) carries the
details for machines. Each line says what happened to one connection in words:
rotated (the new expiry and Apple's verdict), not due (when it falls due),
failed (the step and the reason), a dry run (what would be written), or
stopped before its write.
"""

from __future__ import annotations

from collections.abc import Sequence

from rotator import logs, words
from rotator.outcome import Outcome, Report, trouble

_APPLE_NEW = {
    "accepted": "Apple accepted it",
    "off": "Apple not asked (apple.check is off)",
}
_APPLE_LIVE = {
    "accepted": "Apple accepts the live secret",
    "off": "Apple not asked (apple.check is off)",
}


def iso(epoch: int | None) -> str:
    """ISO 8601 UTC ("2027-05-31T12:00:00Z"), or "-" when unknown."""
    return words.iso(epoch) or "-"


def _in(epoch: int, now: float) -> str:
    days = (epoch - now) / 86400
    if days >= 1:
        return f"in {days:.0f} days"
    if days > 0:
        return f"in {max(1, round(days * 24))} hours"
    return "now"


def line(outcome: Outcome, name: str, now: float) -> str:
    """One connection's line; ``name`` is how it is shown (with its tenant when several)."""
    o = outcome
    if o.abandoned:
        return f"{name}: stopped before its write (interrupted); nothing was written"
    if o.error is not None:
        return f"{name}: FAILED at {o.step}: {logs.scrub(o.error, 1000)}"
    if (wrong := trouble(o, now)) is not None:
        return f"{name}: FAILED: {wrong}"
    because = "run-now replaces it, due or not" if o.forced else (o.why or "due")
    if o.planned is not None:
        p = o.planned
        apple = _APPLE_NEW.get(o.apple, f"Apple {o.apple}")
        return (f"{name}: dry run ({because}): would write a new client_secret (kid {p.kid}, "
                f"sub {p.sub}, "
                f"issued {iso(p.iat)}, expires {iso(p.exp)}, fingerprint {p.fingerprint}) "
                f"and keep the other {p.options_kept} options; {apple}; nothing was written")
    if o.rotated:
        apple = _APPLE_NEW.get(o.apple, f"Apple {o.apple}")
        text = (f"{name}: rotated ({because}); the new secret expires {iso(o.exp)}"
                f"{f' ({_in(o.exp, now)})' if o.exp else ''}; {apple}")
        if o.hook_failed:
            text += "; the post-rotate hook FAILED (see the log)"
        return text
    apple = _APPLE_LIVE.get(o.apple, f"Apple {o.apple}")
    due = f"falls due {iso(o.due_at)}" + (f" ({_in(o.due_at, now)})" if o.due_at else "")
    return f"{name}: not due; {due}, expires {iso(o.exp)}; {apple}"


def closing(report: Report, *, dry_run: bool = False) -> str:
    """The count under the lines: "3 connections: 1 rotated, 1 not due, 1 failed".

    Failed is what the health predicate (:func:`~rotator.outcome.trouble`) says,
    as for the exit code: 0 failed and no hook failed is exit 0.
    """
    outcomes, now = report.outcomes, report.at
    healthy = [o for o in outcomes if trouble(o, now) is None]
    written = sum(o.rotated or o.planned is not None for o in healthy)
    counts = {
        "would be rotated" if dry_run else "rotated": written,
        "not due": len(healthy) - written,
        "failed": sum(trouble(o, now) is not None and not o.abandoned for o in outcomes),
        "interrupted": sum(o.abandoned for o in outcomes),
        "post-rotate hook failed": sum(o.hook_failed for o in outcomes),
    }
    n = len(outcomes)
    shown = [f"{count} {what}" for what, count in counts.items()
             if count or what in ("rotated", "would be rotated", "failed")]
    return f"{n} connection{'s' if n != 1 else ''}: {', '.join(shown)}"


def lines(report: Report, names: Sequence[str], *, dry_run: bool = False) -> list[str]:
    """Every line ``run-once``/``run-now`` prints, the count last."""
    return [*(line(o, n, report.at) for o, n in zip(report.outcomes, names, strict=True)),
            closing(report, dry_run=dry_run)]
