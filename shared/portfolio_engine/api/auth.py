"""Who is calling and what they may do: JWT bearer tokens (PyJWT, against a JWKS) and API keys.

A token is verified offline against the issuer's JWKS, a file (reloaded when it changes) or an https URL
(``PyJWKClient``, cached): its signature with an asymmetric algorithm only (``none`` and HMAC are refused, so
a public key can never be used as an HMAC secret: algorithm confusion), and ``exp``, ``nbf``, ``iss``, ``aud``
and ``sub``. The role comes from a claim (``roles`` or Cognito's ``cognito:groups``); ``viewer`` reads,
``manager`` also edits portfolios and starts runs, ``admin`` may do everything. The same verifier runs in
the API function and in the Lambda authorizer in front of it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from portfolio_engine.api.errors import ForbiddenError, UnauthorizedError
from portfolio_engine.exceptions import ConfigurationError

logger = logging.getLogger(__name__)

__all__ = ["ROLES", "Principal", "Role", "TokenVerifier", "authenticate", "authorize"]

Role = Literal["viewer", "manager", "admin"]
#: Roles from least to most privileged; each may do what the ones before it may.
ROLES: tuple[Role, ...] = ("viewer", "manager", "admin")
#: Signature algorithms accepted: asymmetric only.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


@dataclass(frozen=True)
class Principal:
    """A verified caller: who (``sub`` or ``apikey:<id>``), with which role, through which credential."""

    subject: str
    role: Role
    via: Literal["token", "api_key"]

    def may(self, needed: Role) -> bool:
        """Whether this caller's role covers ``needed``."""
        return ROLES.index(self.role) >= ROLES.index(needed)


class _FileKeys:
    """A JWKS file's keys, re-read when the file changes (a key rotation needs no restart)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self._keys: dict[str, PyJWK] = {}
        self._lock = threading.Lock()

    def key(self, kid: str | None) -> PyJWK:
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise ConfigurationError(
                f"The JWKS file {self.path} cannot be read: {exc}.",
                hint="Start `spe api` once (it creates the development issuer) or set SPE_API_JWKS.",
            ) from exc
        with self._lock:
            if self._stamp != (stat.st_mtime, stat.st_size):
                try:
                    document = json.loads(self.path.read_text())
                    self._keys = {k.key_id or "": k for k in PyJWKSet.from_dict(document).keys}
                    self._stamp = (stat.st_mtime, stat.st_size)
                except (OSError, ValueError, jwt.PyJWTError) as exc:  # half-written during a rotation, or broken
                    if not self._keys:
                        raise ConfigurationError(
                            f"The JWKS file {self.path} is not a key set: {exc}.",
                            hint="Write it whole (to a temporary file, then rename), or fix SPE_API_JWKS.",
                        ) from exc
                    logger.warning("JWKS file unreadable; keeping the keys read before", extra={"error": str(exc)})
            keys = self._keys
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        if kid is None or kid not in keys:
            raise UnauthorizedError(f"The token's key id {kid!r} is not one of the issuer's keys.")
        return keys[kid]


class TokenVerifier:
    """Verify bearer tokens against a JWKS (a file path or an http(s) URL).

    Parameters
    ----------
    jwks : str
        The issuer's key set: a path, or a URL (Cognito: ``https://cognito-idp.<region>.amazonaws.com/<pool>/
        .well-known/jwks.json``).
    issuer, audience : str
        The required ``iss`` and ``aud`` (Cognito access tokens carry ``client_id`` instead of ``aud``: use ID
        tokens, or an OIDC issuer that sets ``aud``).
    role_claims : sequence of str
        Claims holding roles, first match wins; a value is a list or a space- or comma-separated string.
    leeway_seconds : int, default 30
        Clock skew allowed on ``exp`` and ``nbf``.
    """

    def __init__(
        self,
        jwks: str,
        *,
        issuer: str,
        audience: str,
        role_claims: Sequence[str] = ("roles", "cognito:groups"),
        leeway_seconds: int = 30,
    ) -> None:
        self.issuer, self.audience, self.role_claims, self.leeway = issuer, audience, tuple(role_claims), leeway_seconds
        self._key: Callable[[str, str | None], Any]
        if jwks.startswith(("https://", "http://")):
            client = PyJWKClient(jwks, cache_keys=True, lifespan=300, timeout=5)
            self._key = lambda token, _kid: client.get_signing_key_from_jwt(token)
        else:
            keys = _FileKeys(Path(jwks))
            self._key = lambda _token, kid: keys.key(kid)

    def verify(self, token: str) -> Principal:
        """The caller a token names.

        Raises
        ------
        UnauthorizedError
            Malformed, wrong algorithm, unknown key, bad signature, expired, not yet valid, wrong issuer or
            audience, no subject.
        ForbiddenError
            A valid token that carries no known role.
        """
        try:
            header = jwt.get_unverified_header(token)
            algorithm = header.get("alg")
            if algorithm not in ALGORITHMS:
                raise UnauthorizedError(
                    f"Tokens signed with {algorithm!r} are refused; the API accepts {', '.join(ALGORITHMS)}."
                )
            key = self._key(token, header.get("kid"))
            declared = getattr(key, "_jwk_data", {}).get("alg")  # a JWK that names its algorithm allows only it
            if declared and declared != algorithm:
                raise UnauthorizedError(f"The token says {algorithm} but its key {key.key_id!r} is for {declared}.")
            claims = jwt.decode(
                token,
                key=key.key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except UnauthorizedError:
            raise
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"The bearer token is not valid: {exc}.") from exc
        return Principal(subject=str(claims["sub"]), role=self.role_of(claims), via="token")

    def role_of(self, claims: Mapping[str, Any]) -> Role:
        """The highest known role the claims grant.

        Raises
        ------
        ForbiddenError
            None of the role claims names a known role.
        """
        granted: set[str] = set()
        for claim in self.role_claims:
            value = claims.get(claim)
            if isinstance(value, str):
                granted |= set(value.replace(",", " ").split())
            elif isinstance(value, list):
                granted |= {str(v) for v in value}
        known = [r for r in ROLES if r in granted]
        if not known:
            raise ForbiddenError(
                f"The token grants no role the API knows (claims {list(self.role_claims)}).",
                hint=f"Ask an admin for one of {list(ROLES)} (a group of that name in Cognito).",
            )
        return known[-1]


def authenticate(
    headers: Mapping[str, str],
    *,
    verifier: TokenVerifier,
    api_key: Callable[[str], dict[str, Any] | None],
) -> Principal:
    """The caller of a request, from ``Authorization: Bearer`` or ``X-API-Key`` (header names are lower-cased).

    Raises
    ------
    UnauthorizedError
        Neither header, or one that does not verify.
    """
    authorization = headers.get("authorization")
    key = headers.get("x-api-key")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise UnauthorizedError("The Authorization header must read `Bearer <token>`.")
        return verifier.verify(token.strip())
    if key:
        record = api_key(key.strip())
        if record is None:
            raise UnauthorizedError("The API key is unknown, malformed or revoked.")
        return Principal(subject=f"apikey:{record['id']}", role=record["role"], via="api_key")
    raise UnauthorizedError("This route needs credentials.")


def authorize(principal: Principal, needed: Role) -> None:
    """Refuse a caller whose role is below ``needed``.

    Raises
    ------
    ForbiddenError
        With the role needed and the one held.
    """
    if not principal.may(needed):
        raise ForbiddenError(
            f"This route needs the {needed} role; {principal.subject} has {principal.role}.",
            hint=f"Use credentials with the {needed} role" + (" or admin." if needed != "admin" else "."),
        )
