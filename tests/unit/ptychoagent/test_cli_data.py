from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ptychoagent.cli import data
from ptychobench.data.dataset import Dataset
from ptychobench.data.release import write_release
from ptychobench.data.sample import Sample

# Mounted the way the main app mounts it, without importing the other command modules.
root = typer.Typer()
root.add_typer(data.app, name="data")
runner = CliRunner(env={"COLUMNS": "200"})  # wide enough that no table cell wraps


@pytest.fixture
def release(tmp_path: Path, make_png: Callable[..., bytes]) -> Path:
    images = tmp_path / "src"
    images.mkdir()

    def sample(index: int, sample_type: str, instrument: str, *artifacts: str) -> Sample:
        image = images / f"{index:04d}-object_ph_Niter400.png"
        image.write_bytes(make_png(seed=index))
        return Sample(
            id=str(index),
            image=image,
            sample_type=sample_type,
            instrument=instrument,
            artifacts=artifacts,
            caption_param="Increase the number of iterations",
            options=("K",),
        )

    train = (
        sample(1, "Integrated circuit", "APS-2IDE-XFM", "Halo artifacts", "Line artifacts"),
        sample(2, "Integrated circuit", "APS-2IDE-XFM", "Halo artifacts"),
        sample(3, "Siemens star", "Velociprobe", "Grid artifacts"),
    )
    test = (sample(4, "Siemens star", "Velociprobe", "No obvious artifacts"),)
    dataset = Dataset(
        detection={"train": train, "test": test},
        recommendation={"train": train[:1], "test": test},
    )
    write_release(dataset, tmp_path / "release")
    return tmp_path / "release"


def test_inspect_release_as_json(release: Path) -> None:
    result = runner.invoke(root, ["data", "inspect", str(release), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "release"
    detection = report["counts"]["detection"]
    assert (detection["train"]["samples"], detection["test"]["samples"]) == (3, 1)
    assert detection["train"]["labels"]["Halo artifacts"] == 2
    assert detection["train"]["label_instances"] == 4
    assert detection["train"]["sample_types"] == {"Integrated circuit": 2, "Siemens star": 1}
    assert detection["test"]["instruments"] == {"Velociprobe": 1}
    assert report["counts"]["recommendation"]["train"]["labels"]["K"] == 1


def test_inspect_release_prints_tables(release: Path) -> None:
    result = runner.invoke(root, ["data", "inspect", str(release)])
    assert result.exit_code == 0, result.output
    for text in ("Halo artifacts", "K) Increase the number of", "Siemens star", "Velociprobe"):
        assert text in result.stdout
    assert "detection/train" in result.stdout


def test_inspect_labelstudio_export(tmp_path: Path) -> None:
    records = [
        {
            "id": index,
            "captioning": f"/data/upload/1/{index}.png",
            "sample_text": "Integrated circuit" if index % 2 else "Siemens star",
            "instrument_choice": "APS-2IDE-XFM",
            "artifact_choice": ["Halo artifacts"],
            "caption_param": "Increase the number of iterations" if index < 5 else "",
        }
        for index in range(10)
    ]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    result = runner.invoke(root, ["data", "inspect", str(path), "--json", "--seed", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["format"] == "labelstudio"
    detection = report["counts"]["detection"]
    assert (detection["train"]["samples"], detection["test"]["samples"]) == (8, 2)
    recommendation = report["counts"]["recommendation"]
    assert recommendation["train"]["samples"] + recommendation["test"]["samples"] == 5


def test_malformed_dataset_exits_2_with_one_line(release: Path) -> None:
    split = release / "annotations" / "artifact_detection_split" / "train.json"
    records = json.loads(split.read_text(encoding="utf-8"))
    records[1]["messages"][1]["content"][0]["text"] = "<answer>[Sparkles]</answer>"
    split.write_text(json.dumps(records), encoding="utf-8")

    result = runner.invoke(root, ["data", "inspect", str(release)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(
        "error: annotations/artifact_detection_split/train.json: record 1 (id '2'): "
        "field 'messages[1].content[0].text'"
    )
    assert "Traceback" not in result.output


def test_missing_image_can_be_allowed(release: Path) -> None:
    (release / "images" / "0003-object_ph_Niter400.png").unlink()
    strict = runner.invoke(root, ["data", "inspect", str(release)])
    assert strict.exit_code == 2
    assert "0003-object_ph_Niter400.png" in strict.stderr
    lenient = runner.invoke(root, ["data", "inspect", str(release), "--allow-missing-images"])
    assert lenient.exit_code == 0, lenient.output


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(root, ["data", "inspect", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_sheet_draws_a_row_per_label(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ptychoagent.cli import app
    from ptychoagent.quickstart import make_dataset
    from ptychobench.data import write_release

    write_release(make_dataset(tmp_path / "toy", seed=0), tmp_path / "release")
    out = tmp_path / "sheet.png"
    result = CliRunner().invoke(
        app, ["data", "sheet", str(tmp_path / "release"), "--out", str(out), "--per-label", "2"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = CliRunner().invoke(app, ["data", "sheet", str(tmp_path / "nope")])
    assert missing.exit_code == 2
