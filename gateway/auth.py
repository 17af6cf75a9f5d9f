"""Endpoint credentials: keys and expiring HMAC tokens, checked in constant time.

The control plane issues tokens with `issue_token`; the data plane checks every scoring
request with `check_authorization`. Secrets are never logged or put in messages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import orjson

from gateway.snapshot import AUTH_AML_TOKEN, AUTH_KEY, AUTH_NONE, EndpointRoute

_BEARER = b"bearer "


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()


def issue_token(endpoint: str, secret: bytes, ttl_s: float,
                now: float | None = None) -> tuple[str, float]:
    """A token for `endpoint` valid `ttl_s` seconds; returns (token, expiry epoch seconds)."""
    if ttl_s <= 0:
        raise ValueError(f"token lifetime must be positive, got {ttl_s}")
    if not secret:
        raise ValueError(f"endpoint {endpoint} has no token secret")
    expiry = int((time.time() if now is None else now) + ttl_s)
    payload = _b64(orjson.dumps({"e": endpoint, "exp": expiry})).encode("ascii")
    return f"{payload.decode('ascii')}.{_b64(_sign(secret, payload))}", float(expiry)


def bearer(authorization: bytes | None) -> bytes | None:
    """The credential of an `Authorization: Bearer <credential>` header, else None."""
    if authorization is None or len(authorization) <= len(_BEARER):
        return None
    if authorization[: len(_BEARER)].lower() != _BEARER:
        return None
    return authorization[len(_BEARER):].strip()


def token_valid(route: EndpointRoute, token: bytes, now: float) -> bool:
    payload, dot, signature = token.partition(b".")
    if not dot or not route.token_secret:
        return False
    try:
        if not hmac.compare_digest(_unb64(signature), _sign(route.token_secret, payload)):
            return False
        claims = orjson.loads(_unb64(payload))
    except (ValueError, orjson.JSONDecodeError):
        return False
    if not isinstance(claims, dict) or claims.get("e") != route.name:
        return False
    expiry = claims.get("exp")
    return isinstance(expiry, (int, float)) and now < expiry


def key_valid(route: EndpointRoute, key: bytes) -> bool:
    matched = False
    for candidate in route.keys:  # compare with every key so timing says nothing
        if candidate and hmac.compare_digest(candidate, key):
            matched = True
    return matched


def check_authorization(route: EndpointRoute, authorization: bytes | None, now: float) -> bool:
    """Whether the request's Authorization header admits it to `route`."""
    if route.auth_mode == AUTH_NONE:
        return True
    credential = bearer(authorization)
    if not credential:
        return False
    if route.auth_mode == AUTH_KEY:
        return key_valid(route, credential)
    if route.auth_mode == AUTH_AML_TOKEN:
        return token_valid(route, credential, now)
    return False
