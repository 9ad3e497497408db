"""Masking advertisers' postback tokens by value (SPEC "Postback endpoint", guarantees).

A token can reach the postback log under any name (``Secure=``, ``secret=``, a partner's
own macro), as the ``transaction_id``, in the user agent or in a rejection's message
(``unknown_event`` quotes the ``event_name`` sent). Masking by parameter name misses all of
those, so the log masks by value: every occurrence of any advertiser's current token, in
any text it stores, becomes ``mask_token(token)`` (its first 4 characters and dots).

The tokens come from ``offers.definitions``: the cache of the definitions version the
request was judged by, so a rotated token is masked from the first request that sees the
rotation on. Looking for them costs next to nothing on a normal postback: a value shorter
than the shortest token is only looked up in a set, and longer text is only searched
within runs of the tokens' alphabet (``[A-Za-z0-9_-]`` for generated tokens) that are at
least as long as a token.
"""

import functools
import re
from collections.abc import Iterable

from offers.definitions import cached_definitions, current_version, definitions
from offers.tokens import mask_token

# The characters of generated tokens (secrets.token_urlsafe).
_URLSAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class TokenMask:
    """Replaces every occurrence of any of ``tokens`` in a text with its masked form."""

    __slots__ = ("_tokens", "_lengths", "_shortest", "_runs")

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = frozenset(token for token in tokens if token)
        # Longest first: where two tokens start at one place, the longer one is masked.
        self._lengths = sorted({len(token) for token in self._tokens}, reverse=True)
        self._shortest = min(self._lengths, default=0)
        self._runs: re.Pattern[str] | None = None
        if self._tokens and all(set(token) <= _URLSAFE for token in self._tokens):
            self._runs = re.compile(rf"[A-Za-z0-9_-]{{{self._shortest},}}")

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def __call__(self, text: str) -> str:
        """``text`` with every token in it masked."""
        if not self._tokens or len(text) < self._shortest:
            return text
        if text in self._tokens:
            return mask_token(text)
        if self._runs is None:
            return self._masked_within(text)
        # A token lies wholly inside one run of its alphabet: only such runs are searched.
        return self._runs.sub(lambda run: self._masked_within(run.group()), text)

    def _masked_within(self, text: str) -> str:
        pieces: list[str] = []
        start = position = 0
        end = len(text)
        while position <= end - self._shortest:
            for length in self._lengths:
                candidate = text[position : position + length]
                if len(candidate) == length and candidate in self._tokens:
                    pieces += [text[start:position], mask_token(candidate)]
                    position = start = position + length
                    break
            else:
                position += 1
        if not pieces:
            return text
        pieces.append(text[start:])
        return "".join(pieces)


NO_TOKENS = TokenMask(())


@functools.lru_cache(maxsize=8)
def _mask_of(tokens: frozenset[str]) -> TokenMask:
    # Keyed by the set itself (a frozenset caches its hash): one TokenMask per version.
    return TokenMask(tokens)


def token_mask(*, fresh: bool = False) -> TokenMask:
    """The mask of every advertiser's current token.

    By default the tokens of the definitions this process judged its last postback by (on
    PostgreSQL, exactly the version the current request read, once it got past the checks
    that read nothing). ``fresh=True`` reads the current definitions version first (one
    small query), for a request that read nothing: one rejected at checks 1 and 2, or with
    an unknown token. On SQLite every call reads the tokens (there is no version to cache
    them by).
    """
    defs = None if fresh else cached_definitions()
    if defs is None:
        defs = definitions(version=current_version())
    return _mask_of(defs.tokens())


def known_token_mask() -> TokenMask:
    """The mask of the tokens this process has loaded already, without any query (for log
    filters: a log call must never wait on the database). ``NO_TOKENS`` before any."""
    defs = cached_definitions()
    tokens = defs.cached_tokens() if defs is not None else None
    return _mask_of(tokens) if tokens else NO_TOKENS
