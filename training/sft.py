"""Supervised fine-tuning: a peft LoRA adapter for the agent (recommendation) task.

Training examples are the benchmark's own conversations (the paper's prompt,
``ptychobench.prompts.build_for_sample``; 0-shot, or with ``shots`` same-type worked
examples before the query as the service sends them at k > 0) rendered with the base
model's chat template exactly as vLLM renders them at serve time, followed by the answer
(``<answer>K</answer>``) and the end-of-turn token. The loss is taken on the answer
tokens only.

Profiles. ``paper`` is Table 6 (r 16, alpha 16, dropout 0, the seven projections,
lr 2e-4, weight decay 0.01, 8-bit AdamW where bitsandbytes and a GPU are there, else
AdamW, max length 2048, batch 4 x accumulation 8, 50 epochs). ``cpu`` keeps the LoRA and
optimiser settings and changes the schedule for a laptop: batch 4 without accumulation
(a few hundred training examples would otherwise give a handful of optimiser steps),
at most 8 epochs, and early stopping on the answer loss of a validation slice held out
of the training split (stratified by sample type; the test split is never seen).
``fast`` trains the top layers at a constant rate and keeps the checkpoint whose
generated letters score best on validation; ``fewshot`` is ``fast`` on prompts with 0,
1 or 3 examples, so that examples in the prompt are read, not a distraction (an adapter
trained on 0-shot prompts alone lost half its F1 with three in the prompt).

The examples are made by ``training.sft_data``; the loop is ``training.fit``.

Everything that decides the result is recorded beside the adapter in
``training.json``: the resolved configuration, the hash of the training data, the base
model's manifest, library versions, the loss history and the chosen epoch.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ptychobench.data import Sample, split_samples
from ptychobench.labels import Task
from training.adapters import PROJECTIONS, lora_config
from training.checkpoints import sha256_file
from training.data import DatasetPaths, open_training_data, shown, splits_made
from training.fit import (
    Schedule,
    SFTError,
    Trainer,
    fit,
    mean_loss,
    resolve_device,
    resolve_precision,
    save_adapter,
    versions,
)
from training.sft_data import (
    IGNORE,
    Example,
    Record,
    answer_loss,
    answer_tokens,
    collate,
    data_hash,
    encode,
    frozen_states,
    records,
)

__all__ = [
    "IGNORE",
    "PROFILES",
    "TRAINING_RECORD",
    "Record",
    "SFTConfig",
    "SFTError",
    "collate",
    "data_hash",
    "encode",
    "make_config",
    "model_card",
    "records",
    "resolve_device",
    "save_adapter",
    "split_records",
    "train",
]

TRAINING_RECORD = "training.json"

Profile = Literal["paper", "cpu", "fast", "fewshot"]


class SFTConfig(BaseModel):
    """One training run. ``profile`` fills the schedule; any field given explicitly wins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Task = Task.RECOMMENDATION
    base: str
    dataset: DatasetPaths
    """A dataset, or several whose training splits are used together (``training.data``)."""
    split: str = "train"
    profile: Profile = "cpu"
    rank: int = Field(default=16, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: tuple[str, ...] = PROJECTIONS
    learning_rate: float = Field(default=2e-4, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    optimizer: Literal["adamw_8bit", "adamw"] = "adamw_8bit"
    max_length: int = Field(default=2048, ge=64)
    batch_size: int = Field(default=4, ge=1)
    grad_accumulation: int = Field(default=1, ge=1)
    epochs: int = Field(default=8, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    validation_fraction: float = Field(default=0.15, ge=0, lt=1)
    patience: int = Field(default=2, ge=1)
    limit: int | None = Field(default=None, ge=1)
    seed: int = 0
    save_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    schedule: Literal["linear", "constant"] = "linear"
    """``linear``: the learning rate decays to zero over the planned steps; ``constant``:
    it stays at ``learning_rate`` after the warmup."""
    warmup_steps: int = Field(default=0, ge=0)
    trainable_layers: int | None = Field(default=None, ge=1)
    """Train the LoRA of the top N decoder layers only (None: all). The others stay at
    their zero start, so the adapter has the usual shape and serves the same way."""
    eval_every: int | None = Field(default=None, ge=1)
    """Validate every N optimiser steps (None: after each epoch)."""
    select_by: Literal["loss", "letter_f1"] = "loss"
    """What picks the kept checkpoint: the validation answer loss, or the micro-F1 of
    the letters the adapter generates for the validation prompts (greedy, as served).
    The loss is dominated by the format tokens of ``<answer>K</answer><|im_end|>``,
    which are learnt at once; it can fall while the letters stay at the label prior."""
    letter_f1_items: int = Field(default=40, ge=1)
    """How many validation items the letter F1 generates answers for (the first ones;
    the loss covers them all). Greedy generation runs the whole model over each prompt,
    the dearest part of a CPU run."""
    shots: tuple[Annotated[int, Field(ge=0)], ...] = Field(default=(0,), min_length=1)
    """How many same-sample-type worked examples (SSFS, from the training side, never
    the item itself) precede each item's query: one of these counts per item, drawn
    with the seed. More than one count also groups batches by length."""
    init_adapter: str | None = None
    """Start from this adapter's weights (same rank, alpha and projections) instead of
    a fresh LoRA: further training of a shipped adapter, e.g. on few-shot prompts."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16-autocast", "float32"] = "auto"
    """Compute precision of the forward and backward passes (weights and optimiser state
    stay float32). ``auto``: bf16 autocast on a GPU, float32 on the CPU (measured here:
    bf16 autocast saved 5 % of a CPU epoch, not worth the rounding)."""


PROFILES: dict[str, dict[str, Any]] = {
    "paper": {"grad_accumulation": 8, "epochs": 50, "validation_fraction": 0.0},
    "cpu": {"grad_accumulation": 1, "epochs": 8, "validation_fraction": 0.15},
    # A schedule that converges on a CPU: the linear decay from 2e-4 over ~115 steps of
    # the cpu profile stopped at the label prior (the letters' loss sat at their
    # entropy); a constant 1e-3 on the top layers breaks out, and the checkpoint is
    # chosen by the letters it generates, not by the format-dominated loss.
    "fast": {
        "grad_accumulation": 1,
        "epochs": 30,
        "validation_fraction": 0.15,
        "learning_rate": 1e-3,
        "schedule": "constant",
        "warmup_steps": 10,
        "batch_size": 8,
        "trainable_layers": 4,
        "eval_every": 30,
        "select_by": "letter_f1",
        "patience": 4,
        "max_steps": 300,
    },
}
PROFILES["fewshot"] = {**PROFILES["fast"], "shots": (0, 1, 3), "max_length": 4096}


def make_config(profile: Profile = "cpu", **fields: Any) -> SFTConfig:
    """A configuration from a profile, with explicit fields (not None) taking precedence."""
    given = {key: value for key, value in fields.items() if value is not None}
    return SFTConfig.model_validate({**PROFILES[profile], "profile": profile, **given})


def split_records(config: SFTConfig) -> tuple[list[Record], list[Record]]:
    """The training split of the dataset, less a validation slice stratified by type."""
    dataset = open_training_data(config.dataset)
    task = Task(config.task)
    if config.split not in dataset.splits(task):
        raise SFTError(f"{shown(config.dataset)} has no {task.value} split {config.split!r}")
    samples = list(dataset.samples(task, config.split))
    if config.limit is not None:
        samples = samples[: config.limit]
    if config.validation_fraction > 0 and len(samples) >= 4:
        train, validation = split_samples(
            samples, test_fraction=config.validation_fraction, seed=config.seed
        )
    else:
        train, validation = samples, []

    def made(part: list[Sample]) -> list[Record]:
        return records(part, task, config.shots, train, config.seed)

    return made(train), made(validation)


def _optimizer(config: SFTConfig, parameters: list[Any]) -> tuple[Any, str]:
    import torch

    if config.optimizer == "adamw_8bit" and next(iter(parameters)).is_cuda:
        try:
            import bitsandbytes as bnb

            optimizer = bnb.optim.AdamW8bit(
                parameters, lr=config.learning_rate, weight_decay=config.weight_decay
            )
            return optimizer, "adamw_8bit (bitsandbytes)"
        except ImportError:
            pass
    optimizer = torch.optim.AdamW(
        parameters, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    return optimizer, "adamw (torch)"


def _base_manifest(base: Path) -> dict[str, Any]:
    path = base / "ptychoagent-model.json"
    return json.loads(path.read_text()) if path.exists() else {"path": str(base)}


def train(
    config: SFTConfig,
    out: str | Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train, keep the adapter of the best validation epoch, write it and its record.

    Returns the record written to ``out/training.json``.
    """
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = Path(config.base)
    if not (base / "config.json").exists():
        raise SFTError(f"no base model at {base}; prepare it with: ptychoagent models prepare")
    out = Path(out)
    started = time.time()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)

    train_records, validation_records = split_records(config)
    if not train_records:
        raise SFTError(f"{shown(config.dataset)}: the {config.split} split has no examples")
    tokenizer = AutoTokenizer.from_pretrained(base)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    train_set = [encode(r, tokenizer, config.max_length) for r in train_records]
    validation_set = [encode(r, tokenizer, config.max_length) for r in validation_records]

    device = resolve_device(config.device)
    precision = resolve_precision(config.precision, device)
    model: Any = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = model.to(device)
    lora = lora_config(config.rank, config.alpha, config.dropout, config.target_modules)
    model = get_peft_model(model, lora)
    started_from = _start_from(model, config) if config.init_adapter else None
    first = 0
    if config.trainable_layers is not None:
        first = _freeze_lower_layers(model, config.trainable_layers)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer, optimizer_name = _optimizer(config, trainable)
    cached = first > 0 and config.dropout == 0
    if cached:
        # the layers below `first` keep the base model's weights all run long (their
        # LoRA B stays 0 and there is no dropout): compute what they give once
        model.eval()
        train_examples = frozen_states(model, train_set, first, config.batch_size, pad_id, device)
        validation_examples = frozen_states(
            model, validation_set, first, config.batch_size, pad_id, device
        )
        model.train()
    else:
        train_examples = [Example(item) for item in train_set]
        validation_examples = [Example(item) for item in validation_set]

    steps_per_epoch = math.ceil(len(train_set) / (config.batch_size * config.grad_accumulation))
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: _lr_factor(config, step, total_steps)
    )

    def batch_loss(batch: list[Example]) -> tuple[Any, int]:
        return answer_loss(model, batch, pad_id, device, precision)

    validation = _Validation(
        model,
        validation_records,
        validation_examples,
        batch_loss,
        tokenizer,
        pad_id,
        config,
        device,
    )
    trainer = Trainer(
        loss=batch_loss,
        tokens=lambda example: answer_tokens(example.item),
        validate=validation.measure,
        has_validation=bool(validation),
        key=validation.key,
        snapshot=lambda: _lora_state(model),
        length=(lambda e: len(e.item["input_ids"])) if len(set(config.shots)) > 1 else None,
    )
    schedule = Schedule(
        epochs=config.epochs,
        total_steps=total_steps,
        batch_size=config.batch_size,
        patience=config.patience,
        grad_accumulation=config.grad_accumulation,
        eval_every=config.eval_every,
    )
    fitted = fit(
        model,
        trainable,
        optimizer,
        scheduler,
        train_examples,
        trainer,
        schedule,
        rng,
        started,
        progress,
    )
    history = fitted.history
    record = {
        "format": "ptychoagent-sft/1",
        "config": config.model_dump(mode="json"),
        "optimizer": optimizer_name,
        "device": device,
        "precision": precision,
        "data": {
            "hash": data_hash(train_records, validation_records),
            "train_ids": [r.id for r in train_records],
            "validation_ids": [r.id for r in validation_records],
            "train_examples": len(train_set),
            "validation_examples": len(validation_set),
            "max_tokens": max(len(item["input_ids"]) for item in train_set),
            "shots": _shot_counts(train_records),
            **({"splits_made": made} if (made := splits_made(config.dataset)) else {}),
        },
        "base_model": _base_manifest(base),
        **({"started_from": started_from} if started_from else {}),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "frozen_layers_cached": first if cached else 0,
        "steps": fitted.steps,
        "history": history,
        "best_epoch": fitted.best_epoch,
        "best_step": fitted.best_step,
        "best_validation_loss": validation.best_loss(history, fitted.best_step),
        "best_validation_letter_f1": validation.best_f1(history, fitted.best_step),
        "seconds": round(time.time() - started, 1),
        "versions": versions(),
    }
    save_adapter(model, out, config.save_dtype)
    (out / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (out / "README.md").write_text(model_card(out.name, record))
    return record


def model_card(name: str, record: dict[str, Any]) -> str:
    """A short card for the adapter directory, written from its training record."""
    config, data = record["config"], record["data"]
    base = record["base_model"]
    losses = "\n".join(
        f"| {e['epoch']} | {e['step']} | {e['train_loss']:.4f} | "
        f"{e.get('validation_loss', float('nan')):.4f} |"
        for e in record["history"]
    )
    return f"""# {name}

LoRA adapter for **{Path(config["base"]).name}**
({base.get("source_package", "?")} {base.get("source_version", "")}), task
**{config["task"]}** (PtychoBench parameter recommendation: the paper's prompt, answer
`<answer>letters</answer>`). Trained by `ptychoagent train agent` ({config["profile"]}
profile); see docs/engine.md.

- data: {shown(config["dataset"])}, split `{config["split"]}`: {data["train_examples"]} training
  and {data["validation_examples"]} validation examples; data hash `{data["hash"]}`
- LoRA r {config["rank"]}, alpha {config["alpha"]}, dropout {config["dropout"]}, on
  {", ".join(config["target_modules"])}
- {record["optimizer"]}, lr {config["learning_rate"]}, weight decay {config["weight_decay"]},
  batch {config["batch_size"]} x {config["grad_accumulation"]}, seed {config["seed"]},
  {record["device"]}, {record["precision"]}; {record["seconds"]} s
- kept step {record.get("best_step", "?")} (epoch {record["best_epoch"]}) of
  {record.get("steps", "?")} steps ({_kept_by(config)}); loss on answer tokens only
- prompts: {_prompts(config, data)}{_started(record)}

| epoch | step | train loss | validation loss |
|---|---|---|---|
{losses}

The full record is `training.json`.
"""


def _shot_counts(made: Sequence[Record]) -> dict[str, int]:
    """How many items carry each number of examples (JSON keys: strings)."""
    return {str(k): n for k, n in sorted(Counter(r.shots for r in made).items())}


def _prompts(config: dict[str, Any], data: dict[str, Any]) -> str:
    shots = config.get("shots") or [0]
    if list(shots) == [0]:
        return "0-shot (the query alone)"
    counts = ", ".join(f"{n} with {k}" for k, n in data.get("shots", {}).items())
    return f"k drawn from {list(shots)} same-sample-type examples per item ({counts})"


def _started(record: dict[str, Any]) -> str:
    start = record.get("started_from")
    if not start:
        return ""
    return (
        f"\n- started from `{start['adapter']}` (weights sha256 `{start['sha256'][:12]}`, "
        f"data hash `{str(start.get('data_hash'))[:12]}`)"
    )


def _kept_by(config: dict[str, Any]) -> str:
    if config.get("select_by") == "letter_f1":
        n = config.get("letter_f1_items", 40)
        return f"best micro-F1 of the letters generated for the first {n} validation prompts"
    return "lowest validation answer loss"


def _start_from(model: Any, config: SFTConfig) -> dict[str, Any]:
    """Load ``config.init_adapter``'s LoRA weights into ``model`` (refused unless its
    rank, alpha and projections are the run's); what it was, for the record."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    source = Path(str(config.init_adapter))
    weights, settings = source / "adapter_model.safetensors", source / "adapter_config.json"
    if not weights.exists() or not settings.exists():
        raise SFTError(f"{source} is not an adapter (no adapter_model.safetensors)")
    found = json.loads(settings.read_text())
    want = {"r": config.rank, "lora_alpha": config.alpha}
    differs = {key: found.get(key) for key, value in want.items() if found.get(key) != value}
    if set(found.get("target_modules") or ()) != set(config.target_modules):
        differs["target_modules"] = found.get("target_modules")
    if differs:
        raise SFTError(f"{source} does not match this run's LoRA ({want}): it has {differs}")
    state = {key: value.float() for key, value in load_file(weights).items()}
    unexpected = list(getattr(set_peft_model_state_dict(model, state), "unexpected_keys", []))
    if unexpected:
        raise SFTError(f"{source} has weights this model lacks: {unexpected[:3]}")
    record = source / TRAINING_RECORD
    data = json.loads(record.read_text()).get("data", {}) if record.exists() else {}
    return {
        "adapter": str(source),
        "sha256": sha256_file(weights),
        "data_hash": data.get("hash"),
    }


def _lr_factor(config: SFTConfig, step: int, total_steps: int) -> float:
    """The learning rate at ``step`` as a share of ``config.learning_rate``."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    return max(0.0, 1.0 - step / max(total_steps, 1))


_LAYER = re.compile(r"\.layers\.(\d+)\.")


def _freeze_lower_layers(model: Any, top: int) -> int:
    """Only the LoRA of the top ``top`` decoder layers learns; the rest keep B = 0.
    Returns the number of the lowest layer that learns."""
    layers = {int(m.group(1)) for name, _ in model.named_parameters() if (m := _LAYER.search(name))}
    if not layers:
        raise SFTError("the model has no numbered decoder layers to choose from")
    lowest = max(layers) + 1 - top
    for name, parameter in model.named_parameters():
        match = _LAYER.search(name)
        if "lora_" in name and match and int(match.group(1)) < lowest:
            parameter.requires_grad_(False)
    return max(lowest, 0)


class _Validation:
    """The validation slice's answer loss and, with ``select_by="letter_f1"``, the
    micro-F1 of the letters greedy decoding gives (what the served adapter answers)."""

    def __init__(
        self,
        model: Any,
        records: Sequence[Record],
        examples: list[Example],
        batch_loss: Callable[[list[Example]], tuple[Any, int]],
        tokenizer: Any,
        pad_id: int,
        config: SFTConfig,
        device: str,
    ) -> None:
        self.model, self.records, self.examples = model, records, examples
        self.batch_loss, self.tokenizer, self.pad_id = batch_loss, tokenizer, pad_id
        self.config, self.device = config, device

    def __bool__(self) -> bool:
        return bool(self.examples)

    def measure(self) -> dict[str, float]:
        if not self.examples:
            return {}
        found = {
            "validation_loss": round(
                mean_loss(self.model, self.examples, self.config.batch_size, self.batch_loss), 5
            )
        }
        if self.config.select_by == "letter_f1":
            found["validation_letter_f1"] = round(self._letter_f1(), 4)
        return found

    def key(self, entry: dict[str, Any]) -> tuple[float, ...]:
        """Larger is better: (F1, −loss) or (−loss, 0); the training loss without a
        validation slice."""
        loss = entry.get("validation_loss", entry["train_loss"])
        if "validation_letter_f1" in entry:
            return (entry["validation_letter_f1"], -loss)
        return (-loss, 0.0)

    def best_loss(self, history: list[dict[str, Any]], step: int) -> float | None:
        return next((e.get("validation_loss") for e in history if e["step"] == step), None)

    def best_f1(self, history: list[dict[str, Any]], step: int) -> float | None:
        return next((e.get("validation_letter_f1") for e in history if e["step"] == step), None)

    def _letter_f1(self) -> float:
        import torch

        from ptychobench.labels import vocabulary
        from ptychobench.metrics import score
        from ptychobench.parsing import parse_answer

        task = Task(self.config.task)
        truths, answers = [], []
        self.model.eval()
        with torch.no_grad():
            pairs = list(zip(self.records, self.examples, strict=True))
            for record, example in pairs[: self.config.letter_f1_items]:
                item = example.item
                n_prompt = len(item["labels"]) - answer_tokens(item)
                prompt = torch.tensor([item["input_ids"][:n_prompt]], device=self.device)
                output = self.model.generate(
                    input_ids=prompt,
                    attention_mask=torch.ones_like(prompt),
                    max_new_tokens=24,
                    do_sample=False,
                    pad_token_id=self.pad_id,
                )
                text = self.tokenizer.decode(output[0, n_prompt:], skip_special_tokens=True)
                answers.append(list(parse_answer(text, task).labels))
                truths.append(list(parse_answer(record.messages[-1]["content"], task).labels))
        self.model.train()
        return float(score(truths, answers, vocabulary(task)).micro.f1)


def _lora_state(model: Any) -> dict[str, Any]:
    return {
        name: tensor.detach().clone()
        for name, tensor in model.state_dict().items()
        if "lora_" in name
    }
