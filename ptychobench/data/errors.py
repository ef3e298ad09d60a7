"""The one error every dataset reader raises.

A malformed annotation file is found by a person, who then has to open the file and
fix one record; so the error names the file, the record (its index and, when known, its
id), the field inside the record and what was wrong with it::

    ValueError
    └── DataFormatError   file, record, field, reason

It is a ``ValueError`` so callers that only care that the input was bad can catch that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class DataFormatError(ValueError):
    """A dataset file does not have the expected format.

    ``str(error)`` reads e.g. ``annotations/artifact_detection_split/train.json: record
    12 (id 'abc'): field 'messages[1].content': expected a list``.
    """

    def __init__(
        self,
        path: str | Path,
        reason: str,
        *,
        record: int | str | None = None,
        record_id: str | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.reason = reason
        self.record = record
        self.record_id = record_id
        self.field = field
        super().__init__(self._message())

    def _message(self) -> str:
        parts = [self.path]
        if self.record is not None:
            shown = repr(self.record) if isinstance(self.record, str) else str(self.record)
            where = f"record {shown}"
            if self.record_id is not None and self.record_id != self.record:
                where += f" (id {self.record_id!r})"
            parts.append(where)
        if self.field is not None:
            parts.append(f"field {self.field!r}")
        parts.append(self.reason)
        return ": ".join(parts)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments do not survive the default exception pickling.
        state = {"record": self.record, "record_id": self.record_id, "field": self.field}
        return (_rebuild, (self.path, self.reason, state))


def _rebuild(path: str, reason: str, state: dict[str, Any]) -> DataFormatError:
    return DataFormatError(path, reason, **state)
