"""rotator's exceptions: one root, a child per thing that can fail.

The tree::

    RotatorError                 anything rotator reports as one line
    ├── ConfigError              a setting, file or flag is wrong; nothing contacted
    │   └── AppleKeyError        the .p8 key cannot be used
    ├── Auth0Error               talking to Auth0 failed
    │   ├── TokenError           no access token (credentials, audience, network)
    │   ├── Auth0ReadError       reading a connection failed
    │   ├── RefusedError         the connection read fine but is unsafe to write
    │   ├── Auth0WriteError      the PATCH failed or its answer was lost
    │   └── VerificationError    what is stored is not what was sent
    ├── AppleError               asking Apple about a secret
    │   ├── AppleRefusedError    Apple answered invalid_client
    │   └── AppleUnreachableError  no usable answer within the retries
    └── DeadlineError            the run's deadline passed first

A failing hook is reported (``hook.failed``), never raised: the rotation it
follows stands. Which exit code an error means is decided in ``cli`` alone.

Every message is written for an operator: what failed and what would fix it.
No message ever carries a secret, a key or a token. Code above the border
modules (``secret``, ``net``, ``tokens``, ``auth0``, ``apple``) only ever sees
these classes; foreign exceptions are translated where they are raised.
"""

from __future__ import annotations


class RotatorError(Exception):
    """Root of every error rotator reports as a plain line."""


class ConfigError(RotatorError):
    """A setting, file or flag is invalid; nothing was contacted."""


class AppleKeyError(ConfigError):
    """The Apple private key is missing, unreadable or of the wrong kind."""


class Auth0Error(RotatorError):
    """Talking to the Auth0 Management API failed."""


class TokenError(Auth0Error):
    """No access token could be had from the tenant's /oauth/token."""


class Auth0ReadError(Auth0Error):
    """A connection could not be read."""


class RefusedError(Auth0Error):
    """The connection is not one rotator may safely write."""


class Auth0WriteError(Auth0Error):
    """The PATCH failed, or its answer was lost (it may or may not have landed)."""


class VerificationError(Auth0Error):
    """The stored connection is not what was written."""


class AppleError(RotatorError):
    """Apple did not accept a secret, or could not be asked."""


class AppleRefusedError(AppleError):
    """Apple answered invalid_client: it refuses the secret."""


class AppleUnreachableError(AppleError):
    """Apple gave no usable answer within the retries."""


class DeadlineError(RotatorError):
    """The run's deadline passed before this step could finish."""


def unexpected(exc: BaseException) -> str:
    """The one-line report of an error rotator does not know (details only at debug)."""
    return f"unexpected error: {type(exc).__name__}"
