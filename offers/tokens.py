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


def may_see_tokens(user: object) -> bool:
    """Whole tokens (and URLs carrying them) are for those who manage advertisers or offers;
    analysts (view only) get them masked everywhere."""
    has_perm = getattr(user, "has_perm", None)
    return bool(
        has_perm and (has_perm("offers.change_advertiser") or has_perm("offers.change_offer"))
    )


def url_as_seen_by(user: object, url: str, token: str) -> str:
    """A generated URL carrying ``token``, as ``user`` may see it (masked unless
    ``may_see_tokens``)."""
    if may_see_tokens(user):
        return url
    return url.replace(token, mask_token(token))
