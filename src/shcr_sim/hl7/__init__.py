"""ER7 codec: tokenizer, escapes, timestamps, MLLP framing, files, ACKs.

Knows nothing about FHIR or queues.
"""

from .ack import ack_mode, build_ack, wants_ack
from .escape import escape, unescape
from .files import RawMessage, iter_messages, write_batch, write_messages
from .message import DEFAULT_DELIMITERS, Delimiters, Field, HL7Error, Message, Segment, parse
from .mllp import END, START, MLLPDecoder, MLLPError, frame
from .timestamps import HL7Time, TimestampError, format_ts, parse_ts

__all__ = [
    "DEFAULT_DELIMITERS",
    "END",
    "START",
    "Delimiters",
    "Field",
    "HL7Error",
    "HL7Time",
    "MLLPDecoder",
    "MLLPError",
    "Message",
    "RawMessage",
    "Segment",
    "TimestampError",
    "ack_mode",
    "build_ack",
    "escape",
    "format_ts",
    "frame",
    "iter_messages",
    "parse",
    "parse_ts",
    "unescape",
    "wants_ack",
    "write_batch",
    "write_messages",
]
