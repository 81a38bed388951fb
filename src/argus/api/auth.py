"""Who is calling and what they may do: roles, the one permission table, API keys and OIDC bearer tokens.

Two ways in, both as ``Authorization: Bearer ...``:

* **API keys** for integrations (a VMS/PSIM, scripts): ``argus_<key_id>_<secret>``. Only ``sha256(secret)`` is
  stored, so a copy of the database does not let anybody in; the secret is compared in constant time and a
  revoked key is refused on its next request (keys are looked up per request, never cached).
* **OIDC** for people: a JWT signed by the site's identity provider, verified against its JWKS (a file or an https
  URL). Only RS256/ES256 are accepted (never ``none``, never HMAC — an HS256 token "signed" with the public key
  would otherwise verify), and ``exp``, ``iss`` and ``aud`` are required, not merely checked when present.

A failed login is appended to the audit trail (action ``login.failed``) with the reason and, for a key, its id —
never the secret or the token.

Permission matrix (``ROLE_PERMISSIONS`` is the only definition; the README's table is printed from it):

* admin — everything, including managing keys and erasure.
* operator — the people on watch who triage alerts: read persons, watch-lists, cameras, alerts and events, view
  crops and enrolled photos, triage. They do not change the watch-list (an admin's decision with a legal basis).
* analyst — statistics and history: read alerts, events, cameras and watch-lists, export events. No crops or
  enrolled photos and no person records: an analyst works on what happened, not on faces.
* auditor — the audit trail, plus the metadata needed to read it (watch-lists with their legal basis, cameras).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import jwt

from argus.errors import ArgusError, ConfigError, InputError

if TYPE_CHECKING:
    from argus.store.base import ApiKeyRecord

log = logging.getLogger(__name__)

__all__ = [
    "ALLOWED_JWT_ALGORITHMS",
    "KEY_PREFIX",
    "ROLE_PERMISSIONS",
    "AuthenticationError",
    "Authenticator",
    "OidcVerifier",
    "Permission",
    "PermissionDeniedError",
    "Principal",
    "Role",
    "create_api_key",
    "hash_secret",
    "list_api_keys",
    "parse_api_key",
    "permission_matrix_markdown",
    "require",
    "revoke_api_key",
]


class Role(StrEnum):
    admin = "admin"
    operator = "operator"
    analyst = "analyst"
    auditor = "auditor"


class Permission(StrEnum):
    persons_read = "persons.read"
    persons_write = "persons.write"
    persons_erase = "persons.erase"
    watchlists_read = "watchlists.read"
    watchlists_write = "watchlists.write"
    cameras_read = "cameras.read"
    alerts_read = "alerts.read"
    alerts_triage = "alerts.triage"
    alerts_crop = "alerts.crop"
    events_read = "events.read"
    events_export = "events.export"
    audit_read = "audit.read"
    keys_manage = "keys.manage"


P = Permission
#: THE permission table. Everything that decides "may this role do that" reads this mapping.
ROLE_PERMISSIONS: Mapping[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.operator: frozenset({P.persons_read, P.watchlists_read, P.cameras_read, P.alerts_read, P.alerts_crop,
                              P.alerts_triage, P.events_read}),
    Role.analyst: frozenset({P.watchlists_read, P.cameras_read, P.alerts_read, P.events_read, P.events_export}),
    Role.auditor: frozenset({P.audit_read, P.watchlists_read, P.cameras_read}),
}


def permission_matrix_markdown() -> str:
    """The matrix as a Markdown table (permissions down, roles across): what the README shows."""
    roles = list(Role)
    lines = ["| permission | " + " | ".join(r.value for r in roles) + " |",
             "|---|" + "---|" * len(roles)]
    for p in Permission:
        lines.append(f"| `{p.value}` | " + " | ".join("yes" if p in ROLE_PERMISSIONS[r] else "—" for r in roles)
                     + " |")
    return "\n".join(lines)


class AuthenticationError(ArgusError):
    """No credentials, or credentials that do not identify anybody (HTTP 401)."""


class PermissionDeniedError(ArgusError):
    """An authenticated caller whose role lacks the permission (HTTP 403)."""


@dataclass(frozen=True, kw_only=True)
class Principal:
    """An authenticated caller: ``actor`` is what the audit trail records (``key:<id>``, ``oidc:<sub>``)."""

    actor: str
    role: Role
    via: str  # "api_key" | "oidc" | "cli"

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


def require(principal: Principal, permission: Permission) -> None:
    if not principal.can(permission):
        raise PermissionDeniedError(f"role {principal.role.value} lacks permission {permission.value}")


def check_role(value: object) -> Role:
    try:
        return Role(str(value))
    except ValueError:
        raise InputError(f"role: expected one of {', '.join(r.value for r in Role)}, got {value!r}") from None


# --------------------------------------------------------------------------------------------------------------
# API keys


KEY_PREFIX = "argus_"
_KEY_ID_BYTES = 6  # 12 hex chars: no "_" inside, so the key splits unambiguously
_SECRET_BYTES = 32


class KeyStore(Protocol):
    """The part of the event store the key functions use (SQLite and MongoDB stores both provide it)."""

    def put_api_key(self, rec: ApiKeyRecord) -> None: ...

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None: ...

    def list_api_keys(self) -> list[ApiKeyRecord]: ...

    def revoke_api_key(self, key_id: str, *, at: float) -> ApiKeyRecord: ...

    def append_audit(self, *, actor: str, role: str, action: str, subject: str | None = None,
                     details: Mapping[str, Any]) -> Any: ...


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(token: str) -> tuple[str, str]:
    """``argus_<key_id>_<secret>`` → (key_id, secret); AuthenticationError naming the expected shape otherwise."""
    if not token.startswith(KEY_PREFIX):
        raise AuthenticationError(f"API key: expected {KEY_PREFIX}<key_id>_<secret>")
    key_id, sep, secret = token[len(KEY_PREFIX):].partition("_")
    if not sep or len(key_id) != 2 * _KEY_ID_BYTES or not all(c in "0123456789abcdef" for c in key_id) or not secret:
        raise AuthenticationError(f"API key: expected {KEY_PREFIX}<key_id>_<secret>")
    return key_id, secret


def create_api_key(store: KeyStore, *, name: str, role: Role | str, actor: str, actor_role: str = "admin",
                   now: float | None = None) -> tuple[ApiKeyRecord, str]:
    """Make a key; returns its record and the full key, which exists only in this return value (shown once)."""
    from argus.store.base import ApiKeyRecord

    role = check_role(role)
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise InputError(f"key name: expected a non-empty string of at most 200 chars, got {name!r}")
    key_id = secrets.token_hex(_KEY_ID_BYTES)
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    rec = ApiKeyRecord(key_id=key_id, name=name.strip(), role=role.value, secret_sha256=hash_secret(secret),
                       created_at=time.time() if now is None else now, created_by=actor, revoked_at=None)
    store.put_api_key(rec)
    store.append_audit(actor=actor, role=actor_role, action="key.create", subject=None,
                       details={"key_id": key_id, "name": rec.name, "key_role": role.value})
    return rec, f"{KEY_PREFIX}{key_id}_{secret}"


def list_api_keys(store: KeyStore) -> list[ApiKeyRecord]:
    return sorted(store.list_api_keys(), key=lambda r: (r.created_at, r.key_id))


def revoke_api_key(store: KeyStore, key_id: str, *, actor: str, actor_role: str = "admin",
                   now: float | None = None) -> ApiKeyRecord:
    rec = store.revoke_api_key(key_id, at=time.time() if now is None else now)
    store.append_audit(actor=actor, role=actor_role, action="key.revoke", subject=None,
                       details={"key_id": key_id, "name": rec.name})
    return rec


# --------------------------------------------------------------------------------------------------------------
# OIDC

#: Asymmetric algorithms only, each tied to the key type that may verify it.
ALLOWED_JWT_ALGORITHMS: Mapping[str, str] = {"RS256": "RSA", "ES256": "EC"}


class OidcVerifier:
    """Verifies bearer JWTs against a JWKS loaded from a file path or fetched from an https URL (cached)."""

    def __init__(self, *, jwks: str, issuer: str | None, audience: str | None, role_claim: str = "argus_role",
                 leeway_s: float = 30.0) -> None:
        if not issuer or not audience:
            raise ConfigError("OIDC: expected ARGUS_API_OIDC_ISSUER and ARGUS_API_OIDC_AUDIENCE with "
                              f"ARGUS_API_OIDC_JWKS, got issuer={issuer!r} audience={audience!r}")
        self.issuer = issuer
        self.audience = audience
        self.role_claim = role_claim
        self.leeway_s = leeway_s
        self._client: jwt.PyJWKClient | None = None
        self._keys: dict[str | None, jwt.PyJWK] = {}
        if jwks.startswith("https://") or jwks.startswith("http://"):
            self._client = jwt.PyJWKClient(jwks, cache_keys=True, lifespan=300, timeout=5)
        else:
            self._keys = _load_jwks_file(Path(jwks))
        self._lock = threading.Lock()

    def _key(self, kid: str | None) -> jwt.PyJWK:
        if self._client is not None:
            try:
                with self._lock:
                    if kid is None:
                        keys = self._client.get_signing_keys()
                        if len(keys) != 1:
                            raise AuthenticationError("token: expected a kid header (the JWKS holds several keys)")
                        return keys[0]
                    return self._client.get_signing_key(kid)
            except jwt.PyJWKClientError as e:
                raise AuthenticationError(f"token: signing key {kid!r} not found in the JWKS") from e
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        if kid not in self._keys:
            raise AuthenticationError(f"token: signing key {kid!r} not found in the JWKS")
        return self._keys[kid]

    def verify(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise AuthenticationError("token: expected a JWT") from e
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_JWT_ALGORITHMS:
            raise AuthenticationError(f"token: expected alg in {', '.join(ALLOWED_JWT_ALGORITHMS)}, got {alg!r}")
        key = self._key(header.get("kid"))
        if key.key_type != ALLOWED_JWT_ALGORITHMS[alg]:
            raise AuthenticationError(f"token: alg {alg} does not fit the JWKS key type {key.key_type}")
        try:
            claims = jwt.decode(token, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                                leeway=self.leeway_s, options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.ExpiredSignatureError as e:
            raise AuthenticationError("token: expired") from e
        except jwt.InvalidAudienceError as e:
            raise AuthenticationError("token: wrong audience") from e
        except jwt.InvalidIssuerError as e:
            raise AuthenticationError("token: wrong issuer") from e
        except jwt.PyJWTError as e:
            raise AuthenticationError(f"token: invalid ({type(e).__name__})") from e
        raw = claims.get(self.role_claim)
        roles = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
        known = {r.value for r in Role}
        mine = sorted({r for r in roles if isinstance(r, str) and r in known})
        if len(mine) != 1:
            raise PermissionDeniedError(f"token: expected exactly one Argus role in claim {self.role_claim!r}, "
                                        f"got {mine or None}")
        return Principal(actor=f"oidc:{claims['sub']}", role=Role(mine[0]), via="oidc")


def _load_jwks_file(path: Path) -> dict[str | None, jwt.PyJWK]:
    try:
        data = json.loads(path.read_text())
        keyset = jwt.PyJWKSet.from_dict(data)
    except (OSError, ValueError, jwt.PyJWTError) as e:
        raise ConfigError(f"ARGUS_API_OIDC_JWKS: expected a readable JWKS JSON file, got {path}: {e}") from e
    return {k.key_id: k for k in keyset.keys}


# --------------------------------------------------------------------------------------------------------------
# Both together


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal` or an :class:`AuthenticationError`."""

    def __init__(self, store: KeyStore, *, oidc: OidcVerifier | None = None) -> None:
        self.store = store
        self.oidc = oidc

    @classmethod
    def from_settings(cls, store: KeyStore, settings: Any) -> Authenticator:
        oidc = None
        if settings.api_oidc_jwks:
            oidc = OidcVerifier(jwks=settings.api_oidc_jwks, issuer=settings.api_oidc_issuer,
                                audience=settings.api_oidc_audience, role_claim=settings.api_oidc_role_claim)
        return cls(store, oidc=oidc)

    def authenticate(self, authorization: str | None, *, client: str = "") -> Principal:
        try:
            return self._authenticate(authorization)
        except (AuthenticationError, PermissionDeniedError) as e:
            if authorization:  # a request without credentials is not a failed login
                self._audit_failure(authorization, str(e), client)
            raise

    def _authenticate(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthenticationError("expected an Authorization: Bearer header")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthenticationError("expected an Authorization: Bearer header")
        if token.startswith(KEY_PREFIX):
            return self._api_key(token)
        if self.oidc is None:
            raise AuthenticationError("bearer token: expected an Argus API key (OIDC is not configured)")
        return self.oidc.verify(token)

    def _api_key(self, token: str) -> Principal:
        key_id, secret = parse_api_key(token)
        rec = self.store.get_api_key(key_id)
        # compare even when the key is unknown, so timing does not tell which key ids exist
        expected = rec.secret_sha256 if rec is not None else "0" * 64
        if not hmac.compare_digest(expected, hash_secret(secret)) or rec is None:
            raise AuthenticationError("API key: unknown key or wrong secret")
        if rec.revoked_at is not None:
            raise AuthenticationError("API key: revoked")
        return Principal(actor=f"key:{rec.key_id}", role=check_role(rec.role), via="api_key")

    def _audit_failure(self, authorization: str, reason: str, client: str) -> None:
        details: dict[str, Any] = {"reason": reason, "client": client}
        token = authorization.strip().partition(" ")[2].strip()
        if token.startswith(KEY_PREFIX):
            details["via"] = "api_key"
            with contextlib.suppress(AuthenticationError):  # the id is not secret; the secret never goes here
                details["key_id"] = parse_api_key(token)[0]
        else:
            details["via"] = "oidc"
        try:
            self.store.append_audit(actor="anonymous", role="none", action="login.failed", subject=None,
                                    details=details)
        except ArgusError as e:  # the refusal stands either way; say that the trail missed it
            log.warning("could not audit a failed login: %s", e)


def roles_of(permission: Permission) -> Sequence[Role]:
    return [r for r in Role if permission in ROLE_PERMISSIONS[r]]
