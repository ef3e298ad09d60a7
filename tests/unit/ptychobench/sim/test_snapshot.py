"""`ptychoagent sim snapshot`: a release of the samples a run still going has finished,
made from real committed corpus units (no reconstruction)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ptychoagent.cli import app
from ptychobench.captions import letters_from_advice
from ptychobench.data import read_release
from ptychobench.labels import Task
from ptychobench.sim.generate import snapshot

CORPUS = Path(__file__).resolve().parents[4] / "data" / "corpus"
runner = CliRunner()


@pytest.fixture(scope="module")
def part_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the first 40 committed corpus units: a run stopped part-way."""
    run = tmp_path_factory.mktemp("run")
    shutil.copy(CORPUS / "sim-settings.json", run)
    (run / "work" / "detect").mkdir(parents=True)
    (run / "work" / "phase").mkdir()
    units = sorted((CORPUS / "work" / "detect").glob("*.json"))[:40]
    assert len(units) == 40, "the committed corpus has fewer than 40 units"
    for path in units:
        shutil.copy(path, run / "work" / "detect")
        record = json.loads(path.read_text())
        if not record.get("failed"):
            shutil.copy(CORPUS / "work" / "phase" / record["image"], run / "work" / "phase")
    return run


def test_a_snapshot_is_a_release_of_the_finished_samples(part_run: Path, tmp_path: Path) -> None:
    dataset = snapshot(part_run, tmp_path / "snap")
    records = {
        r["id"]: r
        for p in (part_run / "work" / "detect").glob("*.json")
        if not (r := json.loads(p.read_text())).get("failed")
    }
    written = read_release(tmp_path / "snap")
    detection = [s for split in written.by_task(Task.DETECTION).values() for s in split]
    assert {s.id for s in detection} == set(records)
    for name, split in dataset.detection.items():  # the images are copied into the release
        assert [s.model_copy(update={"image": None}) for s in written.detection[name]] == [
            s.model_copy(update={"image": None}) for s in split
        ]
    for sample in detection:
        assert sample.image is not None
        assert sample.image.is_file()
        assert sorted(sample.artifacts) == sorted(records[sample.id]["artifacts"])
    advised = [s for split in written.by_task(Task.RECOMMENDATION).values() for s in split]
    assert advised, "no recommendation sample was chosen"
    for sample in advised:
        assert sorted(sample.options) == sorted(records[sample.id]["letters"])
        assert letters_from_advice(sample.caption_param) == sample.options
    counts = json.loads((tmp_path / "snap" / "metadata.json").read_text())["counts"]
    assert counts["samples"] == len(records)
    assert counts["recommendation"] == len(advised)
    assert not (part_run / "annotations").exists()  # the run gets no release of its own


def test_a_snapshot_leaves_the_callers_thread_settings_alone(
    part_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It runs in the caller's process (a training run opens a snapshot list before it
    starts torch): a thread limit left behind there put a whole training run on one core."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    snapshot(part_run, tmp_path / "snap")
    assert "OMP_NUM_THREADS" not in os.environ


def test_the_snapshot_refuses_what_it_cannot_do(part_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="own directory"):
        snapshot(part_run, part_run)
    with pytest.raises(ValueError, match="no simulator run"):
        snapshot(tmp_path, tmp_path / "snap")
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(part_run / "sim-settings.json", empty)
    with pytest.raises(ValueError, match="no finished samples"):
        snapshot(empty, tmp_path / "snap")


def test_the_cli_writes_the_snapshot_and_says_what_is_wrong(part_run: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["sim", "snapshot", str(part_run), "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    assert (tmp_path / "s" / "samples.jsonl").is_file()
    result = runner.invoke(app, ["sim", "snapshot", str(tmp_path / "nothing"), "--out", "x"])
    assert result.exit_code == 2
    assert "no simulator run" in result.output


def test_a_snapshot_is_made_again_from_its_list_of_ids(part_run: Path, tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    result = runner.invoke(
        app,
        ["sim", "snapshot", str(part_run), "--out", str(tmp_path / "a"), "--write-ids", str(ids)],
    )
    assert result.exit_code == 0, result.output
    listed = ids.read_text().split()
    assert len(listed) == len(set(listed)) > 10
    # the run goes on: a later unit must not change the snapshot made from the list
    some = sorted(listed)[:10]
    (tmp_path / "some.txt").write_text("\n".join(some))
    subset = snapshot(part_run, tmp_path / "b", some)
    assert sorted(s.id for split in subset.detection.values() for s in split) == some
    again = runner.invoke(
        app, ["sim", "snapshot", str(part_run), "--out", str(tmp_path / "c"), "--ids", str(ids)]
    )
    assert again.exit_code == 0, again.output
    for name in ("artifact_detection_split", "parameter_recommendation_split"):
        for path in sorted((tmp_path / "a" / "annotations" / name).glob("*.json")):
            twin = tmp_path / "c" / "annotations" / name / path.name
            assert twin.read_bytes() == path.read_bytes(), path.name
    with pytest.raises(ValueError, match="not finished"):
        snapshot(part_run, tmp_path / "d", [*some, "ffffffff"])


def test_a_snapshot_list_opens_as_a_dataset(part_run: Path) -> None:
    from ptychobench.data import DataFormatError, open_dataset
    from ptychobench.data.opening import describe

    ids = sorted(
        r["id"]
        for p in (part_run / "work" / "detect").glob("*.json")
        if not (r := json.loads(p.read_text())).get("failed")
    )
    listing = part_run / "snapshots" / "first.txt"
    listing.parent.mkdir(exist_ok=True)
    listing.write_text("\n".join(ids[:12]) + "\n")
    assert "snapshot" in describe(listing)
    dataset = open_dataset(listing)
    assert sorted(s.id for split in dataset.detection.values() for s in split) == ids[:12]
    made = part_run / "snapshots" / "first" / "first.txt"
    stamp = made.stat().st_mtime_ns
    open_dataset(listing)
    assert made.stat().st_mtime_ns == stamp  # made once, then read
    listing.write_text("\n".join(ids[:15]) + "\n")  # another list: made again
    assert len([s for split in open_dataset(listing).detection.values() for s in split]) == 15
    listing.write_text("deadbeef\n")
    with pytest.raises(DataFormatError, match="not finished"):
        open_dataset(listing)
    assert not list((part_run / "snapshots").glob(".*"))  # no half-made snapshot is left
