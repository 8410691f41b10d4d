"""Deterministic FHIR resource ids from business identifiers.

Readable when every part is plain (``RX1-M000123``), otherwise a short stable
hash. Never random, never dependent on repetition order, so replaying the same
message yields the same ids (and a second PUT is a new version, not a copy).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

MAX_LEN = 64


def _stable(parts: tuple[str, ...]) -> str:
    if not parts:
        return ""
    if all(parts):  # readable when every part is non-empty and of [A-Za-z0-9.] only
        text = "".join(parts)
        if text.isascii():
            rest = text.replace(".", "")
            if not rest or rest.isalnum():
                readable = "-".join(parts)
                if len(readable) <= MAX_LEN:
                    return readable
    digest = hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]
    return f"h{digest}"


def fresh_id(*parts: str) -> str:
    """An id in ``[A-Za-z0-9-.]{1,64}`` determined only by ``parts``.

    For ids that name one message's own data (a result line, the message itself);
    ``stable_id`` is the same, memoised.
    """
    return _stable(tuple(map(str.strip, parts)))


# Memoised on the parts as given (bounded): a feed repeats its organisation, patient
# and order ids across messages.
stable_id = lru_cache(maxsize=65536)(fresh_id)
