from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptychobench.captions import letters_from_advice
from ptychobench.data.errors import DataFormatError
from ptychobench.data.labelstudio import (
    labelstudio_record,
    read_labelstudio,
    read_labelstudio_dataset,
    write_labelstudio,
)
from ptychobench.data.sample import Sample
from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS, OPTION_LETTERS, Task

ADVICE = "Increase the number of iterations to 2000"


def _record(record_id: int, name: str, **fields: Any) -> dict[str, Any]:
    record = {
        "id": record_id,
        "captioning": f"/data/upload/1/{name}-object_ph_Niter400.png",
        "beam_choice": "X-ray",
        "instrument_choice": "APS-2IDE-XFM",
        "sample_text": "Integrated circuit",
        "package_choice": "pty-chi",
        "artifact_choice": ["Halo artifacts", "Line artifacts"],
        "caption_obj": "Halo rings around the features.",
        "caption_param": ADVICE,
        "recon_path_text": f"/gdata/recon/{name}",
        "annotator": 3,
        "annotation_id": record_id + 1000,
        "created_at": "2025-03-01T10:00:00.000000Z",
        "updated_at": "2025-03-01T10:02:00.000000Z",
        "lead_time": 41.2,
    }
    record.update(fields)
    return {key: value for key, value in record.items() if value is not None}


EXPORT = [
    _record(101, "af707e7b"),
    _record(
        102,
        "0b1c2d3e",
        instrument_choice="Velociprobe",
        sample_text="NCM battery particles (5 µm)",
        artifact_choice=NO_ARTIFACTS,
        caption_obj="Clean.",
        caption_param=None,  # Label Studio leaves out empty fields
    ),
    _record(
        103,
        "5e6f7a8b",
        sample_text="Siemens star",
        artifact_choice={"choices": ["Grid artifacts", "Noisy artifacts"]},
        caption_param="",
    ),
]


@pytest.fixture
def export(
    tmp_path: Path,
    write_image: Callable[[Path, str, int], Path],
    write_json: Callable[..., Path],
) -> Path:
    for index, name in enumerate(("af707e7b", "0b1c2d3e", "5e6f7a8b")):
        write_image(tmp_path / "images", f"{name}-object_ph_Niter400.png", index)
    return write_json(tmp_path / "export.json", EXPORT, indent=2, ensure_ascii=False, newline=True)


def test_export_is_read(export: Path) -> None:
    ic, ncm, star = read_labelstudio(export, export.parent / "images")
    assert ic.id == "101"
    assert ic.image == export.parent / "images" / "af707e7b-object_ph_Niter400.png"
    assert (ic.sample_type, ic.instrument, ic.beam, ic.package) == (
        "Integrated circuit",
        "APS-2IDE-XFM",
        "X-ray",
        "pty-chi",
    )
    assert ic.artifacts == ("Halo artifacts", "Line artifacts")
    assert ic.caption_param == ADVICE
    assert ic.options == ("K",) == letters_from_advice(ADVICE)
    assert ic.extra["recon_path_text"] == "/gdata/recon/af707e7b"
    assert ic.extra["lead_time"] == 41.2
    assert ic.split is None
    assert ncm.artifacts == (NO_ARTIFACTS,)
    assert (ncm.caption_param, ncm.options) == ("", ())
    assert star.artifacts == ("Grid artifacts", "Noisy artifacts")


