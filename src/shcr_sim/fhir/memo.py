"""Bounded memo tables for the converter's pure sub-results.

A feed repeats itself: the same patient's PID, the same test codes, the same
clinicians arrive in message after message. Mapping functions whose result
depends only on raw text, the mapping config, the sending trust and the
delimiters remember their result here, keyed by a ``Memo`` token that stands
for that (config, trust, delimiters) combination plus the raw text.

Rules that keep this safe:

- every table is bounded (cleared when full), so a long replay keeps RSS flat;
- a cached dict or list is stored as JSON bytes and every hit returns a fresh
  copy, so no two resources (or two messages) ever share a mutable dict; other
  values are immutable (strings, numbers, tuples of them) and stored as they are;
- a ``MappingConfig`` is treated as immutable once loaded (it is a frozen
  dataclass and nothing edits its tables); a different config object gets a
  different token, so its results are never mixed up with another's.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from ..hl7 import Delimiters
from .config import MappingConfig

MAX_ENTRIES = 4096  # per table unless it says otherwise; cleared when it fills up
PATIENT_ENTRIES = 8192  # per-patient tables (PID, PD1): a few MB each at most
MAX_MEMOS = 64

_tokens = itertools.count(1)


class Memo:
    """One (mapping config, trust ODS code, delimiters) combination and its token."""

    __slots__ = ("config", "ods", "delims", "token")

    def __init__(self, config: MappingConfig, ods: str, delims: Delimiters) -> None:
        self.config = config  # held, so its id cannot be reused while the memo lives
        self.ods = ods
        self.delims = delims
        self.token = next(_tokens)  # never reused: stale table entries are never hit


_memos: dict[tuple[int, int, str], Memo] = {}


def memo_for(config: MappingConfig, ods: str, delims: Delimiters) -> Memo:
    """The memo of this combination (made on first use; at most MAX_MEMOS kept)."""
    key = (id(config), id(delims), ods)
    memo = _memos.get(key)
    if memo is None or memo.config is not config or memo.delims is not delims:
        if len(_memos) >= MAX_MEMOS:
            _memos.clear()
        memo = _memos[key] = Memo(config, ods, delims)
    return memo


def put(table: dict, key: Any, value: Any, limit: int = MAX_ENTRIES) -> None:
    """Store an immutable value (tuples of strings and the like) as it is."""
    if len(table) >= limit:
        table.clear()
    table[key] = value


def remember(table: dict, key: Any, value: Any, limit: int = MAX_ENTRIES) -> None:
    """Store ``value`` (JSON-like) as bytes; values JSON cannot hold are not cached."""
    try:
        # a copy: orjson's own result keeps its whole output buffer (~4 KB) allocated
        frozen = bytes(memoryview(orjson.dumps(value)))
    except orjson.JSONEncodeError:
        return
    if len(table) >= limit:
        table.clear()
    table[key] = frozen


def thaw(frozen: bytes) -> Any:
    """A fresh copy of a remembered value."""
    return orjson.loads(frozen)
