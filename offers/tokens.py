"""Advertiser postback tokens: generation, digest for lookups, masking for display and logs."""

import hashlib
import secrets


def generate_postback_token() -> str:
    """A URL-safe token with 256 bits of randomness (43 characters)."""
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The SHA-256 hex digest under which a token is looked up.

    Looking a token up by its digest keeps the database's comparison away from the secret
    itself; the final comparison of the token is done with ``hmac.compare_digest``.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def mask_token(token: str | None) -> str:
    """Show at most the first 4 characters: enough to recognise a token, never to use it."""
    if not token:
        return ""
    if len(token) <= 8:
        return "•" * len(token)
    return f"{token[:4]}{'•' * 8}"