def test_export_without_images_keeps_the_paths(export: Path, tmp_path: Path) -> None:
    samples = read_labelstudio(export)
    assert [sample.image for sample in samples] == [None, None, None]
    write_labelstudio(samples, tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_bytes() == export.read_bytes()


def test_export_is_written_back_byte_for_byte(export: Path, tmp_path: Path) -> None:
    samples = read_labelstudio(export, export.parent / "images")
    write_labelstudio(samples, tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_bytes() == export.read_bytes()
    assert read_labelstudio(tmp_path / "copy.json", export.parent / "images") == samples


def test_other_json_layouts_round_trip_as_json(
    export: Path, tmp_path: Path, write_json: Callable[..., Path]
) -> None:
    compact = write_json(tmp_path / "compact.json", EXPORT)  # json.dumps defaults
    write_labelstudio(read_labelstudio(compact), tmp_path / "copy.json")
    assert json.loads((tmp_path / "copy.json").read_text(encoding="utf-8")) == EXPORT


def test_samples_made_here_round_trip(
    tmp_path: Path, write_image: Callable[[Path, str, int], Path]
) -> None:
    image = write_image(tmp_path / "images", "x.png", 0)
    samples = [
        Sample(
            id="s-1",
            image=image,
            sample_type="Supercrystal",
            instrument="2-ID-D",
            artifacts=("Phase ramp",),
            caption_param=ADVICE,
            options=("K",),
            extra={"annotator": "sim"},
        ),
        # options that the advice does not give, and parameters: both need extra keys
        Sample(id="s-2", image=image, options=("G", "M"), parameters="num_epochs: 10"),
    ]
    write_labelstudio(samples, tmp_path / "out.json")
    records = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert records[0]["captioning"] == "x.png"
    assert "options" not in records[0]
    assert records[1]["options"] == ["G", "M"]
    assert read_labelstudio(tmp_path / "out.json", tmp_path / "images") == samples


def test_unknown_artifact_label(tmp_path: Path, write_json: Callable[..., Path]) -> None:
    bad = [EXPORT[0], {**EXPORT[1], "artifact_choice": ["Halo artifacts", "Sparkles"]}]
    path = write_json(tmp_path / "bad.json", bad)
    with pytest.raises(DataFormatError) as info:
        read_labelstudio(path)
    assert str(info.value) == (
        f"{path}: record 1 (id '102'): field 'artifact_choice': unknown artifact label 'Sparkles'"
    )


def test_missing_image(export: Path) -> None:
    (export.parent / "images" / "0b1c2d3e-object_ph_Niter400.png").unlink()
    with pytest.raises(DataFormatError) as info:
        read_labelstudio(export, export.parent / "images")
    assert (info.value.record, info.value.record_id, info.value.field) == (1, "102", "captioning")
    lenient = read_labelstudio(export, export.parent / "images", strict_images=False)
    assert lenient[1].image == export.parent / "images" / "0b1c2d3e-object_ph_Niter400.png"


@pytest.mark.parametrize(
    ("content", "field", "reason"),
    [
        ({"records": EXPORT}, None, "expected a list of records"),
        ([EXPORT[0], "x"], None, "expected an object"),
        ([{k: v for k, v in EXPORT[0].items() if k != "id"}], "id", "missing"),
        ([{**EXPORT[0], "sample_text": 7}], "sample_text", "expected a string"),
    ],
)
def test_malformed_export(
    tmp_path: Path,
    write_json: Callable[..., Path],
    content: Any,
    field: str | None,
    reason: str,
) -> None:
    path = write_json(tmp_path / "bad.json", content)
    with pytest.raises(DataFormatError) as info:
        read_labelstudio(path)
    assert (info.value.field, info.value.reason) == (field, reason)
    assert str(info.value).startswith(str(path))


def test_record_that_cannot_hold_a_sample() -> None:
    # an unknown key that is spelled like a field would be read back as that field
    shadowing = Sample(id="x", sample_type="Siemens star", extra={"sample_text": "other"})
    with pytest.raises(ValueError, match="cannot hold"):
        labelstudio_record(shadowing)


def test_dataset_split_the_paper_way(tmp_path: Path, write_json: Callable[..., Path]) -> None:
    records = [
        _record(
            index,
            f"img{index:03d}",
            sample_text="Integrated circuit" if index % 2 else "Siemens star",
            caption_param=ADVICE if index % 3 == 0 else None,
        )
        for index in range(40)
    ]
    path = write_json(tmp_path / "export.json", records)
    dataset = read_labelstudio_dataset(path, seed=1)
    train = dataset.samples(Task.DETECTION, "train")
    test = dataset.samples(Task.DETECTION, "test")
    assert (len(train), len(test)) == (32, 8)
    for split, side in (("train", train), ("test", test)):
        advised = [sample for sample in side if sample.caption_param]
        assert dataset.samples(Task.RECOMMENDATION, split) == tuple(advised)
        assert {sample.split for sample in side} == {split}
    assert {s.id for s in train}.isdisjoint(s.id for s in test)
    assert read_labelstudio_dataset(path, seed=1) == dataset


_text = st.text(st.characters(codec="utf-8"), max_size=30)


@settings(max_examples=100, deadline=None)
@given(
    sample=st.builds(
        Sample,
        id=_text,
        sample_type=_text,
        instrument=_text,
        beam=_text,
        package=_text,
        artifacts=st.lists(st.sampled_from(ARTIFACT_LABELS), max_size=4).map(tuple),
        caption_obj=_text,
        caption_param=_text,
        options=st.lists(st.sampled_from(OPTION_LETTERS), max_size=4).map(tuple),
        parameters=_text,
        extra=st.dictionaries(st.sampled_from(["annotator", "lead_time", "note"]), _text),
    )
)
def test_any_sample_survives_a_record(sample: Sample) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "export.json"
        write_labelstudio([sample], path)
        assert read_labelstudio(path) == [sample]
