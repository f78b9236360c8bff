"""The token verifier against a real JWKS file: real RSA and EC keys, tokens signed with PyJWT or by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from portfolio_engine.api.auth import Principal, TokenVerifier, authenticate, authorize
from portfolio_engine.api.errors import ForbiddenError, UnauthorizedError

ISSUER, AUDIENCE = "https://issuer.test", "spe-api"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(key: Any, kid: str, alg: str | None = None) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk = algorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", **({"alg": alg} if alg else {})}


def _write_jwks(path: Path, *jwks: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"keys": list(jwks)}))
    return path


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "nbf": now, "exp": now + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: Any = RSA_KEY, alg: str = "RS256", kid: str = "rsa-1") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _by_hand(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture
def jwks_path(tmp_path: Path) -> Path:
    return _write_jwks(tmp_path / "jwks.json", _jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256"))


@pytest.fixture
def verifier(jwks_path: Path) -> TokenVerifier:
    return TokenVerifier(str(jwks_path), issuer=ISSUER, audience=AUDIENCE)


@pytest.mark.parametrize(
    ("key", "alg", "kid"),
    [(RSA_KEY, "RS256", "rsa-1"), (EC_KEY, "ES256", "ec-1")],
    ids=["RS256", "ES256"],
)
def test_a_valid_token_names_its_subject_and_role(verifier: TokenVerifier, key: Any, alg: str, kid: str) -> None:
    # Given a token signed with a key of the issuer's JWKS
    token = _sign(_claims(roles=["manager"]), key, alg, kid)
    # When it is verified
    found = verifier.verify(token)
    # Then it names the caller with the role it grants
    assert found == Principal(subject="alice", role="manager", via="token")


@pytest.mark.parametrize(
    ("claims", "role"),
    [
        ({"roles": ["viewer", "admin", "manager"]}, "admin"),
        ({"roles": "viewer manager"}, "manager"),
        ({"roles": "viewer,admin"}, "admin"),
        ({"roles": ["auditor", "viewer"]}, "viewer"),
        ({"cognito:groups": ["manager", "ops"]}, "manager"),
        ({"roles": ["viewer"], "cognito:groups": ["admin"]}, "admin"),
    ],
    ids=["list", "space-string", "comma-string", "unknown-ignored", "cognito-groups", "both-claims"],
)
def test_the_highest_known_role_wins(verifier: TokenVerifier, claims: dict[str, Any], role: str) -> None:
    assert verifier.verify(_sign(_claims(**claims))).role == role


def test_a_token_without_a_known_role_is_forbidden(verifier: TokenVerifier) -> None:
    with pytest.raises(ForbiddenError, match="no role"):
        verifier.verify(_sign(_claims(roles=["auditor"])))
    with pytest.raises(ForbiddenError):
        verifier.verify(_sign(_claims()))


@pytest.mark.parametrize(
    ("claims", "match"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not yet valid"),
        ({"iss": "https://evil.test"}, "issuer"),
        ({"aud": "another-api"}, r"(?i)audience"),
        ({"sub": None}, "sub"),
        ({"exp": None}, "exp"),
    ],
    ids=["expired", "nbf-future", "wrong-iss", "wrong-aud", "no-sub", "no-exp"],
)
def test_a_token_with_bad_claims_is_refused(verifier: TokenVerifier, claims: dict[str, Any], match: str) -> None:
    # Given a correctly signed token whose claims are wrong
    token = _sign(_claims(roles=["admin"], **claims))
    # Then it does not verify
    with pytest.raises(UnauthorizedError, match=match):
        verifier.verify(token)


def test_alg_none_is_refused(verifier: TokenVerifier) -> None:
    token = _by_hand({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, _claims(roles=["admin"]))
    with pytest.raises(UnauthorizedError, match="'none'"):
        verifier.verify(token)


def test_hs256_signed_with_the_public_key_is_refused(verifier: TokenVerifier) -> None:
    # Given a token HMAC-signed with the issuer's public key PEM as the secret (algorithm confusion)
    pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header, claims = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, _claims(roles=["admin"])
    unsigned = _by_hand(header, claims).rsplit(".", 1)[0]
    token = f"{unsigned}.{_b64(hmac.new(pem, unsigned.encode(), hashlib.sha256).digest())}"
    # Then it is refused before any key is used as a secret
    with pytest.raises(UnauthorizedError, match="HS256"):
        verifier.verify(token)


def test_an_unknown_key_id_is_refused(verifier: TokenVerifier) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(UnauthorizedError, match="key id"):
        verifier.verify(_sign(_claims(roles=["admin"]), stranger, kid="rsa-2"))


def test_a_token_signed_by_another_key_under_a_known_kid_is_refused(verifier: TokenVerifier) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(UnauthorizedError, match="Signature"):
        verifier.verify(_sign(_claims(roles=["admin"]), stranger, kid="rsa-1"))


def test_a_tampered_token_is_refused(verifier: TokenVerifier) -> None:
    # Given a valid viewer token whose payload is swapped for an admin one
    header, _, signature = _sign(_claims(roles=["viewer"])).split(".")
    payload = _b64(json.dumps(_claims(roles=["admin"])).encode())
    with pytest.raises(UnauthorizedError, match="Signature"):
        verifier.verify(f"{header}.{payload}.{signature}")


def test_a_jwk_declaring_rs256_refuses_a_ps256_token(verifier: TokenVerifier) -> None:
    # Given a PS256 token from the right private key, under a JWK that declares RS256
    token = _sign(_claims(roles=["admin"]), RSA_KEY, "PS256", "rsa-1")
    with pytest.raises(UnauthorizedError, match="RS256"):
        verifier.verify(token)


def test_a_ps256_token_verifies_under_a_jwk_without_alg(tmp_path: Path) -> None:
    # The refusal above comes from the JWK's declared alg, not from PS256 itself
    path = _write_jwks(tmp_path / "jwks.json", _jwk(RSA_KEY, "rsa-1"))
    verifier = TokenVerifier(str(path), issuer=ISSUER, audience=AUDIENCE)
    assert verifier.verify(_sign(_claims(roles=["viewer"]), RSA_KEY, "PS256", "rsa-1")).role == "viewer"


def test_a_rotated_jwks_file_is_used_without_a_new_verifier(jwks_path: Path, verifier: TokenVerifier) -> None:
    # Given a verifier that verified a token of the old key
    old = _sign(_claims(roles=["viewer"]))
    assert verifier.verify(old).subject == "alice"
    # When the file is rewritten with only a new key
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_jwks(jwks_path, _jwk(new_key, "rsa-2", "RS256"))
    stat = jwks_path.stat()
    os.utime(jwks_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a coarse clock still sees it
    # Then tokens of the new key verify and tokens of the old one no longer do
    assert verifier.verify(_sign(_claims(roles=["admin"]), new_key, kid="rsa-2")).role == "admin"
    with pytest.raises(UnauthorizedError, match="key id"):
        verifier.verify(old)


def test_authenticate_reads_a_bearer_token(verifier: TokenVerifier) -> None:
    token = _sign(_claims(roles=["manager"]))
    for value in (f"Bearer {token}", f"bearer   {token}  "):
        found = authenticate({"authorization": value}, verifier=verifier, api_key=lambda _: None)
        assert (found.subject, found.role, found.via) == ("alice", "manager", "token")


@pytest.mark.parametrize("value", ["Basic abc", "Bearer", "Bearer   ", "token"])
def test_authenticate_refuses_a_malformed_authorization_header(verifier: TokenVerifier, value: str) -> None:
    with pytest.raises(UnauthorizedError, match="Bearer <token>"):
        authenticate({"authorization": value}, verifier=verifier, api_key=lambda _: None)


def test_authenticate_reads_an_api_key(verifier: TokenVerifier) -> None:
    # Given a key lookup that knows one key
    records = {"spe_good": {"id": "0123456789abcdef", "role": "viewer"}}
    # When the key is sent (with stray spaces)
    found = authenticate({"x-api-key": " spe_good "}, verifier=verifier, api_key=records.get)
    # Then the caller is that key, with its role
    assert found == Principal(subject="apikey:0123456789abcdef", role="viewer", via="api_key")
    with pytest.raises(UnauthorizedError, match="unknown, malformed or revoked"):
        authenticate({"x-api-key": "spe_bad"}, verifier=verifier, api_key=records.get)


def test_authenticate_without_credentials_is_unauthorized(verifier: TokenVerifier) -> None:
    with pytest.raises(UnauthorizedError, match="needs credentials"):
        authenticate({"content-type": "application/json"}, verifier=verifier, api_key=lambda _: None)


def test_authorize_orders_roles() -> None:
    manager = Principal(subject="bob", role="manager", via="token")
    authorize(manager, "viewer")
    authorize(manager, "manager")
    with pytest.raises(ForbiddenError, match="needs the admin role; bob has manager"):
        authorize(manager, "admin")


@pytest.mark.parametrize("kid", [["rsa-1"], {"k": 1}, 7], ids=["list", "object", "number"])
def test_a_kid_that_is_not_a_string_is_refused(verifier: TokenVerifier, kid: Any) -> None:
    # Given a token whose header's kid is crafted as another JSON type (an attacker needs no key for that)
    unsigned = _by_hand({"alg": "RS256", "typ": "JWT", "kid": kid}, _claims(roles=["admin"])).rsplit(".", 1)[0]
    signature = RSAAlgorithm(RSAAlgorithm.SHA256).sign(unsigned.encode(), RSA_KEY)
    token = f"{unsigned}.{_b64(signature)}"
    # Then it is refused as unauthorized, not a server error
    with pytest.raises(UnauthorizedError, match=r"(?i)key id"):
        verifier.verify(token)
