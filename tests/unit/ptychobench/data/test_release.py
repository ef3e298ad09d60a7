from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptychobench.data._chat import Where, decode_record
from ptychobench.data.dataset import Dataset
from ptychobench.data.errors import DataFormatError
from ptychobench.data.release import (
    TASK_DIRS,
    encode_sample,
    read_release,
    release_metadata,
    write_release,
)
from ptychobench.data.sample import Sample
from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS, OPTION_LETTERS, Task
from ptychobench.prompts import DETECTION_PROMPT, RECOMMENDATION_TEMPLATE

DET = "annotations/artifact_detection_split"
REC = "annotations/parameter_recommendation_split"
PARAMS = "algorithm: LSQML\nnum_epochs: 100\nbatch_size: 96"


def _built_dataset(src: Path, write_image: Callable[[Path, str, int], Path]) -> Dataset:
    """Samples made here, exercising every field the layout has to carry."""
    a = write_image(src, "aaaa0001-object_ph_Niter400.png", 1)
    b = write_image(src / "other", "bbbb0002-object_ph_Niter400.png", 2)
    c = write_image(src, "cccc0003-object_ph_Niter400.png", 3)
    ic = Sample(
        id="ic-1",
        image=a,
        sample_type="Integrated circuit",
        instrument="APS-2IDE-XFM",
        artifacts=("Halo artifacts", "Line artifacts"),
        caption_obj="Chip with halo rings.",
        caption_param="Increase the number of iterations to 2000",
        options=("K",),
        parameters=PARAMS,
        extra={"annotator": "expert-1", "lead_time": 12.5},
    )
    ncm = Sample(
        id="ncm-2",
        image=b,
        sample_type="NCM battery particles — 5 µm",
        instrument="Velociprobe",
        beam="X-ray",
        package="ptychodus",
        artifacts=(NO_ARTIFACTS,),
    )
    star = Sample(id="star-3", image=c, sample_type="Siemens star", artifacts=())
    text_only = Sample(id="text-4", sample_type="Siemens star", options=("L",))
    return Dataset(
        detection={"train": (ic, ncm), "test": (star,)},
        recommendation={"train": (ic, text_only), "test": (ncm,)},
    )


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_written_dataset_reads_back_identical(
    tmp_path: Path, write_image: Callable[[Path, str, int], Path]
) -> None:
    dataset = _built_dataset(tmp_path / "src", write_image)
    write_release(dataset, tmp_path / "out")
    back = read_release(tmp_path / "out")

    for task in Task:
        assert back.splits(task) == dataset.splits(task)
        for split in dataset.splits(task):
            for before, after in zip(
                dataset.samples(task, split), back.samples(task, split), strict=True
            ):
                if before.image is None:
                    assert after.image is None
                else:
                    assert after.image == tmp_path / "out" / "images" / before.image.name
                    assert after.image.read_bytes() == before.image.read_bytes()
                assert after == before.model_copy(update={"image": after.image})
        assert back.metadata[task.value] == release_metadata(task, dataset.by_task(task))

    write_release(back, tmp_path / "again")
    assert _files(tmp_path / "again") == _files(tmp_path / "out")


def test_written_files_follow_the_published_layout(
    tmp_path: Path, write_image: Callable[[Path, str, int], Path]
) -> None:
    write_release(_built_dataset(tmp_path / "src", write_image), tmp_path / "out")
    records = json.loads((tmp_path / "out" / DET / "train.json").read_text(encoding="utf-8"))
    first = records[0]
    assert first["messages"][0]["content"] == [
        {"type": "text", "text": DETECTION_PROMPT},
        {"type": "image", "image_path": "images/aaaa0001-object_ph_Niter400.png"},
    ]
    assert first["messages"][1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "<answer>[Halo artifacts, Line artifacts]</answer>"}],
    }
    assert first["metadata"]["sample_type"] == "Integrated circuit"
    assert first["metadata"]["annotator"] == "expert-1"
    rec = json.loads((tmp_path / "out" / REC / "train.json").read_text(encoding="utf-8"))
    assert [item["type"] for item in rec[0]["messages"][0]["content"]] == ["text"]
    assert rec[0]["messages"][1]["content"][0]["text"] == "<answer>K</answer>"
    assert "Sample Type: Integrated circuit\n" in rec[0]["messages"][0]["content"][0]["text"]
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == [
        "aaaa0001-object_ph_Niter400.png",
        "bbbb0002-object_ph_Niter400.png",
        "cccc0003-object_ph_Niter400.png",
    ]
    text = (tmp_path / "out" / DET / "train.json").read_text(encoding="utf-8")
    assert "5 µm" in text  # written with ensure_ascii=False
    assert text.startswith('[\n  {\n    "messages"')


