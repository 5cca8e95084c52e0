"""Tests for rotator.auth0, the Auth0 border: pacing by rate-limit headers, the lock over the
secrets seen in answers, writing exactly the body intended, reading a connection by name or id."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from auth0_env import EmulatedTenant
from conftest import SERVICES_ID, named, run_cli

from rotator import logs
from rotator.auth0 import Pacer, Tenant
from rotator.client_auth import ClientSecret
from rotator.jsonvalue import same
from rotator.net import DeadlineHolder
from rotator.settings import Auth0Settings


def _response(remaining: int, reset: float, limit: int = 2) -> httpx.Response:
    return httpx.Response(200, headers={
        "x-ratelimit-limit": str(limit),
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(int(reset)),
    })


API = httpx.Request("GET", "https://t.example/api/v2/connections")
NOW = 1_700_000_000.0  # the pacer's clock, passed in


def test_pacer_does_not_wait_while_the_bucket_has_tokens() -> None:
    """With requests left in the bucket, the next one goes at once."""
    waits: list[float] = []
    pacer = Pacer(DeadlineHolder(), sleep=waits.append, clock=lambda: NOW)
    pacer.after(_response(remaining=1, reset=NOW + 1))
    pacer.before(API)
    assert waits == []


def test_pacer_waits_a_share_of_the_refill_when_the_bucket_is_empty() -> None:
    """An empty bucket: wait (reset - now) / limit, enough for one request, not the whole refill."""
    waits: list[float] = []
    pacer = Pacer(DeadlineHolder(), sleep=waits.append, clock=lambda: NOW)
    pacer.after(_response(remaining=0, reset=NOW + 2, limit=4))
    pacer.before(API)
    assert waits == [0.5]


def test_pacer_ignores_answers_without_rate_limit_headers_and_other_paths() -> None:
    """No headers, no pacing; the token endpoint is never paced."""
    waits: list[float] = []
    pacer = Pacer(DeadlineHolder(), sleep=waits.append, clock=lambda: NOW)
    pacer.after(httpx.Response(200))
    pacer.before(API)
    pacer.after(_response(remaining=0, reset=NOW + 5))
    pacer.before(httpx.Request("POST", "https://t.example/oauth/token"))
    assert waits == []


def test_pacer_waits_once_per_empty_answer() -> None:
    """After waiting, the next request does not wait again on the same stale answer."""
    waits: list[float] = []
    pacer = Pacer(DeadlineHolder(), sleep=waits.append, clock=lambda: NOW)
    pacer.after(_response(remaining=0, reset=NOW + 1))
    pacer.before(API)
    pacer.before(API)
    assert len(waits) == 1


def test_a_pacing_pause_of_more_than_a_second_is_logged_before_it_starts() -> None:
    """An empty bucket refilling in 10 s (limit 2): wait.started names the host and ~5 s."""
    from structlog.testing import capture_logs

    waits: list[float] = []
    pacer = Pacer(DeadlineHolder(), sleep=waits.append, clock=lambda: NOW)
    pacer.after(_response(remaining=0, reset=NOW + 10, limit=2))
    with capture_logs() as logged:
        pacer.before(API)
    [wait] = waits
    [event] = logged
    assert event["event"] == "wait.started"
    assert event["log_level"] == "warning"
    assert event["seconds"] == round(wait, 1)
    assert event["awaited"] == f"the rate limit of {API.url.host} before GET {API.url.path}"
    assert "x-ratelimit-remaining: 0" in event["because"]


class _OwnedSet(set[str]):
    """A set that refuses to be touched unless its owner's lock is held."""

    def __init__(self, lock: Any) -> None:
        super().__init__()
        self.lock = lock

    def add(self, value: str) -> None:
        assert self.lock.locked(), "added to without the tenant's lock"
        super().add(value)

    def __contains__(self, value: object) -> bool:
        assert self.lock.locked(), "read without the tenant's lock"
        return super().__contains__(value)


