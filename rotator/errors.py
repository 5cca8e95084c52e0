"""rotator's exceptions: one root, a child per thing that can fail.

The tree::

    RotatorError                 anything rotator reports as one line
    ├── ConfigError              a setting is wrong (exit 2, nothing contacted)
    │   └── AppleKeyError        the .p8 key cannot be used
    └── Auth0Error               talking to Auth0 failed
        ├── Auth0ReadError       fetching a token or reading a connection
        ├── RefusedError         the connection read fine but is unsafe to write
        ├── Auth0WriteError      the PATCH failed; the old secret stays
        └── VerificationError    the PATCH answered, but what is stored is wrong

A failing post-rotation hook is logged (``hook.failed``), never raised: the
rotation it follows stands.

Every message is written for an operator: what failed and what would fix it.
No message ever carries a secret, a key or a token. Code above the border
modules (``secret``, ``auth0``) only ever sees these classes; foreign
exceptions are translated where they are raised, ``from`` the original.
"""

from __future__ import annotations


class RotatorError(Exception):
    """Root of every error rotator reports as a plain line."""

    exit_code = 1


class ConfigError(RotatorError):
    """A setting, file or flag is invalid; nothing was contacted."""

    exit_code = 2


class AppleKeyError(ConfigError):
    """The Apple private key is missing, unreadable or of the wrong kind."""


class Auth0Error(RotatorError):
    """Talking to the Auth0 Management API failed."""


class Auth0ReadError(Auth0Error):
    """A token could not be fetched or a connection could not be read."""


class RefusedError(Auth0Error):
    """The connection is not one rotator may safely write."""


class Auth0WriteError(Auth0Error):
    """The write of the new secret failed; the old secret is still in place."""


class VerificationError(Auth0Error):
    """The write answered, but the stored connection is not what was sent."""
