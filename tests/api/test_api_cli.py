"""``argus api-key create|list|revoke``: the key is printed once, never listed, and each change is audited."""

from __future__ import annotations

import json

import pytest

from argus.api.auth import AuthenticationError, Authenticator
from argus.cli import main
from argus.store.sqlite import SqliteEventStore


def test_api_key_create_list_revoke_through_the_cli(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ARGUS_DATA_DIR", str(tmp_path))
    assert main(["api-key", "create", "--role", "analyst", "--name", "psim", "--actor", "alice"]) == 0
    out = capsys.readouterr().out.splitlines()
    made = json.loads(out[0])
    key = out[1].rsplit(" ", 1)[1]
    assert made["role"] == "analyst" and key.startswith(f"argus_{made['key_id']}_")

    assert main(["api-key", "list", "--actor", "alice"]) == 0
    listed = capsys.readouterr().out
    assert made["key_id"] in listed and key.split("_", 2)[2] not in listed

    store = SqliteEventStore(path=tmp_path / "events.sqlite")
    try:
        assert Authenticator(store).authenticate(f"Bearer {key}").actor == f"key:{made['key_id']}"
        assert main(["api-key", "revoke", made["key_id"], "--actor", "bob"]) == 0
        with pytest.raises(AuthenticationError, match="revoked"):
            Authenticator(store).authenticate(f"Bearer {key}")
        trail = [(r.action, r.actor) for r in store.audit_records() if r.action.startswith("key.")]
        assert trail == [("key.create", "alice"), ("key.revoke", "bob")]
    finally:
        store.close()


def test_revoking_an_unknown_key_fails_with_a_message(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ARGUS_DATA_DIR", str(tmp_path))
    assert main(["api-key", "revoke", "0123456789ab", "--actor", "bob"]) == 1
    assert "0123456789ab" in capsys.readouterr().err
