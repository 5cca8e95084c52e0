"""``rotator status``: what is live in each connection, for people and for machines.

The facts come from a read-only run (:mod:`rotator.runner`); this module only
presents them, as a table or as JSON; which connections are healthy is
:func:`rotator.outcome.trouble`'s to say.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Any

from rotator import logs
from rotator.outcome import Outcome, Report, trouble
from rotator.settings import label
from rotator.words import SWITCH_HINT, iso, minute


def days_left(outcome: Outcome, now: float) -> float | None:
    if outcome.exp is None:
        return None
    return round((outcome.exp - now) / 86400, 2)


def warned(outcome: Outcome, now: float) -> bool:
    """Whether the live secret expires within ``status --warn-within``."""
    within = outcome.mode.warn_within
    return within is not None and outcome.exp is not None and outcome.exp - now <= within


def apple_shown(outcome: Outcome) -> str:
    """Apple's verdict as shown: "no secret" when there was nothing to ask about."""
    if outcome.checked and not outcome.live and outcome.apple == "unknown":
        return "no secret"
    return outcome.apple


def to_json(report: Report) -> str:
    rows: list[dict[str, Any]] = []
    now = report.at
    for o in report.outcomes:
        rows.append({
            "connection": o.connection,
            "tenant": o.tenant,
            "kid": o.kid,
            "sub": o.sub,
            "issued_at": o.iat,
            "issued_at_utc": iso(o.iat),
            "expires_at": o.exp,
            "expires_at_utc": iso(o.exp),
            "days_left": days_left(o, now),
            "due_at": o.due_at,
            "due_at_utc": iso(o.due_at),
            "due": o.due,
            "reason": o.reason,
            "why": o.why,
            "apple": apple_shown(o).replace(" ", "_"),
            "apple_detail": logs.scrub(o.apple_detail, 300),
            "expires_within_warning": warned(o, now),
            "healthy": trouble(o, now) is None,
            "error": logs.scrub(o.error, 1000) if o.error else None,
        })
    return json.dumps(rows, indent=2)


_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text: str) -> str:
    """``text`` on one line: control and format characters escaped (``\\n``, ``\\x1b``)."""
    out = []
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            out.append(_ESCAPES.get(char) or char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def width(text: str) -> int:
    """Columns ``text`` takes at a terminal: wide characters 2, combining marks 0."""
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in ("W", "F") else 1 for c in text)


def _pad(text: str, columns: int) -> str:
    return text + " " * (columns - width(text))


def to_table(report: Report) -> str:
    """A table a person reads: one line per connection, then the reasons."""
    head = ("CONNECTION", "TENANT", "KID", "SUB", "ISSUED (UTC)", "EXPIRES (UTC)", "DAYS LEFT",
            "DUE AT (UTC)", "DUE", "APPLE")
    lines = [head]
    notes = []
    now = report.at
    several = len({o.tenant for o in report.outcomes}) > 1
    for o in report.outcomes:
        name = label(o.connection, o.tenant, several)
        if o.error:
            lines.append((o.connection, o.tenant, "-", "-", "-", "-", "-", "-", "error", "-"))
            notes.append(f"{name}: {logs.scrub(o.error, 1000)}")
            continue
        left = days_left(o, now)
        shown = f"{left:.1f}" if left is not None else "-"
        if warned(o, now):
            shown += " WARN"
        apple = apple_shown(o)
        lines.append((o.connection, o.tenant, o.kid or "-", o.sub or "-", minute(o.iat),
                      minute(o.exp), shown, minute(o.due_at), "yes" if o.due else "no", apple))
        notes.append(f"{name}: {o.why}")
        if apple == "off":
            notes.append(f"{name}: Apple was not asked (apple.check is off)")
        elif apple == "no secret":
            notes.append(f"{name}: no secret to show Apple; run-once or run-now publishes one")
        elif apple == "unknown":
            notes.append(f"{name}: Apple could not be asked: "
                         f"{logs.scrub(o.apple_detail, 300)}; {SWITCH_HINT}")
        elif apple != "accepted":
            notes.append(f"{name}: Apple {apple}: {logs.scrub(o.apple_detail, 300)}")
        if warned(o, now):
            notes.append(f"{name}: expires within the --warn-within window")
    cells = [[one_line(str(c)) for c in line] for line in lines]
    widths = [max(width(row[i]) for row in cells) for i in range(len(head))]
    out = ["  ".join(_pad(c, w) for c, w in zip(row, widths, strict=True)).rstrip()
           for row in cells]
    return "\n".join([*out, "", *(one_line(note) for note in notes)])
