"""Flat JSON objects ↔ sample fields: the release's ``metadata`` block and a Label Studio row.

Both formats keep a sample's fields in a flat object whose keys come in several
spellings (``sample_type`` / ``sample_text``, ``instrument`` / ``instrument_choice``).
Reading remembers what writing needs to give the same bytes back: the keys in their
order and spelling, and the raw value of a key where our encoding of the value would
differ (an integer id, a label list given as one string). Writing a sample made here
uses canonical keys and adds an optional key only where a reader could not otherwise
recover the field, so files stay free of redundant keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Final, Literal

from ptychobench import parsing
from ptychobench.labels import Task, canonical_order

Kind = Literal["id", "text", "artifacts", "options", "image", "file"]
"""``image`` is written as ``images/<name>`` (release), ``file`` as the bare name."""

RESERVED_EXTRA: Final = frozenset({"release", "labelstudio"})
"""``Sample.extra`` keys where the readers keep a format's layout; never written as data."""


class FieldValueError(ValueError):
    """A key of a flat object holds a value of the wrong shape; callers add file and record."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


@dataclass(frozen=True)
class Field:
    """One sample attribute stored under one of several keys (the first is written)."""

    attr: str
    keys: tuple[str, ...]
    kind: Kind = "text"
    always: bool = True
    """Written for samples made here even when a reader would recover it without the key."""


@dataclass(frozen=True)
class Flat:
    """A flat object, read."""

    values: dict[str, Any]
    """Sample attribute → decoded value, for the fields present."""
    unknown: dict[str, Any]
    """Keys no field claimed (including a second spelling of a field already read)."""
    keys: list[str]
    """Every key, in file order."""
    raw: dict[str, Any]
    """Key → raw value, where encoding the decoded value would not give it back."""


def image_name(path: str) -> str:
    """The file name of an image path as any annotation tool wrote it (POSIX or Windows)."""
    return PurePosixPath(path.replace("\\", "/")).name


def match_label(item: str, task: Task) -> str | None:
    """One label or option letter, matched robustly, or ``None`` when it is none of them."""
    text = f"<answer>[{item}]</answer>" if task is Task.DETECTION else f"<answer>{item}</answer>"
    result = parsing.parse_answer(text, task, mode="robust")
    if result.ok and len(result.labels) == 1:
        return str(result.labels[0])
    return None


def decode(kind: Kind, raw: Any) -> Any:
    """The field value of a raw JSON value; ``ValueError`` with the reason when it is not."""
    if kind == "id":
        if isinstance(raw, str) or (isinstance(raw, int) and not isinstance(raw, bool)):
            return str(raw)
        raise ValueError("expected a string or an integer")
    if kind == "text":
        if raw is None:
            return ""
        if isinstance(raw, str):
            return raw
        raise ValueError("expected a string")
    if kind in ("image", "file"):
        if raw is None or (isinstance(raw, str) and image_name(raw)):
            return None if raw is None else image_name(raw)
        raise ValueError("expected an image path")
    task = Task.DETECTION if kind == "artifacts" else Task.RECOMMENDATION
    return decode_labels(raw, task)


def decode_labels(raw: Any, task: Task) -> tuple[str, ...]:
    """Labels given as a list, one comma-separated string or Label Studio's
    ``{"choices": [...]}``; every item must match a label of the task's vocabulary."""
    if isinstance(raw, dict) and set(raw) == {"choices"}:
        raw = raw["choices"]
    if isinstance(raw, str):
        items = [item.strip() for item in raw.split(",")]
    elif isinstance(raw, list) and all(isinstance(item, str) for item in raw):
        items = [item.strip() for item in raw]
    else:
        raise ValueError("expected a list of labels or a comma-separated string")
    labels = []
    for item in items:
        if not item:
            continue
        label = match_label(item, task)
        if label is None:
            what = "artifact label" if task is Task.DETECTION else "option letter"
            raise ValueError(f"unknown {what} {item!r}")
        labels.append(label)
    return tuple(canonical_order(labels, task))


def encode(kind: Kind, value: Any) -> Any:
    """The canonical JSON value of a field value."""
    if kind in ("artifacts", "options"):
        return list(value)
    if kind == "image":
        return None if value is None else f"images/{value}"
    return value


def _same(kind: Kind, raw: Any, value: Any) -> bool:
    try:
        return bool(decode(kind, raw) == value)
    except ValueError:
        return False


def read_flat(mapping: Mapping[str, Any], fields: Sequence[Field]) -> Flat:
    """Decode the fields of a flat object; ``FieldValueError`` names a bad key."""
    by_key = {key: field for field in fields for key in field.keys}
    values: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    raw: dict[str, Any] = {}
    for key, value in mapping.items():
        field = by_key.get(key)
        if field is None or field.attr in values:
            unknown[key] = value
            continue
        try:
            values[field.attr] = decode(field.kind, value)
        except ValueError as exc:
            raise FieldValueError(key, str(exc)) from None
        if encode(field.kind, values[field.attr]) != value:
            raw[key] = value
    return Flat(values, unknown, list(mapping), raw)


def write_flat(
    values: Mapping[str, Any],
    implied: Mapping[str, Any],
    fields: Sequence[Field],
    unknown: Mapping[str, Any],
    keys: Sequence[str] | None = None,
    raw: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A flat object for ``values``.

    ``implied`` holds what a reader recovers for each field when its key is absent.
    ``keys`` (the key order and spelling of a file that was read) lists the keys to
    write; without it the canonical keys of the ``always`` fields are written. Either
    way a field the reader could not otherwise recover is added, and the ``unknown``
    keys follow. ``raw`` values are written where they still decode to the value.
    """
    by_key = {key: field for field in fields for key in field.keys}
    raw = raw or {}
    if keys is None:
        order = [f.keys[0] for f in fields if f.always or values[f.attr] != implied[f.attr]]
    else:
        order = list(keys)
        covered = {by_key[key].attr for key in keys if key in by_key and key not in unknown}
        order += [
            f.keys[0] for f in fields if f.attr not in covered and values[f.attr] != implied[f.attr]
        ]
    order += [key for key in unknown if key not in order]
    out: dict[str, Any] = {}
    for key in order:
        if key in unknown:
            out[key] = unknown[key]
        elif key in by_key:
            field = by_key[key]
            value = values[field.attr]
            keep = key in raw and _same(field.kind, raw[key], value)
            out[key] = raw[key] if keep else encode(field.kind, value)
    return out