def _det_record(text: str, image_path: str, answer: str, metadata: dict[str, Any]) -> Any:
    return {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": text},
                    {"type": "image", "image_path": image_path},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
        "metadata": metadata,
    }


def _rec_record(text: str, answer: str, metadata: dict[str, Any]) -> Any:
    return {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": text}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        ],
        "metadata": metadata,
    }


IC_PROMPT = RECOMMENDATION_TEMPLATE.format(
    package="pty-chi",
    instrument="APS-2IDE-XFM",
    sample="Integrated circuit",
    beam="X-ray",
    caption_obj="Halo rings around the features.",
    artifacts="Halo artifacts, Line artifacts",
    param_info=PARAMS,
)


@pytest.fixture
def published(
    tmp_path: Path,
    write_image: Callable[[Path, str, int], Path],
    write_json: Callable[..., Path],
) -> Path:
    """A release as the authors' scripts would write it: /data/upload paths, metadata
    keys of several spellings and extra keys, ``json.dump`` defaults (ASCII escapes, no
    final newline) for detection and another indent for recommendation."""
    root = tmp_path / "published"
    for index, name in enumerate(("af707e7b", "0b1c2d3e", "5e6f7a8b")):
        write_image(root / "images", f"{name}-object_ph_Niter400.png", index)
    det_train = [
        _det_record(
            DETECTION_PROMPT,
            "/data/upload/1/af707e7b-object_ph_Niter400.png",
            "<answer>[Halo artifacts, Line artifacts]</answer>",
            {"sample_type": "Integrated circuit", "instrument": "APS-2IDE-XFM", "lead_time": 41.5},
        ),
        _det_record(
            DETECTION_PROMPT,
            "/data/upload/1/0b1c2d3e-object_ph_Niter400.png",
            "<answer>[No obvious artifacts]</answer>",
            {
                "id": 1207,
                "sample_text": "NCM battery particles",
                "instrument_choice": "Velociprobe",
                "caption_obj": "Particles of 5 µm, faint halo",
                "recon_path_text": "/gdata/recon/0b1c2d3e",
            },
        ),
    ]
    det_test = [
        _det_record(
            DETECTION_PROMPT + " ",
            "/data/upload/1/5e6f7a8b-object_ph_Niter400.png",
            "<answer>[Grid artifacts,Noisy artifacts]</answer>",
            {"sample_type": "Siemens star"},
        )
    ]
    rec_train = [
        _rec_record(IC_PROMPT, "<answer>G, K</answer>", {"sample_type": "Integrated circuit"}),
        _rec_record(
            "Old prompt: advise on the Siemens star.",
            "<answer>K</answer>",
            {"sample_type": "Siemens star", "instrument": "Velociprobe", "artifacts": ["Blurring"]},
        ),
    ]
    rec_test = [_rec_record(IC_PROMPT, "<answer>K</answer>", {"sample_type": "IC (renamed)"})]
    write_json(root / DET / "train.json", det_train, indent=2)
    write_json(root / DET / "test.json", det_test, indent=2)
    write_json(root / DET / "metadata.json", {"name": "PtychoBench", "version": "1.0.0"}, indent=2)
    write_json(root / REC / "train.json", rec_train, indent=4, newline=True)
    write_json(root / REC / "test.json", rec_test, indent=4, newline=True)
    write_json(root / REC / "metadata.json", {"num_samples": 3}, indent=4, newline=True)
    return root


def test_our_metadata_follows_the_samples(
    tmp_path: Path, write_image: Callable[[Path, str, int], Path]
) -> None:
    write_release(_built_dataset(tmp_path / "src", write_image), tmp_path / "out")
    back = read_release(tmp_path / "out")
    fewer = Dataset(
        detection={"train": back.samples(Task.DETECTION, "train")[:1]},
        metadata=back.metadata,
    )
    write_release(fewer, tmp_path / "fewer")
    metadata = read_release(tmp_path / "fewer").metadata["detection"]
    assert metadata == release_metadata(Task.DETECTION, fewer.detection)
    assert metadata["counts"]["train"]["samples"] == 1


