from __future__ import annotations

from gateway.auth import check_authorization, issue_token
from gateway.snapshot import AUTH_AML_TOKEN, AUTH_KEY, AUTH_NONE, EndpointRoute

SECRET = b"s3cret"
KEYS = EndpointRoute("main", auth_mode=AUTH_KEY, keys=(b"primary", b"secondary"))
TOKENS = EndpointRoute("main", auth_mode=AUTH_AML_TOKEN, token_secret=SECRET)


def test_keys_primary_and_secondary() -> None:
    assert check_authorization(KEYS, b"Bearer primary", 0)
    assert check_authorization(KEYS, b"bearer secondary", 0)
    for bad in (None, b"", b"Bearer ", b"Bearer prim", b"primary", b"Basic primary"):
        assert not check_authorization(KEYS, bad, 0)


def test_token_valid_until_expiry() -> None:
    token, expiry = issue_token("main", SECRET, 60, now=1000)
    assert expiry == 1060
    header = f"Bearer {token}".encode()
    assert check_authorization(TOKENS, header, 1059)
    assert not check_authorization(TOKENS, header, 1060)


def test_token_tampered_or_foreign_is_refused() -> None:
    token, _ = issue_token("main", SECRET, 60, now=1000)
    payload, signature = token.split(".")
    other, _ = issue_token("other", SECRET, 60, now=1000)
    forged = other.split(".")[0] + "." + signature
    wrong_secret, _ = issue_token("main", b"another", 60, now=1000)
    for bad in (forged, other, wrong_secret, payload, token[:-2] + "AA", "x.y", "..."):
        assert not check_authorization(TOKENS, f"Bearer {bad}".encode(), 1001)


def test_none_mode_allows_all() -> None:
    assert check_authorization(EndpointRoute("main", auth_mode=AUTH_NONE), None, 0)
