"""The development token issuer: an RSA key pair under ``<data_dir>/api/``, made on first use.

``spe api`` verifies tokens against ``<data_dir>/api/jwks.json`` (the public key) unless ``SPE_API_JWKS`` names
another issuer; ``spe token --role viewer`` signs one with the private key (``issuer.pem``, mode 0600). Nothing
here runs on AWS: there the tokens come from Cognito or another OIDC issuer.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from portfolio_engine.exceptions import ConfigurationError

__all__ = ["DevIssuer", "ensure_dev_issuer"]


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class DevIssuer:
    """The local issuer: its private key, key id and the JWKS the API verifies against."""

    private_key: rsa.RSAPrivateKey
    kid: str
    jwks_path: Path

    def mint(
        self, *, role: str, issuer: str, audience: str, subject: str | None = None, ttl_seconds: int = 3600
    ) -> str:
        """A signed RS256 token granting ``role`` for ``ttl_seconds``."""
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": audience,
            "sub": subject or f"local-{role}",
            "roles": [role],
            "iat": now,
            "nbf": now,
            "exp": now + ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})


def _jwks(key: rsa.RSAPrivateKey) -> tuple[str, dict[str, object]]:
    numbers = key.public_key().public_numbers()
    n, e = _b64(numbers.n), _b64(numbers.e)
    # RFC 7638 thumbprint: the key id changes exactly when the key does.
    kid = (
        base64.urlsafe_b64encode(
            hashlib.sha256(json.dumps({"e": e, "kty": "RSA", "n": n}, separators=(",", ":")).encode()).digest()
        )
        .rstrip(b"=")
        .decode()
    )
    return kid, {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e}]}


def ensure_dev_issuer(data_dir: Path) -> DevIssuer:
    """The development issuer under ``data_dir/api``, creating its key pair and JWKS the first time.

    Two processes starting together both end with the same key: the private key is linked into place whole,
    and only if there is none yet.

    Raises
    ------
    ConfigurationError
        The folder cannot be written, or the key file is not an RSA private key.
    """
    folder = data_dir / "api"
    pem = folder / "issuer.pem"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not pem.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            data = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            scratch = folder / f".issuer.{os.getpid()}.tmp"
            fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            try:
                os.link(scratch, pem)  # atomic, and fails if another process made it first: then use theirs
            except FileExistsError:
                pass
            finally:
                scratch.unlink()
        loaded = serialization.load_pem_private_key(pem.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigurationError(f"Cannot create the development issuer in {folder}: {exc}.") from exc
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ConfigurationError(f"{pem} is not an RSA private key.", hint=f"Delete {folder} to make a new issuer.")
    kid, jwks = _jwks(loaded)
    path = folder / "jwks.json"
    text = json.dumps(jwks, indent=2)
    if not path.exists() or path.read_text() != text:
        scratch = folder / f".jwks.{os.getpid()}.tmp"
        scratch.write_text(text)
        scratch.replace(path)
    return DevIssuer(private_key=loaded, kid=kid, jwks_path=path)
