"""A custom social connection for Apple as teams set it up in Auth0: the one sample.

``rotator demo``, ``python -m rotator.emulator``, the benchmarks and the tests
all start from it, so "a realistic connection" means the same thing everywhere.
Its options include keys rotator never heard of (scripts, headers, nested
tables): every one must survive a rotation.
"""

from __future__ import annotations

from typing import Any

FETCH_USER_PROFILE = (
    "function(accessToken, ctx, cb) {\n"
    "  const claims = JSON.parse(Buffer.from(ctx.id_token.split('.')[1], 'base64'));\n"
    "  cb(null, { user_id: claims.sub, email: claims.email });\n}"
)


def apple_options(services_id: str, client_secret: str | None = None) -> dict[str, Any]:
    """The connection's options; no ``client_secret`` key when it is None."""
    options: dict[str, Any] = {
        "client_id": services_id,
        "authorizationURL": "https://appleid.apple.com/auth/authorize",
        "tokenURL": "https://appleid.apple.com/auth/token",
        "scope": "name email",
        "scripts": {"fetchUserProfile": FETCH_USER_PROFILE},
        "customHeaders": {"X-Requested-By": "auth0"},
        "upstream_params": {"response_mode": {"value": "form_post"}},
        "set_user_root_attributes": "on_each_login",
        "non_persistent_attrs": ["ethnicity", "gender"],
        "icon_url": "https://example.com/apple.png",
    }
    if client_secret is not None:
        options["client_secret"] = client_secret
    return options


def apple_connection(
    services_id: str, client_secret: str | None = None, *, name: str = "apple",
    display_name: str = "Sign in with Apple",
) -> dict[str, Any]:
    """The whole connection, for :meth:`rotator.emulator.Emulator.add_connection`."""
    return {
        "name": name,
        "display_name": display_name,
        "strategy": "oauth2",
        "enabled_clients": ["sampleAppClientId0000000000000001"],
        "options": apple_options(services_id, client_secret),
    }
