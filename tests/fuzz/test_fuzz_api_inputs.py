"""Fuzz what an API client controls before any route runs: the request bodies (pydantic models), the
``Authorization`` header (API keys and OIDC bearer tokens), keyset cursors and typed times.

Each property: the input is accepted, or refused with the type the API translates into a 4xx (pydantic's
ValidationError → 422, AuthenticationError → 401, PermissionDeniedError → 403, InputError → 400). Any other
exception would be a 500 and fails the property. The HTTP-level twin is tests/api/test_api_schemathesis.py, which
walks the OpenAPI document; these go deeper on the parsers it reaches only through generated JSON.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fuzzing import FUZZ, VALUES
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from argus.api.auth import (
    KEY_PREFIX,
    AuthenticationError,
    Authenticator,
    OidcVerifier,
    PermissionDeniedError,
    create_api_key,
    parse_api_key,
)
from argus.api.models import KeyIn, PersonPatch, TriageIn, WatchlistIn
from argus.errors import InputError
from argus.store.base import decode_cursor, encode_cursor
from argus.store.sqlite import SqliteEventStore
from argus.timefmt import parse_time

REQUEST_MODELS: list[type[BaseModel]] = [PersonPatch, WatchlistIn, TriageIn, KeyIn]
#: One body each model accepts, tried first, so the round-trip branch provably runs.
VALID: dict[type[BaseModel], dict[str, object]] = {
    PersonPatch: {"reason": "r", "expires_at": 1.0}, WatchlistIn: {"reason": "r", "threshold": 0.5},
    TriageIn: {"action": "dismiss", "reason": "r"}, KeyIn: {"name": "n", "role": "analyst"},
}
ISSUER, AUDIENCE = "https://idp.example", "argus"

json_like = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=12,
)


def _body(model: type[BaseModel], *, json_only: bool = False) -> st.SearchStrategy[object]:
    """Mostly dicts with the model's own field names (so validation gets past 'unknown key'), some anything
    (MessagePack-grade values too — bytes, extension types — unless the body must be JSON text)."""
    names = list(model.model_fields)
    values = json_like if json_only else json_like | VALUES
    near = st.dictionaries(st.sampled_from(names) | st.text(max_size=10), values, max_size=len(names) + 2)
    return st.one_of(near, json_like)


@pytest.mark.parametrize("model", REQUEST_MODELS, ids=lambda m: m.__name__)
def test_request_bodies_validate_or_raise_validation_error(model: type[BaseModel]) -> None:
    @FUZZ
    @given(body=_body(model))
    @example(body=VALID[model])
    def check(body: object) -> None:
        try:
            parsed = model.model_validate(body)
        except ValidationError:
            return
        # what validated must round-trip: the route reads the model, not the raw body
        assert model.model_validate(parsed.model_dump()) == parsed

    check()


@pytest.mark.parametrize("model", REQUEST_MODELS, ids=lambda m: m.__name__)
def test_request_body_json_text_validates_or_raises_validation_error(model: type[BaseModel]) -> None:
    """The raw body text as FastAPI hands it over (model_validate_json), including invalid JSON and deep nesting."""
    deep = st.integers(1, 3000).map(lambda n: '{"reason":' + "[" * n + "]" * n + "}")

    @FUZZ
    @given(text=st.one_of(st.text(max_size=200), _body(model, json_only=True).map(json.dumps), deep))
    def check(text: str) -> None:
        with contextlib.suppress(ValidationError):
            model.model_validate_json(text)

    check()


@pytest.fixture(scope="module")
def key_store(tmp_path_factory: pytest.TempPathFactory) -> SqliteEventStore:
    store = SqliteEventStore(path=tmp_path_factory.mktemp("fuzzkeys") / "events.db")
    return store


@pytest.fixture(scope="module")
def real_key(key_store: SqliteEventStore) -> str:
    return create_api_key(key_store, name="fuzz", role="operator", actor="test")[1]


def _jwks_file(tmp: Path) -> tuple[Path, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    path = tmp / "jwks.json"
    path.write_text(json.dumps({"keys": [jwk]}))
    return path, key


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> tuple[OidcVerifier, rsa.RSAPrivateKey]:
    path, key = _jwks_file(tmp_path_factory.mktemp("jwks"))
    return OidcVerifier(jwks=str(path), issuer=ISSUER, audience=AUDIENCE), key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _forged_tokens(key: rsa.RSAPrivateKey) -> st.SearchStrategy[str]:
    """JWT-shaped strings: random headers/claims, alg none, the right key with hostile claims, a stranger's key,
    the HS256-with-the-public-key confusion, truncated and re-joined segments."""
    other = ec.generate_private_key(ec.SECP256R1())
    claims = st.dictionaries(st.sampled_from(["sub", "iss", "aud", "exp", "nbf", "iat", "argus_role"]) |
                             st.text(max_size=8), json_like, max_size=7)
    headers = st.dictionaries(st.sampled_from(["alg", "kid", "typ", "crit", "jku"]), json_like, max_size=4)
    good = {"sub": "u1", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 3600}

    def unsigned(h: dict, c: dict) -> str:
        return f"{_b64(json.dumps(h, default=str).encode())}.{_b64(json.dumps(c, default=str).encode())}."

    def sign(h: dict, c: dict, alg: str, with_key: object) -> str:
        """Signed by hand: PyJWT's encoder refuses the hostile headers and claims the verifier must refuse."""
        msg = unsigned({**h, "alg": alg}, c)[:-1].encode()
        signer = jwt.get_algorithm_by_name(alg)
        return f"{msg.decode()}.{_b64(signer.sign(msg, with_key))}"

    def signed(c: dict, kid: object) -> str:
        return sign({"kid": kid, "typ": "JWT"}, {**good, **c}, "RS256", key)

    return st.one_of(
        st.builds(unsigned, headers, claims),
        st.builds(lambda c: unsigned({"alg": "none", "kid": "k1"}, {**good, **c}), claims),
        st.builds(signed, claims, st.sampled_from(["k1", "k2", None, 7])),
        st.builds(lambda c: sign({"kid": "k1"}, {**good, **c}, "ES256", other), claims),
        st.builds(lambda c: sign({"kid": "k1"}, {**good, **c}, "HS256", b"not-the-key-but-a-long-hmac-secret"),
                  claims),
        st.builds(lambda t, n: t[:n], st.builds(signed, claims, st.just("k1")), st.integers(0, 400)),
        st.lists(st.text(st.characters(codec="ascii"), max_size=40), min_size=1, max_size=5).map(".".join),
    )


