"""API keys and OIDC tokens: what lets a caller in, what does not, and what the audit trail keeps of a refusal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from argus.api.auth import (
    KEY_PREFIX,
    ROLE_PERMISSIONS,
    AuthenticationError,
    Authenticator,
    OidcVerifier,
    Permission,
    PermissionDeniedError,
    Role,
    create_api_key,
    hash_secret,
    list_api_keys,
    parse_api_key,
    permission_matrix_markdown,
    revoke_api_key,
)
from argus.errors import ConfigError, InputError
from argus.store.sqlite import SqliteEventStore

ISS = "https://idp.example"
AUD = "argus-api"


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteEventStore(path=tmp_path / "events.sqlite")
    yield s
    s.close()


def audit_actions(store) -> list[str]:
    return [r.action for r in store.audit_records()]


# -- API keys ---------------------------------------------------------------------------------------------------


def test_created_key_authenticates_with_its_role_and_only_its_hash_is_stored(store) -> None:
    rec, key = create_api_key(store, name="vms", role="operator", actor="cli:alice")
    key_id, secret = parse_api_key(key)
    assert key.startswith(KEY_PREFIX) and key_id == rec.key_id
    stored = store.get_api_key(rec.key_id)
    assert stored.secret_sha256 == hash_secret(secret) and secret not in json.dumps(stored.to_doc())
    p = Authenticator(store).authenticate(f"Bearer {key}")
    assert (p.actor, p.role, p.via) == (f"key:{rec.key_id}", Role.operator, "api_key")
    created = [r for r in store.audit_records() if r.action == "key.create"]
    assert len(created) == 1 and created[0].actor == "cli:alice" and secret not in json.dumps(created[0].details)


def test_two_keys_differ_and_listing_shows_both(store) -> None:
    a, ka = create_api_key(store, name="a", role="analyst", actor="t")
    b, kb = create_api_key(store, name="b", role="auditor", actor="t")
    assert ka != kb and a.key_id != b.key_id
    assert [r.key_id for r in list_api_keys(store)] == [a.key_id, b.key_id]


def test_wrong_secret_is_refused_and_audited_without_the_secret(store) -> None:
    rec, _ = create_api_key(store, name="x", role="admin", actor="t")
    forged = f"{KEY_PREFIX}{rec.key_id}_{'A' * 43}"
    with pytest.raises(AuthenticationError, match="wrong secret"):
        Authenticator(store).authenticate(f"Bearer {forged}", client="10.0.0.9")
    failed = [r for r in store.audit_records() if r.action == "login.failed"]
    assert len(failed) == 1
    text = json.dumps(failed[0].details)
    assert failed[0].details["key_id"] == rec.key_id and "A" * 43 not in text and "10.0.0.9" in text


def test_unknown_key_id_is_refused(store) -> None:
    with pytest.raises(AuthenticationError):
        Authenticator(store).authenticate(f"Bearer {KEY_PREFIX}0123456789ab_secret")


def test_revoked_key_is_refused_on_its_next_request(store) -> None:
    rec, key = create_api_key(store, name="x", role="operator", actor="t")
    auth = Authenticator(store)
    auth.authenticate(f"Bearer {key}")
    revoke_api_key(store, rec.key_id, actor="cli:bob")
    with pytest.raises(AuthenticationError, match="revoked"):
        auth.authenticate(f"Bearer {key}")
    assert audit_actions(store)[-2:] == ["key.revoke", "login.failed"]


@pytest.mark.parametrize("header", [None, "", "Basic dXNlcjpwdw==", "Bearer", "Bearer argus_", "Bearer argus_zz_x",
                                    "Bearer argus_0123456789ab", "Bearer not-a-jwt"])
def test_malformed_credentials_are_refused(store, header) -> None:
    with pytest.raises(AuthenticationError):
        Authenticator(store).authenticate(header)


def test_no_credentials_is_not_audited_as_a_failed_login(store) -> None:
    with pytest.raises(AuthenticationError):
        Authenticator(store).authenticate(None)
    assert "login.failed" not in audit_actions(store)


def test_unknown_role_is_refused_at_creation(store) -> None:
    with pytest.raises(InputError, match="role"):
        create_api_key(store, name="x", role="root", actor="t")


# -- the permission table ---------------------------------------------------------------------------------------


def test_admin_has_every_permission_and_only_admin_manages_keys_and_erases() -> None:
    assert ROLE_PERMISSIONS[Role.admin] == frozenset(Permission)
    for perm in (Permission.keys_manage, Permission.persons_erase, Permission.persons_write,
                 Permission.watchlists_write):
        assert [r for r in Role if perm in ROLE_PERMISSIONS[r]] == [Role.admin]


def test_only_operator_and_admin_see_faces_and_only_auditor_and_admin_read_the_trail() -> None:
    assert {r for r in Role if Permission.alerts_crop in ROLE_PERMISSIONS[r]} == {Role.admin, Role.operator}
    assert {r for r in Role if Permission.audit_read in ROLE_PERMISSIONS[r]} == {Role.admin, Role.auditor}


def test_matrix_markdown_has_a_row_per_permission() -> None:
    md = permission_matrix_markdown()
    assert len(md.splitlines()) == 2 + len(Permission)
    assert "| `events.export` | yes | — | yes | — |" in md


# -- OIDC -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_file(tmp_path: Path, rsa_key) -> Path:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    p = tmp_path / "jwks.json"
    p.write_text(json.dumps({"keys": [jwk]}))
    return p


@pytest.fixture
def verifier(jwks_file: Path) -> OidcVerifier:
    return OidcVerifier(jwks=str(jwks_file), issuer=ISS, audience=AUD, leeway_s=0)


def claims(**over) -> dict:
    c = {"sub": "u-17", "iss": ISS, "aud": AUD, "exp": int(time.time()) + 300, "argus_role": "analyst"}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def sign(rsa_key, payload: dict, **headers) -> str:
    return jwt.encode(payload, rsa_key, algorithm="RS256", headers={"kid": "k1", **headers})


def test_valid_token_gives_its_subject_and_role(verifier, rsa_key) -> None:
    p = verifier.verify(sign(rsa_key, claims()))
    assert (p.actor, p.role, p.via) == ("oidc:u-17", Role.analyst, "oidc")


@pytest.mark.parametrize("over, why", [
    ({"exp": int(time.time()) - 10}, "expired"),
    ({"iss": "https://evil.example"}, "issuer"),
    ({"aud": "another-api"}, "audience"),
    ({"exp": None}, "invalid"),
    ({"aud": None}, "invalid"),
    ({"iss": None}, "invalid"),
])
def test_token_with_a_bad_or_missing_claim_is_refused(verifier, rsa_key, over, why) -> None:
    with pytest.raises(AuthenticationError, match=why):
        verifier.verify(sign(rsa_key, claims(**over)))


def test_alg_none_is_refused(verifier) -> None:
    token = jwt.encode(claims(), key=None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(AuthenticationError, match="alg"):
        verifier.verify(token)


def test_hs256_forged_with_the_public_key_is_refused(verifier, rsa_key) -> None:
    import base64
    import hashlib
    import hmac as _hmac

    pem = rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps(claims(argus_role="admin")).encode())
    sig = b64(_hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
    with pytest.raises(AuthenticationError, match="alg"):
        verifier.verify(f"{head}.{body}.{sig}")


def test_token_signed_by_another_key_is_refused(verifier) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(AuthenticationError, match="invalid"):
        verifier.verify(sign(other, claims()))


def test_es256_token_against_an_rsa_jwks_key_is_refused(verifier) -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "k1"})
    with pytest.raises(AuthenticationError, match="key type"):
        verifier.verify(token)


@pytest.mark.parametrize("role", [None, "root", ["admin", "operator"]])
def test_token_without_exactly_one_known_role_is_forbidden(verifier, rsa_key, role) -> None:
    with pytest.raises(PermissionDeniedError, match="role"):
        verifier.verify(sign(rsa_key, claims(argus_role=role) if role is not None else
                             {k: v for k, v in claims().items() if k != "argus_role"}))


def test_authenticator_routes_bearer_jwts_to_oidc_and_audits_their_failure(store, verifier, rsa_key) -> None:
    auth = Authenticator(store, oidc=verifier)
    assert auth.authenticate("Bearer " + sign(rsa_key, claims(argus_role="auditor"))).role is Role.auditor
    bad = sign(rsa_key, claims(aud="x"))
    with pytest.raises(AuthenticationError):
        auth.authenticate("Bearer " + bad)
    failed = [r for r in store.audit_records() if r.action == "login.failed"]
    assert len(failed) == 1 and failed[0].details["via"] == "oidc" and bad not in json.dumps(failed[0].details)


def test_oidc_without_issuer_or_audience_is_a_config_error(jwks_file) -> None:
    with pytest.raises(ConfigError, match="ISSUER"):
        OidcVerifier(jwks=str(jwks_file), issuer=None, audience=AUD)


def test_unreadable_jwks_file_is_a_config_error(tmp_path) -> None:
    (tmp_path / "j.json").write_text("{not json")
    with pytest.raises(ConfigError, match="JWKS"):
        OidcVerifier(jwks=str(tmp_path / "j.json"), issuer=ISS, audience=AUD)
