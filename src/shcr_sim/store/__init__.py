"""The shared record store: current and historic versions of every resource."""

from .base import ApplyResult, RecordStore, Resource, Version, Write, content_hash, strip_meta
from .sqlite import SqliteStore

__all__ = [
    "ApplyResult",
    "RecordStore",
    "Resource",
    "SqliteStore",
    "Version",
    "Write",
    "content_hash",
    "strip_meta",
]
