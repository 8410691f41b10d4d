"""ER7 codec: tokenizer, escapes, timestamps, MLLP framing, files, ACKs.

Knows nothing about FHIR or queues.
"""

from .escape import escape, unescape
from .message import DEFAULT_DELIMITERS, Delimiters, Field, HL7Error, Message, Segment, parse
from .timestamps import HL7Time, TimestampError, format_ts, parse_ts

__all__ = [
    "DEFAULT_DELIMITERS",
    "Delimiters",
    "Field",
    "HL7Error",
    "HL7Time",
    "Message",
    "Segment",
    "TimestampError",
    "escape",
    "format_ts",
    "parse",
    "parse_ts",
    "unescape",
]
