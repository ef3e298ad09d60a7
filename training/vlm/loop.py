"""The VLM's side of the shared fit loop (``training.fit``): the schedule both VLM steps
share (AdamW with warm-up and linear decay, gradients clipped at norm 1, early stopping
on the validation loss) and the small helpers of their records.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ptychobench.data import Sample, split_samples
from training.fit import Schedule, Trainer, fit, mean_loss, resolve_device, resolve_precision
from training.vlm.encoding import IGNORE, Item, answer_loss, collate


class TrainConfig(BaseModel):
    """The schedule shared by pretraining and SFT; the step-specific fields are in the
    subclasses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    learning_rate: float = Field(gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    batch_size: int = Field(default=8, ge=1)
    epochs: int = Field(default=4, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    validation_fraction: float = Field(default=0.1, ge=0, lt=1)
    patience: int = Field(default=2, ge=1)
    warmup_steps: int = Field(default=10, ge=0)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["auto", "bf16-autocast", "float32"] = "auto"
    """``auto``: bf16 autocast on a GPU, float32 on the CPU (measured on this machine's
    AMD EPYC: a bf16-autocast step took 30 times as long as a float32 one)."""


def fit_items(
    model: Any,
    trainable: list[Any],
    data: tuple[list[Item], list[Item]],
    config: TrainConfig,
    pad_id: int,
    augment: bool,
    progress: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """AdamW with warm-up and linear decay, gradients clipped at norm 1, a checkpoint
    after each epoch; the state of the best validation epoch is loaded back at the end.
    Returns the history and what was chosen."""
    import torch

    train_items, validation_items = data
    device, precision = device_precision(config)
    rng = random.Random(config.seed)
    flips = random.Random(config.seed + 1) if augment else None
    optimizer = torch.optim.AdamW(
        trainable, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    total = math.ceil(len(train_items) / config.batch_size) * config.epochs
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    warmup = min(config.warmup_steps, max(total // 5, 1))

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, 1.0 - (step - warmup) / max(total - warmup, 1))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    names = {id(p): n for n, p in model.named_parameters()}

    def validate() -> dict[str, float]:
        if not validation_items:
            return {}
        return {"validation_loss": round(evaluate_loss(model, validation_items, pad_id, config), 5)}

    trainer: Trainer[Item] = Trainer(
        loss=lambda batch: answer_loss(model, collate(batch, pad_id, device, flips), precision),
        tokens=answer_tokens,
        validate=validate,
        has_validation=bool(validation_items),
        key=lambda entry: (-_compared_loss(entry),),
        snapshot=lambda: {names[id(p)]: p.detach().clone() for p in trainable},
        floor=(-math.inf,),
    )
    schedule = Schedule(
        epochs=config.epochs,
        total_steps=total,
        batch_size=config.batch_size,
        patience=config.patience,
        clip_norm=1.0,
    )
    started = time.time()
    fitted = fit(
        model,
        trainable,
        optimizer,
        scheduler,
        train_items,
        trainer,
        schedule,
        rng,
        started,
        progress,
    )
    best = fitted.best_entry
    return {
        "history": fitted.history,
        "steps": fitted.steps,
        "best_epoch": fitted.best_epoch,
        "best_loss": math.inf if best is None else _compared_loss(best),
        "device": device,
        "precision": precision,
        "seconds": round(time.time() - started, 1),
    }


def _compared_loss(entry: dict[str, Any]) -> float:
    """The loss a checkpoint is judged by: the validation loss, else the training loss."""
    loss: float = entry["validation_loss"] if "validation_loss" in entry else entry["train_loss"]
    return loss


def answer_tokens(item: Item) -> int:
    """The answer tokens of ``item`` (those ``answer_loss`` counts)."""
    return sum(1 for label in item.labels[1:] if label != IGNORE)


def evaluate_loss(model: Any, items: list[Item], pad_id: int, config: TrainConfig) -> float:
    """Mean cross-entropy per answer token over ``items`` (no gradients)."""
    device, precision = device_precision(config)
    return mean_loss(
        model,
        items,
        config.batch_size,
        lambda batch: answer_loss(model, collate(batch, pad_id, device, None), precision),
    )


def device_precision(config: TrainConfig) -> tuple[str, str]:
    device = resolve_device(config.device)
    return device, resolve_precision(config.precision, device)


def seed_all(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_validation(
    samples: list[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    if fraction > 0 and len(samples) >= 4:
        train, validation = split_samples(samples, test_fraction=fraction, seed=seed)
        return list(train), list(validation)
    return samples, []


def content_hash(entries: Any) -> str:
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def card_rows(history: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"| {e['epoch']} | {e['step']} | {e['train_loss']:.4f} | "
        f"{e.get('validation_loss', float('nan')):.4f} |"
        for e in history
    )