def test_published_release_is_read(published: Path) -> None:
    dataset = read_release(published)

    ic, ncm = dataset.samples(Task.DETECTION, "train")
    assert ic.id == "train-0"
    assert ic.artifacts == ("Halo artifacts", "Line artifacts")
    assert ic.image == published / "images" / "af707e7b-object_ph_Niter400.png"
    assert ic.instrument == "APS-2IDE-XFM"
    assert ic.prompt is None
    assert ic.extra["lead_time"] == 41.5
    assert ncm.id == "1207"
    assert (ncm.sample_type, ncm.instrument) == ("NCM battery particles", "Velociprobe")
    assert ncm.artifacts == (NO_ARTIFACTS,)
    assert ncm.extra["recon_path_text"] == "/gdata/recon/0b1c2d3e"
    (star,) = dataset.samples(Task.DETECTION, "test")
    assert star.artifacts == ("Grid artifacts", "Noisy artifacts")
    assert star.prompt == DETECTION_PROMPT + " "

    from_prompt, from_metadata = dataset.samples(Task.RECOMMENDATION, "train")
    assert from_prompt.options == ("G", "K")
    assert from_prompt.instrument == "APS-2IDE-XFM"
    assert from_prompt.artifacts == ("Halo artifacts", "Line artifacts")
    assert from_prompt.parameters == PARAMS
    assert from_prompt.caption_obj == "Halo rings around the features."
    assert from_prompt.image is None
    assert from_metadata.prompt == "Old prompt: advise on the Siemens star."
    assert (from_metadata.sample_type, from_metadata.instrument) == ("Siemens star", "Velociprobe")
    assert from_metadata.artifacts == ("Blurring",)
    (renamed,) = dataset.samples(Task.RECOMMENDATION, "test")
    assert renamed.sample_type == "IC (renamed)"  # metadata wins over the prompt
    assert renamed.prompt == IC_PROMPT

    assert dataset.metadata == {
        "detection": {"name": "PtychoBench", "version": "1.0.0"},
        "recommendation": {"num_samples": 3},
    }


