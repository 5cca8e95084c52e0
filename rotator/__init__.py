"""rotator: keeps the Sign in with Apple client secret of an Auth0 connection fresh."""

__version__ = "0.1.0"
