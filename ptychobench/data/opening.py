"""Opening "a dataset" whatever its format: the one place that decides what a path is.

A path names one of:

- a **release** directory (the authors' layout, ``annotations/<task>_split/*.json`` and
  ``images/``; see ``ptychobench.data.release``);
- a **Label Studio export**: its JSON-MIN file, or a directory holding exactly one
  ``*.json`` export (and no ``annotations/``). Its images are looked up in the
  ``images`` directory given, else in an ``images/`` directory beside the export.
- a **snapshot list** (``<run>/snapshots/<name>.txt``, sample ids one per line): the
  release of those samples of a simulator run (``ptychobench.sim.generate.snapshot``),
  made once into ``<run>/snapshots/<name>/`` and read from there. A model trained on a
  corpus still being made names its data this way, and the data can be made again.

An export has no split, so it is split the way the paper split its set
(``paper_split``: 80/20 stratified by sample type, seed 0; recommendation = the samples
with an expert advice on each side). How it was split is recorded in each task's
``metadata["source"]["split"]`` (a merged dataset lists its ``metadata["sources"]``),
and ``LABELSTUDIO_SPLIT`` says it for records that keep only the path.

Several paths open as one dataset (``open_datasets``): each task's splits of the same
name concatenated in the order given. Sample ids must be unique per task across all of
them (a repeated id would be the same sample counted twice, or a test sample leaking
into training): a collision is refused, naming both datasets.

Every failure is a ``DataFormatError`` naming the path and what is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from ptychobench.data.dataset import Dataset
from ptychobench.data.errors import DataFormatError
from ptychobench.data.labelstudio import read_labelstudio_dataset
from ptychobench.data.release import read_release, release_metadata
from ptychobench.data.sample import Sample
from ptychobench.labels import Task

__all__ = [
    "LABELSTUDIO_SPLIT",
    "DatasetLocation",
    "describe",
    "locate_dataset",
    "open_dataset",
    "open_datasets",
]

_TEST_FRACTION: Final = 0.2
_SEED: Final = 0
LABELSTUDIO_SPLIT: Final[dict[str, Any]] = {
    "how": "ptychobench.data.paper_split, stratified by sample type",
    "test_fraction": _TEST_FRACTION,
    "seed": _SEED,
}
"""How a Label Studio export is split when it is opened with the defaults."""

Format = Literal["release", "labelstudio", "snapshot"]


@dataclass(frozen=True)
class DatasetLocation:
    """What a path turned out to be: a release directory, or a Label Studio export file
    with the directory of its images (None: none given and none beside it)."""

    format: Format
    path: Path
    images: Path | None = None


def locate_dataset(path: str | Path, images: str | Path | None = None) -> DatasetLocation:
    """Decide the format of ``path`` without reading the annotations."""
    path = Path(path)
    if not path.exists():
        raise DataFormatError(path, "no such file or directory")
    if path.is_dir() and (path / "annotations").is_dir():
        return DatasetLocation("release", path)
    if path.is_file() and path.suffix == ".txt" and path.parent.name == "snapshots":
        return DatasetLocation("snapshot", path)
    if path.is_dir():
        exports = sorted(p for p in path.glob("*.json") if p.is_file())
        if not exports:
            raise DataFormatError(
                path,
                "not a dataset: neither a release (no annotations/ directory) nor a "
                "Label Studio export (no *.json file)",
            )
        if len(exports) > 1:
            names = ", ".join(p.name for p in exports)
            raise DataFormatError(
                path, f"several JSON files ({names}): name the Label Studio export itself"
            )
        path = exports[0]
    elif path.suffix.lower() != ".json":
        raise DataFormatError(path, "not a dataset: a release directory or a JSON export")
    beside = path.parent / "images"
    found = Path(images) if images is not None else beside if beside.is_dir() else None
    return DatasetLocation("labelstudio", path, found)


def describe(path: str | Path) -> str:
    """One line that says what the dataset at ``path`` is, and for a Label Studio export
    how it is split (with the defaults of ``open_dataset``)."""
    location = locate_dataset(path)
    if location.format == "release":
        return f"{location.path}: a release directory"
    if location.format == "snapshot":
        return f"{location.path}: the snapshot of {location.path.parent.parent} it lists"
    return (
        f"{location.path}: a Label Studio export (images in {location.images}), split "
        f"{1 - _TEST_FRACTION:.0%} train / {_TEST_FRACTION:.0%} test by "
        f"{LABELSTUDIO_SPLIT['how']}, seed {_SEED}"
    )


def open_dataset(
    path: str | Path,
    images: str | Path | None = None,
    *,
    test_fraction: float = _TEST_FRACTION,
    seed: int = _SEED,
    strict_images: bool = True,
    require_images: bool = True,
) -> Dataset:
    """Read the dataset at ``path`` (see the module docstring for what it may be).

    ``images``, ``test_fraction`` and ``seed`` concern a Label Studio export only. With
    ``require_images`` an export whose images directory is not found is an error (the
    detection task and the retriever need the images); ``strict_images`` makes a missing
    image file an error.
    """
    location = locate_dataset(path, images)
    try:
        if location.format == "release":
            return read_release(location.path, strict_images=strict_images)
        if location.format == "snapshot":
            return read_release(_made_snapshot(location.path), strict_images=strict_images)
        if location.images is None and require_images:
            raise DataFormatError(
                location.path,
                f"no images directory: put the export's images in "
                f"{location.path.parent / 'images'} or name their directory",
            )
        if location.images is not None and not location.images.is_dir():
            raise DataFormatError(location.images, "the images directory does not exist")
        dataset = read_labelstudio_dataset(
            location.path,
            location.images,
            test_fraction=test_fraction,
            seed=seed,
            strict_images=strict_images,
        )
    except OSError as error:
        raise DataFormatError(location.path, f"cannot be read: {error}") from None
    except DataFormatError:
        raise
    except ValueError as error:  # e.g. repeated ids, which no split can handle
        raise DataFormatError(location.path, str(error)) from None
    note = {
        "format": "labelstudio",
        "export": str(location.path),
        "images": None if location.images is None else str(location.images),
        "split": {**LABELSTUDIO_SPLIT, "test_fraction": test_fraction, "seed": seed},
    }
    return _with_metadata(dataset, location.path.parent, "source", note)


def _made_snapshot(listing: Path) -> Path:
    """The release of the snapshot ``listing`` names, made first when it is missing or
    was made from another list (written beside, then moved in: a reader never sees half)."""
    import os
    import shutil

    from ptychobench.sim.generate import snapshot

    target = listing.with_suffix("")
    ids = listing.read_text()

    def made() -> bool:
        stamp = target / listing.name
        return stamp.is_file() and stamp.read_text() == ids

    if made():
        return target
    staging = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        snapshot(listing.parent.parent, staging, ids.split())
    except ValueError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise DataFormatError(listing, str(error)) from None
    (staging / listing.name).write_text(ids)
    if made():  # made meanwhile by another process, which may be reading it
        shutil.rmtree(staging, ignore_errors=True)
        return target
    shutil.rmtree(target, ignore_errors=True)  # a stale one, made from another list
    try:
        staging.rename(target)
    except OSError:  # made meanwhile by another process
        shutil.rmtree(staging, ignore_errors=True)
    return target


def open_datasets(paths: str | Path | Sequence[str | Path], **options: Any) -> Dataset:
    """One dataset or several as one (``options`` as for ``open_dataset``).

    A single path gives exactly what ``open_dataset`` gives. Several give each task's
    splits concatenated by name, in the order given (a split only some have holds theirs);
    a sample id seen twice in a task is a ``DataFormatError``.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise ValueError("no dataset given")
    seen: dict[Path, Path] = {}
    for path in map(Path, paths):
        if path.exists() and seen.setdefault(path.resolve(), path) is not path:
            raise DataFormatError(path, f"given twice (also as {seen[path.resolve()]})")
    opened = [(Path(path), open_dataset(path, **options)) for path in paths]
    if len(opened) == 1:
        return opened[0][1]
    by_task: dict[Task, dict[str, tuple[Sample, ...]]] = {task: {} for task in Task}
    for task in Task:
        owner: dict[str, Path] = {}
        for path, dataset in opened:
            for split in dataset.splits(task):
                samples = dataset.samples(task, split)
                for sample in samples:
                    if sample.id in owner:
                        raise DataFormatError(
                            path,
                            f"sample id {sample.id!r} ({task.value}) is also in "
                            f"{owner[sample.id]}: datasets used together need distinct ids",
                        )
                    owner[sample.id] = path
                by_task[task][split] = by_task[task].get(split, ()) + samples
    merged = Dataset(detection=by_task[Task.DETECTION], recommendation=by_task[Task.RECOMMENDATION])
    sources = [{"path": str(path), **_source(dataset)} for path, dataset in opened]
    return _with_metadata(merged, None, "sources", sources)


def _with_metadata(dataset: Dataset, root: Path | None, key: str, value: Any) -> Dataset:
    """The dataset with each task's metadata made from its samples (as ``write_release``
    makes it, so writing the dataset out stays correct) plus where it came from."""
    return Dataset(
        root=root,
        detection=dataset.detection,
        recommendation=dataset.recommendation,
        metadata={
            task.value: {**release_metadata(task, dataset.by_task(task)), key: value}
            for task in Task
        },
    )


def _source(dataset: Dataset) -> dict[str, Any]:
    """How one source's splits were made (only an export's were made here)."""
    for meta in dataset.metadata.values():
        source = meta.get("source")
        if isinstance(source, dict) and source.get("format") == "labelstudio":
            return {"format": "labelstudio", "split": source["split"]}
    return {"format": "release"}