def test_published_release_is_written_back_byte_for_byte(
    published: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        dataset = read_release(published)
    assert caplog.records == []  # no record was flagged as not reproducible
    write_release(dataset, tmp_path / "copy")
    assert _files(tmp_path / "copy") == _files(published)


def test_unreproducible_record_is_flagged(minimal: Path, caplog: pytest.LogCaptureFixture) -> None:
    def edit(data: list[Any]) -> list[Any]:
        data[0]["messages"][0]["content"][1]["detail"] = "high"  # a key the reader drops
        return data

    _corrupt(minimal, edit)
    with caplog.at_level(logging.WARNING):
        read_release(minimal)
    assert [r.getMessage() for r in caplog.records] == [
        f"{DET}/train.json: record 0 will not be written back byte for byte"
    ]


def test_read_ids_are_stable(published: Path) -> None:
    first = read_release(published)
    second = read_release(published)
    ids = [s.id for s in first.samples(Task.DETECTION, "train")]
    assert ids == ["train-0", "1207"]
    assert ids == [s.id for s in second.samples(Task.DETECTION, "train")]
    assert [s.id for s in first.samples(Task.RECOMMENDATION, "test")] == ["test-0"]


def test_edited_published_sample_is_written_with_its_new_labels(
    published: Path, tmp_path: Path
) -> None:
    dataset = read_release(published)
    (star,) = dataset.samples(Task.DETECTION, "test")
    edited = Dataset(
        detection={**dataset.detection, "test": (star.model_copy(update={"artifacts": ()}),)},
        recommendation=dataset.recommendation,
        metadata=dataset.metadata,
    )
    write_release(edited, tmp_path / "edited")
    (back,) = read_release(tmp_path / "edited").samples(Task.DETECTION, "test")
    assert back.artifacts == ()
    assert back.prompt == DETECTION_PROMPT + " "
    raw = json.loads((tmp_path / "edited" / DET / "test.json").read_text(encoding="utf-8"))
    assert raw[0]["messages"][1]["content"][0]["text"] == "<answer>[]</answer>"


@pytest.fixture
def minimal(
    tmp_path: Path,
    write_image: Callable[[Path, str, int], Path],
    write_json: Callable[..., Path],
) -> Path:
    root = tmp_path / "minimal"
    write_image(root / "images", "a.png", 0)
    write_image(root / "images", "b.png", 1)
    records = [
        _det_record(DETECTION_PROMPT, "images/a.png", "<answer>[Halo artifacts]</answer>", {}),
        _det_record(
            DETECTION_PROMPT, "images/b.png", "<answer>[Line artifacts]</answer>", {"id": "abc"}
        ),
    ]
    write_json(root / DET / "train.json", records, indent=2)
    return root


def _corrupt(root: Path, edit: Callable[[list[Any]], Any]) -> None:
    path = root / DET / "train.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps(edit(data), indent=2), encoding="utf-8")


def test_minimal_release_reads(minimal: Path) -> None:
    dataset = read_release(minimal)
    assert [s.artifacts for s in dataset.samples(Task.DETECTION, "train")] == [
        ("Halo artifacts",),
        ("Line artifacts",),
    ]
    assert dataset.splits(Task.RECOMMENDATION) == ()
    assert dataset.root == minimal


def test_missing_annotations_directory(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no annotations directory") as info:
        read_release(tmp_path)
    assert info.value.path == "annotations"


def test_split_that_is_not_a_list(minimal: Path) -> None:
    _corrupt(minimal, lambda data: {"samples": data})
    with pytest.raises(DataFormatError) as info:
        read_release(minimal)
    assert str(info.value) == f"{DET}/train.json: expected a list of samples, got an object"


def test_record_without_messages(minimal: Path) -> None:
    def edit(data: list[Any]) -> list[Any]:
        del data[1]["messages"]
        return data

    _corrupt(minimal, edit)
    with pytest.raises(DataFormatError) as info:
        read_release(minimal)
    assert str(info.value) == f"{DET}/train.json: record 1 (id 'abc'): field 'messages': missing"
    assert (info.value.record, info.value.record_id, info.value.field) == (1, "abc", "messages")


def test_assistant_content_that_is_not_a_list(minimal: Path) -> None:
    def edit(data: list[Any]) -> list[Any]:
        data[1]["messages"][1]["content"] = 3
        return data

    _corrupt(minimal, edit)
    with pytest.raises(DataFormatError) as info:
        read_release(minimal)
    assert str(info.value) == (
        f"{DET}/train.json: record 1 (id 'abc'): field 'messages[1].content': "
        "expected a list, got a number"
    )


def test_answer_with_an_unknown_label(minimal: Path) -> None:
    def edit(data: list[Any]) -> list[Any]:
        data[0]["messages"][1]["content"][0]["text"] = "<answer>[Halo artifacts, Glitter]</answer>"
        return data

    _corrupt(minimal, edit)
    with pytest.raises(DataFormatError) as info:
        read_release(minimal)
    message = str(info.value)
    assert message.startswith(f"{DET}/train.json: record 0: field 'messages[1].content[0].text'")
    assert "Glitter" in message


def test_answer_without_an_answer_block(minimal: Path) -> None:
    def edit(data: list[Any]) -> list[Any]:
        data[0]["messages"][1]["content"][0]["text"] = "Halo artifacts"
        return data

    _corrupt(minimal, edit)
    with pytest.raises(DataFormatError, match=r"record 0: field 'messages\[1\]\.content\[0\]"):
        read_release(minimal)


def test_metadata_with_a_bad_value(minimal: Path) -> None:
    def edit(data: list[Any]) -> list[Any]:
        data[1]["metadata"]["sample_type"] = ["Integrated circuit"]
        return data

    _corrupt(minimal, edit)
    with pytest.raises(DataFormatError) as info:
        read_release(minimal)
    assert info.value.field == "metadata.sample_type"
    assert info.value.record == 1


def test_missing_image(minimal: Path) -> None:
    (minimal / "images" / "b.png").unlink()
    with pytest.raises(DataFormatError) as info:
        read_release(minimal)
    assert str(info.value) == (
        f"{DET}/train.json: record 1 (id 'abc'): field 'messages[0].content[1].image_path': "
        "image 'b.png' not found in images/"
    )
    lenient = read_release(minimal, strict_images=False)
    assert lenient.samples(Task.DETECTION, "train")[1].image == minimal / "images" / "b.png"


def test_duplicate_ids_in_a_task(minimal: Path, write_json: Callable[..., Path]) -> None:
    record = _det_record(DETECTION_PROMPT, "images/a.png", "<answer>[]</answer>", {"id": "abc"})
    write_json(minimal / DET / "test.json", [record], indent=2)
    with pytest.raises(DataFormatError) as info:
        read_release(minimal)
    assert info.value.path == f"{DET}/test.json"
    assert info.value.field == "metadata.id"
    assert "duplicate" in info.value.reason


def test_split_files_are_read_in_split_order(
    minimal: Path, write_json: Callable[..., Path]
) -> None:
    for name in ("test", "val", "extra"):
        write_json(minimal / DET / f"{name}.json", [], indent=2)
    assert read_release(minimal).splits(Task.DETECTION) == ("train", "val", "test", "extra")


def test_writer_refuses_what_the_layout_cannot_hold(
    tmp_path: Path, write_image: Callable[[Path, str, int], Path]
) -> None:
    image = write_image(tmp_path, "x.png", 0)
    mixed = Sample(id="m", image=image, artifacts=("Halo artifacts", NO_ARTIFACTS))
    with pytest.raises(ValueError, match="cannot represent"):
        encode_sample(mixed, Task.DETECTION, "train", 0)
    with pytest.raises(ValueError, match="has no image"):
        encode_sample(Sample(id="n"), Task.DETECTION, "train", 0)
    bad = Dataset(detection={"train": (mixed,)})
    with pytest.raises(ValueError, match="cannot represent"):
        write_release(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_writer_refuses_stale_split_files(
    tmp_path: Path, write_image: Callable[[Path, str, int], Path]
) -> None:
    dataset = _built_dataset(tmp_path / "src", write_image)
    write_release(dataset, tmp_path / "out")
    write_release(dataset, tmp_path / "out")  # rewriting the same splits is fine
    fewer = Dataset(detection={"train": dataset.samples(Task.DETECTION, "train")})
    with pytest.raises(FileExistsError, match=r"test\.json"):
        write_release(fewer, tmp_path / "out")


def test_writer_refuses_two_images_with_one_name(
    tmp_path: Path, write_image: Callable[[Path, str, int], Path]
) -> None:
    one = Sample(id="1", image=write_image(tmp_path / "a", "same.png", 1))
    two = Sample(id="2", image=write_image(tmp_path / "b", "same.png", 2))
    with pytest.raises(ValueError, match=r"same\.png"):
        write_release(Dataset(detection={"train": (one, two)}), tmp_path / "out")


def test_task_directories_are_the_published_names() -> None:
    assert TASK_DIRS == {
        Task.DETECTION: "artifact_detection_split",
        Task.RECOMMENDATION: "parameter_recommendation_split",
    }


def test_error_survives_pickling() -> None:
    import pickle

    error = DataFormatError("f.json", "bad", record=3, record_id="x", field="metadata.id")
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error) == "f.json: record 3 (id 'x'): field 'metadata.id': bad"
    assert isinstance(copy, ValueError)


_text = st.text(st.characters(codec="utf-8"), max_size=30)
_samples = st.builds(
    Sample,
    id=_text.filter(bool),
    image=st.sampled_from([Path("a.png"), Path("b-object_ph_Niter400.png")]),
    sample_type=_text,
    instrument=_text,
    beam=_text,
    package=_text,
    artifacts=st.lists(st.sampled_from(ARTIFACT_LABELS[:-1]), max_size=4).map(tuple)
    | st.just((NO_ARTIFACTS,)),
    caption_obj=_text,
    caption_param=_text,
    options=st.lists(st.sampled_from([x for x in OPTION_LETTERS if x != "L"]), max_size=4).map(
        tuple
    )
    | st.just(("L",)),
    parameters=_text,
    extra=st.dictionaries(st.sampled_from(["annotator", "lead_time", "note"]), _text),
)


@settings(max_examples=150, deadline=None)
@given(sample=_samples, task=st.sampled_from(Task), index=st.integers(0, 5))
def test_any_sample_survives_a_record(sample: Sample, task: Task, index: int) -> None:
    record = json.loads(json.dumps(encode_sample(sample, task, "train", index)))
    back = decode_record(record, task, "train", index, Where("f.json", index))
    assert back == sample.model_copy(update={"split": "train"})
