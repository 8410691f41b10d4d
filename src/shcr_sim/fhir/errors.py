"""The one exception the converter raises for input it cannot turn into FHIR."""

from __future__ import annotations


class ConversionError(ValueError):
    """Names the message, segment and field at fault, and why.

    ``field`` is a path such as ``PID-3`` (or empty when the fault is the whole
    message); ``str(exc)`` reads ``<message id> <field>: <reason>``.
    """

    def __init__(self, message_id: str, segment: str, field: str | int, reason: str) -> None:
        if isinstance(field, int):
            field = f"{segment}-{field}" if field else ""
        self.message_id = message_id
        self.segment = segment
        self.field = field
        self.reason = reason
        where = field or segment
        super().__init__(f"{message_id or '?'} {where}: {reason}" if where else
                         f"{message_id or '?'}: {reason}")

    def __reduce__(self):  # picklable across worker processes
        return (ConversionError, (self.message_id, self.segment, self.field, self.reason))
