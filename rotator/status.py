"""``rotator status``: what is live in each connection, read-only."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rotator import due
from rotator.config import Settings
from rotator.errors import RotatorError
from rotator.rotation import Auth0Side, expected, read_checked, side_of, tenants


@dataclass
class Row:
    """One connection's live secret, as the due rule sees it."""

    connection: str
    tenant: str
    kid: str | None = None
    sub: str | None = None
    issued_at: int | None = None
    expires_at: int | None = None
    days_left: float | None = None
    due_at: int | None = None
    due: bool | None = None
    reason: str | None = None
    why: str | None = None
    error: str | None = None

    @property
    def healthy(self) -> bool:
        """Readable and not expired."""
        return self.error is None and self.days_left is not None and self.days_left > 0


def collect(
    settings: Settings,
    *,
    now: Callable[[], float] = time.time,
    factory: Callable[[Any], Auth0Side] | None = None,
) -> list[Row]:
    """Read every connection and apply the due rule; write nothing."""
    rows = []
    with tenants(settings.connections, factory) as sides:
        for conn in settings.connections:
            side = side_of(conn, sides)
            row = Row(connection=conn.connection, tenant=side.name)
            try:
                found = read_checked(conn, side)
                instant = int(now())
                verdict = due.assess(
                    found.options.get("client_secret"), expected(conn), settings.schedule,
                    now=instant,
                )
                info = verdict.live
                if info is not None:
                    row.kid, row.sub, row.issued_at, row.expires_at = (
                        info.kid, info.sub, info.iat, info.exp,
                    )
                    if info.exp is not None:
                        row.days_left = round((info.exp - instant) / 86400, 2)
                row.due, row.reason, row.why = verdict.due, verdict.reason, verdict.explanation
                row.due_at = verdict.due_at
            except RotatorError as exc:
                row.error = str(exc)
            rows.append(row)
    return rows


def exit_code(rows: list[Row]) -> int:
    return 0 if all(row.healthy for row in rows) else 1


def to_json(rows: list[Row]) -> str:
    return json.dumps([asdict(row) for row in rows], indent=2)


def _when(epoch: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch)) if epoch is not None else "-"


def to_table(rows: list[Row]) -> str:
    """A table a person reads: one line per connection, then the reasons."""
    head = ("CONNECTION", "TENANT", "KID", "SUB", "ISSUED (UTC)", "EXPIRES (UTC)", "DAYS LEFT",
            "DUE AT (UTC)", "DUE")
    lines = [head]
    notes = []
    for row in rows:
        if row.error:
            lines.append((row.connection, row.tenant, "-", "-", "-", "-", "-", "-", "error"))
            notes.append(f"{row.connection}: {row.error}")
            continue
        lines.append((
            row.connection,
            row.tenant,
            row.kid or "-",
            row.sub or "-",
            _when(row.issued_at),
            _when(row.expires_at),
            f"{row.days_left:.1f}" if row.days_left is not None else "-",
            _when(row.due_at),
            "yes" if row.due else "no",
        ))
        notes.append(f"{row.connection}: {row.why}")
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    out = [
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    return "\n".join([*out, "", *notes])
