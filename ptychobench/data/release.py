"""The authors' release layout of PtychoBench, read and written::

    <root>/images/<uuid8>-object_ph_Niter400.png
    <root>/annotations/artifact_detection_split/{metadata.json,train.json,test.json}
    <root>/annotations/parameter_recommendation_split/{metadata.json,train.json,test.json}

Any ``*.json`` in a task directory but ``metadata.json`` is a split (train, val, test, …),
a JSON list of chat records (see ``ptychobench.data._chat``). Images are looked up by
file name under ``images/``.

Round trips are exact: a release written here reads back to the same samples, and a
published release read here is written back byte for byte, each JSON file in the layout
it was read in (indent, ASCII escapes, final newline). Writing refuses a sample the
layout cannot represent rather than change it silently.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from ptychobench import prompts
from ptychobench.data._chat import (
    Where,
    decode_record,
    encode_record,
    encode_sample,
    image_field,
    kind_of,
    peek_id,
)
from ptychobench.data.dataset import Dataset, JsonStyle
from ptychobench.data.errors import DataFormatError
from ptychobench.data.sample import Sample
from ptychobench.labels import Task, vocabulary

__all__ = [
    "METADATA_FILE",
    "RELEASE_VERSION",
    "TASK_DIRS",
    "encode_sample",
    "read_release",
    "release_metadata",
    "write_release",
]

logger = logging.getLogger(__name__)

TASK_DIRS: Final = {
    Task.DETECTION: "artifact_detection_split",
    Task.RECOMMENDATION: "parameter_recommendation_split",
}
METADATA_FILE: Final = "metadata.json"
RELEASE_VERSION: Final = "ptychobench-release/1"
_SPLIT_ORDER: Final = ("train", "val", "validation", "test")


def read_release(root: str | Path, *, strict_images: bool = True) -> Dataset:
    """Read a release directory.

    With ``strict_images=False`` a missing image file is not an error; ``Sample.image``
    then points where the file should be. Raises ``DataFormatError`` naming the file,
    record and field of anything malformed.
    """
    root = Path(root)
    annotations = root / "annotations"
    if not annotations.is_dir():
        raise DataFormatError("annotations", f"no annotations directory in {root}")
    present = [task for task in Task if (annotations / TASK_DIRS[task]).is_dir()]
    if not present:
        raise DataFormatError("annotations", f"neither of {sorted(TASK_DIRS.values())} found")
    by_task: dict[Task, dict[str, tuple[Sample, ...]]] = {task: {} for task in Task}
    metadata: dict[str, dict[str, Any]] = {}
    styles: dict[str, dict[str, JsonStyle]] = {}
    for task in present:
        task_dir = annotations / TASK_DIRS[task]
        styles[task.value] = {}
        meta_path = task_dir / METADATA_FILE
        if meta_path.is_file():
            rel = f"annotations/{TASK_DIRS[task]}/{METADATA_FILE}"
            content, styles[task.value][METADATA_FILE] = _load_json(meta_path, rel)
            if not isinstance(content, dict):
                raise DataFormatError(rel, f"expected an object, got {kind_of(content)}")
            metadata[task.value] = content
        seen: dict[str, str] = {}
        for path in _split_files(task_dir):
            rel = f"annotations/{TASK_DIRS[task]}/{path.name}"
            data, styles[task.value][path.name] = _load_json(path, rel)
            samples = _read_split(data, rel, task, path.stem, root / "images", strict_images)
            for index, sample in enumerate(samples):
                if sample.id in seen:
                    where = Where(rel, index, sample.id)
                    raise where.error(
                        "metadata.id", f"duplicate sample id, also in {seen[sample.id]}"
                    )
                seen[sample.id] = f"{path.name} record {index}"
            by_task[task][path.stem] = samples
    return Dataset(
        root=root,
        detection=by_task[Task.DETECTION],
        recommendation=by_task[Task.RECOMMENDATION],
        metadata=metadata,
        styles=styles,
    )


def _split_files(task_dir: Path) -> list[Path]:
    files = [p for p in task_dir.glob("*.json") if p.name != METADATA_FILE and p.is_file()]

    def key(path: Path) -> tuple[int, str]:
        rank = _SPLIT_ORDER.index(path.stem) if path.stem in _SPLIT_ORDER else len(_SPLIT_ORDER)
        return rank, path.stem

    return sorted(files, key=key)


def _load_json(path: Path, rel: str) -> tuple[Any, JsonStyle]:
    text = path.read_bytes().decode("utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(rel, f"not JSON: {exc.msg} (line {exc.lineno})") from None
    return data, _style_of(text, data)


def _style_of(text: str, data: Any) -> JsonStyle:
    """The ``json.dumps`` settings that reproduce ``text``, or the default ones."""
    newline = text.endswith("\n")
    body = text[:-1] if newline else text
    ensure_ascii = body.isascii() and not json.dumps(data, ensure_ascii=False).isascii()
    lines = body.split("\n", 2)
    indent = len(lines[1]) - len(lines[1].lstrip(" ")) if len(lines) > 1 else None
    style = JsonStyle(indent, ensure_ascii, newline)
    if _dumps(data, style) != text:
        logger.debug("JSON layout of a file not recognised; it will be rewritten indented")
        return JsonStyle(trailing_newline=newline)
    return style


def _dumps(data: Any, style: JsonStyle) -> str:
    text = json.dumps(data, indent=style.indent, ensure_ascii=style.ensure_ascii)
    return text + "\n" if style.trailing_newline else text


def _read_split(
    data: Any, rel: str, task: Task, split: str, images: Path, strict_images: bool
) -> tuple[Sample, ...]:
    if not isinstance(data, list):
        raise DataFormatError(rel, f"expected a list of samples, got {kind_of(data)}")
    samples = []
    reported = False
    for index, raw in enumerate(data):
        where = Where(rel, index, peek_id(raw))
        sample = decode_record(raw, task, split, index, where)
        if sample.image is not None:
            path = images / sample.image.name
            if strict_images and not path.is_file():
                message = f"image {path.name!r} not found in images/"
                raise where.error(image_field(raw, task, where), message)
            sample = sample.model_copy(update={"image": path})
        if not reported and not _reproduces(sample, task, split, index, raw):
            logger.warning("%s: record %d will not be written back byte for byte", rel, index)
            reported = True
        samples.append(sample)
    return tuple(samples)


def _reproduces(sample: Sample, task: Task, split: str, index: int, raw: Any) -> bool:
    try:
        record = encode_record(sample, task, split, index)
    except ValueError:
        return False
    return json.dumps(record) == json.dumps(raw)


def release_metadata(task: Task | str, splits: Mapping[str, Sequence[Sample]]) -> dict[str, Any]:
    """The ``metadata.json`` written for a task when the dataset carries none."""
    task = Task(task)
    counts = {}
    for name, samples in splits.items():
        per_label = {label: 0 for label in vocabulary(task)}
        for sample in samples:
            for label in sample.labels(task):
                per_label[label] += 1
        counts[name] = {"samples": len(samples), "labels": per_label}
    return {
        "task": task.value,
        "version": RELEASE_VERSION,
        "prompt_version": prompts.PROMPT_VERSION,
        "labels": list(vocabulary(task)),
        "counts": counts,
    }


def write_release(dataset: Dataset, root: str | Path) -> None:
    """Write a dataset in the release layout under ``root``.

    Images not already in ``root/images`` are copied there under their file names.
    Each task's ``metadata.json`` is the dataset's metadata for it, written as it is;
    where there is none, or it is one written here (its ``version`` is
    ``RELEASE_VERSION``), it is made afresh from the samples.

    Nothing is written when a sample cannot be represented (``ValueError``), when two
    different images share a file name (``ValueError``), or when a task directory holds
    split files the dataset does not have (``FileExistsError``: reading back would
    include them).
    """
    root = Path(root)
    files: dict[Path, str] = {}
    images: dict[str, Path] = {}
    for task in Task:
        splits = dataset.by_task(task)
        task_dir = root / "annotations" / TASK_DIRS[task]
        stale = (
            [p.name for p in _split_files(task_dir) if p.stem not in splits]
            if (task_dir.is_dir())
            else []
        )
        if stale:
            raise FileExistsError(f"{task_dir} holds split files not being written: {stale}")
        if not splits and task.value not in dataset.metadata:
            continue
        styles = dataset.styles.get(task.value, {})
        for name, samples in splits.items():
            if not name or name == METADATA_FILE[:-5] or "/" in name or "\\" in name:
                raise ValueError(f"{name!r} cannot be a split name")
            records = [encode_sample(s, task, name, i) for i, s in enumerate(samples)]
            style = styles.get(f"{name}.json", JsonStyle())
            files[task_dir / f"{name}.json"] = _dumps(records, style)
            for sample in samples:
                if sample.image is not None:
                    _add_image(images, sample.image)
        metadata = dataset.metadata.get(task.value)
        if not metadata or metadata.get("version") == RELEASE_VERSION:
            metadata = release_metadata(task, splits)  # ours: counts follow the samples
        style = styles.get(METADATA_FILE, JsonStyle())
        files[task_dir / METADATA_FILE] = _dumps(metadata, style)
    (root / "images").mkdir(parents=True, exist_ok=True)
    for name, source in images.items():
        target = root / "images" / name
        if not target.exists() or source.resolve() != target.resolve():
            shutil.copyfile(source, target)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))


def _add_image(images: dict[str, Path], path: Path) -> None:
    known = images.setdefault(path.name, path)
    same_file = known == path or known.resolve() == path.resolve()
    if not same_file and known.read_bytes() != path.read_bytes():
        raise ValueError(f"two different images are named {path.name!r}: {known}, {path}")
