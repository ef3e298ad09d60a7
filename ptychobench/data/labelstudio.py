"""The expert annotations as Label Studio exports them ("JSON-MIN": one flat record per
reconstruction), read and written.

A record has ``id``, ``captioning`` (the image path, e.g. ``/data/upload/1/<file>.png``;
only the file name matters, looked up in ``images_dir``), ``beam_choice``,
``instrument_choice``, ``sample_text`` (sample type), ``package_choice``,
``artifact_choice`` (a list of labels, one label, or ``{"choices": [...]}``),
``caption_obj`` (expert description), ``caption_param`` (expert advice) and bookkeeping
(``recon_path_text``, ``annotator``, ``annotation_id``, ``created_at``, ``updated_at``,
``lead_time``) that is kept in ``Sample.extra`` as it is. The option letters are not in
the export: they come from the advice through ``ptychobench.captions``, as the paper's
ground truth did.

Reading keeps in ``Sample.extra["labelstudio"]`` what writing needs to reproduce a
record (key order, raw values our encoding would change), so a read export is written
back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from ptychobench import captions
from ptychobench.data._fields import (
    RESERVED_EXTRA,
    Field,
    FieldValueError,
    image_name,
    read_flat,
    write_flat,
)
from ptychobench.data.dataset import Dataset, paper_split
from ptychobench.data.errors import DataFormatError
from ptychobench.data.sample import Sample

LAYOUT_KEY: Final = "labelstudio"
"""``Sample.extra`` key of what a byte-exact write-back needs beyond the sample's fields."""

FIELDS: Final = (
    Field("id", ("id",), "id"),
    Field("image", ("captioning",), "file"),
    Field("beam", ("beam_choice",)),
    Field("instrument", ("instrument_choice",)),
    Field("sample_type", ("sample_text",)),
    Field("package", ("package_choice",)),
    Field("artifacts", ("artifact_choice",), "artifacts"),
    Field("caption_obj", ("caption_obj",)),
    Field("caption_param", ("caption_param",)),
    # Not Label Studio fields: written only for samples whose values need them.
    Field("options", ("options",), "options", always=False),
    Field("parameters", ("parameters",), always=False),
)
_ATTRS: Final = tuple(field.attr for field in FIELDS)


def _implied(values: dict[str, Any]) -> dict[str, Any]:
    """What a reader recovers for each field without its key."""
    implied = {attr: Sample.model_fields[attr].default for attr in _ATTRS if attr != "id"}
    implied["id"] = None
    implied["options"] = _options(values.get("caption_param", ""))
    return implied


def _options(advice: str) -> tuple[str, ...]:
    return captions.letters_from_advice(advice) if advice.strip() else ()


def read_labelstudio(
    path: str | Path, images_dir: str | Path | None = None, *, strict_images: bool = True
) -> list[Sample]:
    """The samples of a JSON-MIN export.

    With ``images_dir`` each image is looked up there by file name (a missing file is a
    ``DataFormatError`` unless ``strict_images=False``; ``Sample.image`` then points
    where it should be); without it ``Sample.image`` is ``None`` and the path is kept
    for writing back. Raises ``DataFormatError`` naming the record and field of
    anything malformed, e.g. an artifact label outside the 12.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, f"not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, list):
        raise DataFormatError(path, "expected a list of records")
    images = Path(images_dir) if images_dir is not None else None
    return [_read_record(raw, path, index, images, strict_images) for index, raw in enumerate(data)]


def _read_record(
    raw: Any, path: Path, index: int, images: Path | None, strict_images: bool
) -> Sample:
    record_id = raw.get("id") if isinstance(raw, dict) else None
    shown_id = str(record_id) if isinstance(record_id, str | int) else None

    def error(field: str | None, reason: str) -> DataFormatError:
        return DataFormatError(path, reason, record=index, record_id=shown_id, field=field)

    if not isinstance(raw, dict):
        raise error(None, "expected an object")
    if "id" not in raw:
        raise error("id", "missing")
    try:
        flat = read_flat(raw, FIELDS)
    except FieldValueError as exc:
        raise error(exc.key, exc.reason) from None
    implied = _implied(flat.values)
    values = {**implied, **flat.values}
    name = values["image"]
    layout: dict[str, Any] = {}
    raw_values = dict(flat.raw)
    image = None
    if name is not None and images is not None:
        image = images / name
        if strict_images and not image.is_file():
            raise error("captioning", f"image {name!r} not found in {images}")
    elif name is not None:
        raw_values["captioning"] = raw["captioning"]
    extra = {key: value for key, value in flat.unknown.items() if key not in RESERVED_EXTRA}
    shadowed = {key: value for key, value in flat.unknown.items() if key in RESERVED_EXTRA}
    if shadowed:
        layout["shadowed"] = shadowed
    default_keys = list(write_flat(values, implied, FIELDS, {**extra, **shadowed}))
    if flat.keys != default_keys:
        layout["keys"] = flat.keys
    if raw_values:
        layout["raw"] = raw_values
    if layout:
        extra[LAYOUT_KEY] = layout
    fields = {attr: values[attr] for attr in _ATTRS if attr != "image"}
    return Sample(**fields, image=image, extra=extra)


def labelstudio_record(sample: Sample) -> dict[str, Any]:
    """The JSON-MIN record of a sample; ``ValueError`` when reading it back would change
    the sample's fields."""
    record = _record(sample)
    back = _values(_read_record(record, Path("<record>"), 0, None, False))
    values = _values(sample)
    changed = [attr for attr in _ATTRS if back[attr] != values[attr]]
    if changed:
        raise ValueError(f"sample {sample.id!r}: a Label Studio record cannot hold {changed}")
    return record


def _values(sample: Sample) -> dict[str, Any]:
    layout = _layout(sample)
    values = {attr: getattr(sample, attr) for attr in _ATTRS if attr != "image"}
    kept = layout.get("raw", {}).get("captioning")
    if sample.image is not None:
        values["image"] = sample.image.name
    else:
        values["image"] = image_name(kept) if isinstance(kept, str) else None
    return values


def _layout(sample: Sample) -> dict[str, Any]:
    layout = sample.extra.get(LAYOUT_KEY) or {}
    if not isinstance(layout, dict):
        raise ValueError(f"sample {sample.id!r}: extra[{LAYOUT_KEY!r}] must be an object")
    return layout


def _record(sample: Sample) -> dict[str, Any]:
    layout = _layout(sample)
    values = _values(sample)
    unknown = {key: value for key, value in sample.extra.items() if key not in RESERVED_EXTRA}
    unknown.update(layout.get("shadowed", {}))
    return write_flat(
        values, _implied(values), FIELDS, unknown, layout.get("keys"), layout.get("raw")
    )


def write_labelstudio(
    samples: Iterable[Sample],
    path: str | Path,
    *,
    indent: int | None = 2,
    ensure_ascii: bool = False,
) -> None:
    """Write samples as a JSON-MIN export (images are referenced, not copied)."""
    records = [labelstudio_record(sample) for sample in samples]
    text = json.dumps(records, indent=indent, ensure_ascii=ensure_ascii) + "\n"
    Path(path).write_bytes(text.encode("utf-8"))


def read_labelstudio_dataset(
    path: str | Path,
    images_dir: str | Path | None = None,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    strict_images: bool = True,
) -> Dataset:
    """A Label Studio export split the way the paper did (see ``paper_split``)."""
    samples = read_labelstudio(path, images_dir, strict_images=strict_images)
    return paper_split(samples, test_fraction, seed)
