"""The shared record store: current and historic versions of every resource."""

from .base import (
    ApplyResult,
    Prepared,
    RecordStore,
    Resource,
    Version,
    Write,
    content_hash,
    prepare,
    prepare_write,
    strip_meta,
)
from .sqlite import SqliteStore

__all__ = [
    "ApplyResult",
    "Prepared",
    "RecordStore",
    "Resource",
    "SqliteStore",
    "Version",
    "Write",
    "content_hash",
    "prepare",
    "prepare_write",
    "strip_meta",
]