def test_secrets_seen_in_answers_are_kept_under_the_tenants_lock() -> None:
    """_seen (answers' secrets, touched from every request thread) is only used under _lock."""
    tenant = Tenant(Auth0Settings(domain="t.example", client_id="m2m", auth=ClientSecret("s" * 16)))
    tenant._seen = _OwnedSet(tenant._lock)
    answer = httpx.Response(200, content=b'{"options": {"client_secret": "live-secret-123"}}',
                            request=httpx.Request("GET", "https://t.example/api/v2/connections"))
    try:
        tenant._watch_secrets(answer)
        assert logs.scrub("live-secret-123") == logs.REDACTED
    finally:
        tenant.close()
    assert logs.scrub("live-secret-123") == "live-secret-123"


# -- exactly what was read ------------------------------------------------------

#: Option keys auth0-python's typed update would rename (to camelCase aliases).
ALIAS_LIKE: dict[str, Any] = {
    "use_oauth_spec_scope": True,
    "useOauthSpecScope": False,
    "password_policy": "good",
    "custom_scripts": {"login": "function () {}"},
    "thumbprints_sha_384": ["ab", "cd"],
    "enabled_database_customization": False,
    "enabledDatabaseCustomization": True,
    "validation": {"username": {"min": 1, "max": 15}, "secret_base_64_encoded": True},
    "typed": {"zero": 0, "false": False, "one": 1, "one_point_oh": 1.0, "true": True,
              "null": None, "list": [0, False, 1.0, None, True]},
}


def test_alias_like_keys_and_typed_values_are_sent_and_stored_exactly(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys the SDK would rename, nested ones and 0/false/1/1.0/true/null travel unchanged."""
    options = {"client_id": SERVICES_ID, **ALIAS_LIKE}
    conn = tenant.emu.add_connection({"name": "apple", "strategy": "oauth2",
                                      "display_name": "Apple", "options": options})
    code, _, err = run_cli("run-now", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 0, err
    [patch] = tenant.patches()
    sent = dict(patch.body["options"])
    new = sent.pop("client_secret")
    assert same(sent, options)
    stored = tenant.stored(conn["id"])["options"]
    assert stored["client_secret"] == new
    assert same({k: v for k, v in stored.items() if k != "client_secret"}, options)


def test_a_patch_body_other_than_the_one_intended_is_never_sent(tenant: EmulatedTenant) -> None:
    """The Auth0 client refuses to send a PATCH it was not asked for; nothing reaches Auth0."""
    from rotator.auth0 import Tenant as Auth0Tenant
    from rotator.client_auth import ClientSecret
    from rotator.deadline import Deadline
    from rotator.errors import Auth0WriteError
    from rotator.settings import Auth0Settings, Trust

    conn = tenant.add(client_secret=None)
    side = Auth0Tenant(Auth0Settings(domain=tenant.emu.domain, client_id=tenant.client_id,
                                     auth=ClientSecret(tenant.client_secret),
                                     trust=Trust(Path(tenant.emu.ca_pem_path))))
    side.serve(Deadline(30))
    try:
        with pytest.raises(Auth0WriteError, match="refused to send a PATCH"):
            side.http.patch(f"{tenant.emu.base_url}/api/v2/connections/{conn['id']}",
                            json={"options": {"client_id": SERVICES_ID}})
    finally:
        side.close()
    assert tenant.patches() == []


# -- reading a connection by name or by id -----------------------------------------------------


def test_connection_can_be_named_by_id(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A con_ id in `connection` reads the connection by id and rotates it."""
    conn = tenant.add(client_secret=None)
    config = tenant.write_config([(conn["id"], SERVICES_ID)])
    code, _, err = run_cli("run-once", "--config", str(config), capsys=capsys)
    assert code == 0, err
    assert any(r.path == f"/api/v2/connections/{conn['id']}" and r.method == "GET"
               for r in tenant.emu.journal)
    assert "client_secret" in tenant.stored(conn["id"])["options"]


def test_missing_connection_fails_clearly(
    tenant: EmulatedTenant, capsys: pytest.CaptureFixture[str]
) -> None:
    """A connection name that does not exist fails that connection with a clear message."""
    code, _, err = run_cli("run-once", "--config", str(tenant.write_config()), capsys=capsys)
    assert code == 1
    [failed] = named(err, "rotation.failed")
    assert "no connection named 'apple'" in failed["error"]