def test_bearer_tokens_authenticate_or_raise_auth_errors(
    key_store: SqliteEventStore, real_key: str, oidc: tuple[OidcVerifier, rsa.RSAPrivateKey]
) -> None:
    verifier, key = oidc
    auth = Authenticator(key_store, oidc=verifier)
    key_id = real_key[len(KEY_PREFIX):].partition("_")[0]
    api_keys = st.one_of(
        st.text(max_size=80).map(lambda s: KEY_PREFIX + s),
        st.text(max_size=40).map(lambda s: f"{KEY_PREFIX}{key_id}_{s}"),
        st.integers(0, len(real_key)).map(lambda n: real_key[:n]),
    )
    header = st.one_of(
        st.text(max_size=120),
        st.tuples(st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "", " Bearer "]),
                  st.one_of(api_keys, _forged_tokens(key), st.text(max_size=60))).map(" ".join),
    )

    @FUZZ
    @given(authorization=header)
    def check(authorization: str) -> None:
        try:
            principal = auth.authenticate(authorization, client="fuzz")
        except (AuthenticationError, PermissionDeniedError):
            return
        # only the real key or a token our IdP key really signed may get through
        token = authorization.split()[-1]
        if principal.via == "api_key":
            assert token == real_key and principal.actor == f"key:{key_id}"
        else:
            jwt.decode(token, key.public_key(), algorithms=["RS256"], audience=AUDIENCE, issuer=ISSUER)

    check()


def test_the_real_key_and_a_valid_token_do_authenticate(
    key_store: SqliteEventStore, real_key: str, oidc: tuple[OidcVerifier, rsa.RSAPrivateKey]
) -> None:
    """The property above would pass if everything were refused: the two credentials that must work, do."""
    verifier, key = oidc
    auth = Authenticator(key_store, oidc=verifier)
    assert auth.authenticate(f"Bearer {real_key}").role == "operator"
    token = jwt.encode({"sub": "u1", "iss": ISSUER, "aud": AUDIENCE, "exp": int(time.time()) + 60,
                        "argus_role": "analyst"}, key, algorithm="RS256", headers={"kid": "k1"})
    assert auth.authenticate(f"Bearer {token}").role == "analyst"


@FUZZ
@given(token=st.text(max_size=120))
def test_api_key_parsing_returns_its_parts_or_raises_authentication_error(token: str) -> None:
    try:
        key_id, secret = parse_api_key(token)
    except AuthenticationError:
        return
    assert token == f"{KEY_PREFIX}{key_id}_{secret}"


@FUZZ
@given(cursor=st.one_of(st.text(max_size=200), json_like.map(lambda v: _b64(json.dumps(v).encode())),
                        st.builds(encode_cursor, st.floats(allow_nan=False), st.text(max_size=20) | st.integers())),
       key_type=st.sampled_from([str, int]))
def test_cursors_decode_or_raise_input_error(cursor: str, key_type: type[str] | type[int]) -> None:
    try:
        ts, key = decode_cursor(cursor, key_type=key_type)
    except InputError:
        return
    assert isinstance(ts, float) and isinstance(key, key_type)


@FUZZ
@given(value=st.one_of(st.text(max_size=40), st.datetimes().map(lambda d: d.isoformat()),
                       st.floats().map(str), st.integers(-(10**30), 10**30).map(str)))
def test_times_parse_or_raise_input_error_naming_the_field(value: str) -> None:
    try:
        ts = parse_time(value, "--since")
    except InputError as e:
        assert "--since" in str(e)
        return
    assert isinstance(ts, float)
