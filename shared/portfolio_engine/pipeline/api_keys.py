"""API keys of machine clients: created and revoked by an admin, shown once, stored as a digest.

A key reads ``spe_<id>_<secret>``: the id finds its record (``apikey/<id>``), the secret (32 random bytes) is
checked against the SHA-256 digest stored there. A salted slow hash is for passwords people choose; a 256-bit
random secret cannot be guessed, so one SHA-256 is what GitHub and Stripe use for their tokens too. The key
itself is returned once, by :func:`create_api_key`, and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Literal, get_args

from portfolio_engine.exceptions import ConfigurationError, InvalidTransitionError, RecordNotFoundError
from portfolio_engine.ports import Store
from portfolio_engine.records.events import NewEvent, apikey_stream, check_name

__all__ = ["ApiRole", "create_api_key", "list_api_keys", "revoke_api_key", "verify_api_key"]

ApiRole = Literal["viewer", "manager", "admin"]
PREFIX = "spe_"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(store: Store, *, name: str, role: str, created_by: str) -> tuple[str, dict[str, Any]]:
    """A new key for a machine client: the key (shown once) and its record (without the key).

    Raises
    ------
    ConfigurationError
        An unknown role or a name that is not a plain identifier.
    """
    try:
        check_name(name, "API key")
    except ValueError as exc:
        raise ConfigurationError(str(exc) + ".", hint="Name the client, e.g. risk-dashboard.") from exc
    if role not in get_args(ApiRole):
        raise ConfigurationError(f"Unknown role {role!r}.", hint=f"Use one of {', '.join(get_args(ApiRole))}.")
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    data = {"name": name, "role": role, "digest": _digest(secret), "created_by": created_by}
    store.append(apikey_stream(key_id), [NewEvent(type="ApiKeyCreated", data=data)], expected_version=0)
    return f"{PREFIX}{key_id}_{secret}", _public(store.view("apikey", key_id) or {})


def _public(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k != "digest"}


def list_api_keys(
    store: Store, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """The keys' records (never a key or its digest), newest first."""
    page = store.views("apikey", limit=limit, cursor=cursor, descending=True)
    return [_public(v) for v in page.items], page.cursor


def revoke_api_key(store: Store, key_id: str, *, by: str) -> dict[str, Any]:
    """Revoke a key: it stops authenticating at once; its record stays.

    Raises
    ------
    RecordNotFoundError
        No key of that id.
    InvalidTransitionError
        The key is already revoked.
    """
    view = store.view("apikey", key_id) if _valid_id(key_id) else None
    if view is None:
        raise RecordNotFoundError(f"No API key {key_id!r}.", hint="GET /api-keys lists the keys.")
    if view.get("revoked_at"):
        raise InvalidTransitionError(f"API key {key_id!r} was revoked at {view['revoked_at']}.")
    stream = apikey_stream(key_id)
    event = NewEvent(type="ApiKeyRevoked", data={"by": by})
    store.append(stream, [event], expected_version=store.stream_version(stream))
    return _public(store.view("apikey", key_id) or {})


def _valid_id(key_id: str) -> bool:
    return len(key_id) == 16 and all(c in "0123456789abcdef" for c in key_id)


def verify_api_key(store: Store, key: str) -> dict[str, Any] | None:
    """The record of a valid, unrevoked key, or None (malformed, unknown, wrong secret or revoked)."""
    if not key.startswith(PREFIX):
        return None
    key_id, _, secret = key.removeprefix(PREFIX).partition("_")
    if not _valid_id(key_id) or not secret:
        return None
    view = store.view("apikey", key_id)
    if view is None or view.get("revoked_at"):
        return None
    return _public(view) if hmac.compare_digest(view["digest"], _digest(secret)) else None
