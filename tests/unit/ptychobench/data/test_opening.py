"""`open_dataset`: whatever a user names (a release directory, a Label Studio export or a
directory holding one) opens the same way; anything else is one clear error."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ptychobench.data import (
    LABELSTUDIO_SPLIT,
    DataFormatError,
    locate_dataset,
    open_dataset,
    open_datasets,
    read_release,
)
from ptychobench.data.opening import describe
from ptychobench.labels import Task


def test_a_release_directory_opens_as_read_release(handmade: Callable[..., Path]) -> None:
    root = handmade("theirs")
    assert locate_dataset(root).format == "release"
    dataset = open_dataset(root)
    assert dataset == read_release(root)
    assert [len(dataset.samples(Task.DETECTION, s)) for s in ("train", "test")] == [9, 3]
    assert describe(root) == f"{root}: a release directory"


@pytest.mark.parametrize("name", ["directory", "file"])
def test_a_labelstudio_export_is_split_as_the_paper_did_and_says_so(
    handmade: Callable[..., Path], name: str
) -> None:
    root = handmade("export", kind="labelstudio")
    path = root if name == "directory" else root / "export.json"
    location = locate_dataset(path)
    assert (location.format, location.path, location.images) == (
        "labelstudio",
        root / "export.json",
        root / "images",
    )
    dataset = open_dataset(path)
    train = dataset.samples(Task.DETECTION, "train")
    test = dataset.samples(Task.DETECTION, "test")
    assert (len(train), len(test)) == (9, 3)
    assert all(s.image is not None and s.image.parent == root / "images" for s in train)
    # the recommendation split is the samples with an advice, on each side
    advised = {s.id for s in (*train, *test) if s.caption_param}
    recommendation = {
        s.id for split in ("train", "test") for s in dataset.samples("recommendation", split)
    }
    assert recommendation == advised
    source = dataset.metadata["detection"]["source"]
    assert source["format"] == "labelstudio"
    assert source["split"] == LABELSTUDIO_SPLIT
    assert dataset.metadata["detection"]["counts"]["train"]["samples"] == 9
    assert "split 80% train / 20% test by ptychobench.data.paper_split" in describe(path)


def test_an_export_without_its_images_is_refused_unless_only_counted(
    handmade: Callable[..., Path], tmp_path: Path
) -> None:
    root = handmade("export", kind="labelstudio")
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "export.json").write_bytes((root / "export.json").read_bytes())
    with pytest.raises(DataFormatError, match="no images directory"):
        open_dataset(bare)
    counted = open_dataset(bare, require_images=False)
    assert all(s.image is None for s in counted.samples("detection", "train"))
    named = open_dataset(bare / "export.json", root / "images")
    assert named.detection == open_dataset(root).detection


def _not_a_dataset(kind: str, directory: Path) -> Path:
    """A path a user might name that holds no dataset."""
    if kind == "missing":
        return directory / "nothing"
    if kind == "not-json":
        (directory / "notes.txt").write_text("x")
        return directory / "notes.txt"
    if kind == "two-exports":
        for name in ("a.json", "b.json"):
            (directory / name).write_text("[]")
    if kind == "broken-json":
        (directory / "export.json").write_text("{not json")
        (directory / "images").mkdir()
    return directory


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("missing", "nothing: no such file or directory"),
        ("empty-dir", "neither a release (no annotations/ directory) nor a Label Studio"),
        ("not-json", "notes.txt: not a dataset"),
        ("two-exports", "several JSON files (a.json, b.json)"),
        ("broken-json", "export.json: not JSON"),
    ],
)
def test_what_is_not_a_dataset_is_one_clear_error(tmp_path: Path, kind: str, message: str) -> None:
    path = _not_a_dataset(kind, tmp_path)
    with pytest.raises(DataFormatError) as caught:
        open_dataset(path)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_broken_release_names_file_and_record(handmade: Callable[..., Path]) -> None:
    root = handmade("theirs")
    split = root / "annotations" / "artifact_detection_split" / "train.json"
    records = json.loads(split.read_text())
    records[0]["messages"] = "?"
    split.write_text(json.dumps(records))
    with pytest.raises(DataFormatError, match=r"train.json: record 0 .*messages"):
        open_dataset(root)


def test_several_datasets_open_as_one_and_refuse_a_repeated_id(
    handmade: Callable[..., Path],
) -> None:
    a = handmade("a", seed=1)
    b = handmade("b", kind="labelstudio", seed=2)
    one = open_datasets([a])
    assert one == open_dataset(a)
    both = open_datasets([a, b])
    for task in Task:
        for split in ("train", "test"):
            expected = (
                *open_dataset(a).samples(task, split),
                *open_dataset(b).samples(task, split),
            )
            assert both.samples(task, split) == expected
    sources = both.metadata["detection"]["sources"]
    assert [s["format"] for s in sources] == ["release", "labelstudio"]
    assert sources[1]["split"] == LABELSTUDIO_SPLIT

    with pytest.raises(DataFormatError, match="given twice"):
        open_datasets([a, b, a.parent / "." / a.name])
    twin = handmade("a-again", seed=1)
    with pytest.raises(DataFormatError, match=r"is also in .*a: datasets used together need"):
        open_datasets([a, twin])
