"""Asking Apple whether it accepts a client secret, before anything relies on it.

Apple authenticates the client before it looks at the grant, so a secret can
be tested without a user: POST it to the token endpoint with an authorization
code that was never issued. A 400 answer with ``invalid_grant`` means Apple
accepted the secret (and then refused the made-up code); a 400 with
``invalid_client`` means it refused the secret. Anything else, whatever its
status or body (5xx, 429, a network error, another answer) is retried
within the run's deadline, and then counts as "could not ask" (``unknown``).
"""

from __future__ import annotations

import secrets as random

import httpx

from rotator import net
from rotator.deadline import Deadline
from rotator.errors import AppleUnreachableError, DeadlineError
from rotator.seams import AppleAnswer
from rotator.settings import Trust


class Apple:
    """Apple's token endpoint for one ``token_url``, asked over a verifying client."""

    def __init__(self, token_url: str, trust: Trust, deadline: Deadline) -> None:
        self.token_url = token_url
        self.holder = net.DeadlineHolder(deadline)
        self.http = net.client(trust, self.holder)

    def ask(self, secret: str, services_id: str) -> AppleAnswer:
        """``accepted``, ``refused``, or ``unknown`` when no usable answer came in time."""
        form = question(secret, services_id)
        deadline = self.holder.current()
        try:
            response = net.send(
                lambda timeout: self.http.post(self.token_url, data=form, timeout=timeout),
                deadline=deadline,
                url=self.token_url,
                setting="apple.token_url",
                what=f"asking Apple ({self.token_url})",
                error=AppleUnreachableError,
            )
        except (AppleUnreachableError, DeadlineError) as exc:
            return AppleAnswer("unknown", str(exc))
        return verdict(response)

    def close(self) -> None:
        self.http.close()


def question(secret: str, services_id: str) -> dict[str, str]:
    """The form POSTed to Apple's token endpoint to test ``secret`` for ``services_id``."""
    return {
        "client_id": services_id,
        "client_secret": secret,
        "grant_type": "authorization_code",
        # A code Apple never issued: only the client authentication is tested.
        "code": f"rotator-check-{random.token_hex(16)}",
    }


def verdict(response: httpx.Response) -> AppleAnswer:
    """Apple's answer to the made-up code, as a verdict on the secret.

    Only Apple's documented shape is a verdict: HTTP 400 with a JSON object
    whose ``error`` is ``invalid_grant`` (accepted) or ``invalid_client``
    (refused). Any other status, whatever its body says (a proxy's 200 page, a
    redirect, a 429 or 5xx echoing Apple's words), means Apple was not heard.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if response.status_code == 400 and error == "invalid_grant":
        return AppleAnswer("accepted", "invalid_grant (the secret authenticated the client)")
    if response.status_code == 400 and error == "invalid_client":
        return AppleAnswer("refused", "invalid_client")
    shown = error if isinstance(error, str) else "no Apple error code"
    return AppleAnswer("unknown", f"Apple answered {response.status_code} ({shown[:80]}); only "
                                  "a 400 carrying invalid_grant or invalid_client is a verdict")
