"""What rotator says to people: times, and Apple's verdict as a sentence.

Shared by the logic (the check, the rotation steps), the reporters (status,
hooks) and the border with Apple, so each says a thing the same way. This
module imports no network library: the rotation steps use it and stay free of
httpx (the import-probe test proves it).
"""

from __future__ import annotations

import time

from rotator.seams import AppleAnswer

#: What a refusal most often means, for the message an operator reads.
LIKELY_CAUSES = (
    "a wrong apple.team_id, a wrong apple.key_id (or the two swapped), a key Apple has "
    "revoked, a Services ID (client_id) not set up for Sign in with Apple in that team, "
    "or a host clock far off"
)
SWITCH_HINT = (
    "if this host has no route to Apple, set apple.check = false (APPLE_CHECK=false) to "
    "publish secrets without asking"
)


def iso(epoch: int | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC, for logs and JSON."""
    if epoch is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def minute(epoch: int | None) -> str:
    """Epoch seconds as a UTC date and minute, for tables people read; "-" when unknown."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(epoch)) if epoch is not None else "-"


def apple_problem(answer: AppleAnswer, which: str, services_id: str,
                  evidence: str = "") -> str | None:
    """What is wrong when Apple refused ``which`` secret or could not be asked; else None.

    ``which`` is "live", "new", or a phrase of its own ("a secret minted now");
    ``evidence`` is what rotator knows of the cause, said in place of the likely ones.
    """
    what = f"the {which} secret" if which in ("live", "new") else which
    if answer.verdict == "refused":
        return (f"Apple refuses {what} for {services_id} (invalid_client); "
                + (evidence or f"likely causes: {LIKELY_CAUSES}"))
    if answer.verdict == "unknown":
        return f"could not ask Apple about {what}: {answer.detail}; {SWITCH_HINT}"
    return None
