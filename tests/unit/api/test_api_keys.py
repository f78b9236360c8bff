"""API keys on every store backend: shown once, stored as a digest, verified, revoked once."""

from __future__ import annotations

import pytest

from portfolio_engine.exceptions import ConfigurationError, InvalidTransitionError, RecordNotFoundError
from portfolio_engine.pipeline.api_keys import create_api_key, list_api_keys, revoke_api_key, verify_api_key
from portfolio_engine.ports import Store


def test_a_new_key_is_shown_once_and_its_record_has_no_digest(store: Store) -> None:
    # When an admin creates a key
    key, record = create_api_key(store, name="risk-dashboard", role="viewer", created_by="alice")
    # Then the key reads spe_<id>_<secret> and the record names it without any secret
    assert key.startswith(f"spe_{record['id']}_")
    assert len(record["id"]) == 16
    assert {k: record[k] for k in ("name", "role", "created_by", "revoked_at")} == {
        "name": "risk-dashboard",
        "role": "viewer",
        "created_by": "alice",
        "revoked_at": None,
    }
    assert "digest" not in record and key not in str(record)
    secret = key.rsplit("_", 1)[1]
    assert secret not in str(store.view("apikey", record["id"]))  # only its digest is stored
    # And it is listed without its digest
    items, _ = list_api_keys(store)
    assert [i["id"] for i in items] == [record["id"]] and "digest" not in items[0]


def test_a_key_verifies_to_its_record(store: Store) -> None:
    key, record = create_api_key(store, name="ci", role="manager", created_by="alice")
    assert verify_api_key(store, key) == record


def test_wrong_malformed_unknown_and_revoked_keys_do_not_verify(store: Store) -> None:
    # Given two keys, one of them revoked
    key, _ = create_api_key(store, name="ci", role="admin", created_by="alice")
    revoked, revoked_record = create_api_key(store, name="old", role="admin", created_by="alice")
    revoke_api_key(store, revoked_record["id"], by="alice")
    _prefix, key_id, secret = key.split("_", 2)
    # Then only the intact, unrevoked key verifies
    assert verify_api_key(store, key) is not None
    for bad in (
        f"spe_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}",  # wrong secret
        f"spe_{key_id}_",  # no secret
        f"spe_{key_id}",
        f"xyz_{key_id}_{secret}",  # wrong prefix
        f"spe_{key_id.upper()}_{secret}",  # not a hex id
        f"spe_{'0' * 16}_{secret}",  # unknown id
        f"spe_{key_id[:-1]}_{secret}",
        "",
        revoked,
    ):
        assert verify_api_key(store, bad) is None, bad


def test_a_key_is_revoked_once(store: Store) -> None:
    key, record = create_api_key(store, name="ci", role="viewer", created_by="alice")
    revoked = revoke_api_key(store, record["id"], by="bob")
    assert revoked["revoked_by"] == "bob" and revoked["revoked_at"] and "digest" not in revoked
    assert verify_api_key(store, key) is None
    with pytest.raises(InvalidTransitionError, match="was revoked"):
        revoke_api_key(store, record["id"], by="bob")


def test_revoking_an_unknown_key_is_not_found(store: Store) -> None:
    for key_id in ("0" * 16, "not-a-key-id", "../apikey"):
        with pytest.raises(RecordNotFoundError, match="No API key"):
            revoke_api_key(store, key_id, by="alice")


def test_a_bad_role_or_name_is_a_configuration_error(store: Store) -> None:
    with pytest.raises(ConfigurationError, match="Unknown role 'superuser'"):
        create_api_key(store, name="ci", role="superuser", created_by="alice")
    for name in ("", "bad name/1", "-x", "x" * 65):
        with pytest.raises(ConfigurationError, match=r"e\.g\. risk-dashboard"):
            create_api_key(store, name=name, role="viewer", created_by="alice")
    assert list_api_keys(store)[0] == []
