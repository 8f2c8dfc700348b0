"""OpenID Connect ID tokens, checked against a key the issuer published. Pure logic: fetching
the keys is chalicelib/auth/jwks.py's job.

Only asymmetric algorithms: an ID token signed with a shared secret (HS*) or none at all is
refused before any key is looked at. PyJWT (with `cryptography`, imported here only when a
token is checked) verifies the signature, `iss` and `aud`; the times are checked here against
a clock the caller passes, with no leeway on `exp`: a registry token must never outlive it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from chalicelib.auth.federation import Refused, json_object

ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
# How far ahead of ours the issuer's clock may run, for `nbf` and `iat`.
CLOCK_SKEW_SECONDS = 60
MAX_TOKEN_LENGTH = 16 * 1024


class InvalidIdToken(Refused):
    pass


def _segment(token: str, index: int) -> dict[str, Any]:
    parts = token.split(".")
    if len(token) > MAX_TOKEN_LENGTH or len(parts) != 3:
        raise InvalidIdToken("not a signed JWT")
    return json_object(parts[index], InvalidIdToken)


def unverified_issuer(token: str) -> str:
    """The `iss` a token claims, to find the rules and keys that could check it. Nothing is
    fetched for an issuer no rule names."""
    issuer = _segment(token, 1).get("iss")
    if not isinstance(issuer, str) or not issuer:
        raise InvalidIdToken("no issuer")
    return issuer


def header(token: str) -> tuple[str, str | None]:
    """The token's algorithm (one we accept) and key id."""
    values = _segment(token, 0)
    alg, kid = values.get("alg"), values.get("kid")
    if alg not in ALGORITHMS:
        raise InvalidIdToken(f"algorithm {alg!r} is not accepted")
    if kid is not None and not isinstance(kid, str):
        raise InvalidIdToken("malformed key id")
    return str(alg), kid


def _key(jwk: Mapping[str, Any], alg: str) -> Any:
    import jwt

    if jwk.get("alg") not in (None, alg) or jwk.get("use") not in (None, "sig"):
        raise InvalidIdToken("the key is not for this algorithm")
    expected_kty = "EC" if alg.startswith("ES") else "RSA"
    if jwk.get("kty") != expected_kty or (expected_kty == "EC" and jwk.get("crv") != _EC_CURVES[alg]):
        raise InvalidIdToken("the key is not for this algorithm")
    try:
        return jwt.PyJWK(dict(jwk), algorithm=alg).key
    except jwt.PyJWTError:
        raise InvalidIdToken("unusable key") from None


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidIdToken(f"{name} is not a number")
    return float(value)


def verify(token: str, jwk: Mapping[str, Any], issuer: str, audiences: Collection[str], now: float) -> dict[str, Any]:
    """The claims of a token signed by `jwk`, issued by `issuer` for one of `audiences`, valid
    at `now`; otherwise InvalidIdToken."""
    import jwt

    alg, _ = header(token)
    try:
        claims: dict[str, Any] = jwt.decode(
            token, _key(jwk, alg), algorithms=[alg], issuer=issuer, audience=list(audiences),
            options={"require": ["iss", "aud", "exp"], "verify_exp": False, "verify_nbf": False,
                     "verify_iat": False})
    except jwt.PyJWTError as error:
        raise InvalidIdToken(f"{type(error).__name__}: {error}") from None
    expires = _number(claims, "exp")
    if expires is None or expires <= now:
        raise InvalidIdToken("expired")
    for name in ("nbf", "iat"):
        moment = _number(claims, name)
        if moment is not None and moment > now + CLOCK_SKEW_SECONDS:
            raise InvalidIdToken(f"{name} is in the future")
    return claims
