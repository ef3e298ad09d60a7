"""The one fit loop of every gradient-trained model here: text SFT (``training.sft``),
the VLM's vision pretraining and its detection SFT (``training.vlm``).

A run is: seeded shuffles of the training items into batches (``batches``), batches
grouped for gradient accumulation, the loss of a group normalised by its answer tokens,
an optional gradient-norm clip, one optimiser and scheduler step per group; a
checkpoint (validation, history entry, progress callback, best-state bookkeeping,
early stopping) after each epoch or every ``eval_every`` steps; at the end the best
state is loaded back. What differs between the runs (how a batch becomes a loss, the
optimiser, the schedule, what "best" means and what is kept) is passed in, so that
each caller draws exactly the random numbers, in the same order, that it did when it
had its own copy of this loop.

Also the small pieces both trainers share: the device and precision, the validation
loss, library versions and writing an adapter as vLLM loads it.
"""

from __future__ import annotations

import json
import platform
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Entry = dict[str, Any]
Key = tuple[float, ...]


class SFTError(RuntimeError):
    """Training cannot start or finish; the message says why."""


def resolve_device(device: str) -> str:
    """``auto`` is CUDA when there is a GPU, else the CPU."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SFTError("device 'cuda' was asked for but torch sees no GPU")
    return device


def resolve_precision(precision: str, device: str) -> str:
    """``auto``: bf16 autocast on a GPU, float32 on the CPU."""
    if precision == "auto":
        return "bf16-autocast" if device == "cuda" else "float32"
    return precision


def versions() -> dict[str, str]:
    """The library versions a training record carries."""
    from importlib.metadata import version

    found = {name: version(name) for name in ("torch", "transformers", "peft")}
    return {**found, "python": platform.python_version()}


def save_adapter(model: Any, out: Path, dtype: str) -> None:
    """Write the adapter as vLLM loads it: safetensors, no ``modules_to_save``."""
    import torch

    out.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu", torch.bfloat16 if dtype == "bfloat16" else torch.float32)
    model.save_pretrained(str(out), safe_serialization=True)
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    if adapter_config.get("modules_to_save"):
        raise SFTError("the adapter has modules_to_save, which vLLM cannot load")


BUCKET = 8
"""With a ``length``, batches are cut from windows of this many batches' worth of
shuffled items, each sorted by length."""


def batches(
    items: Sequence[Item],
    size: int,
    rng: random.Random | None,
    length: Callable[[Item], int] | None = None,
) -> list[list[Item]]:
    """``items`` in chunks of ``size``, shuffled first by ``rng`` (in order without).

    With ``length`` (and ``rng``), items of like length share a batch: each window of
    ``BUCKET`` batches' worth of shuffled items is sorted by length before it is cut,
    and the batches are shuffled again, so a batch pads to its own longest item rather
    than to the longest of the set (prompts with 0 to 7 examples differ eightfold).
    """
    order = list(range(len(items)))
    if rng is not None:
        rng.shuffle(order)
    if rng is not None and length is not None:
        window = size * BUCKET
        order = [
            i
            for start in range(0, len(order), window)
            for i in sorted(order[start : start + window], key=lambda i: length(items[i]))
        ]
    out = [[items[i] for i in order[start : start + size]] for start in range(0, len(order), size)]
    if rng is not None and length is not None:
        rng.shuffle(out)
    return out


def mean_loss(
    model: Any,
    items: Sequence[Item],
    size: int,
    batch_loss: Callable[[list[Item]], tuple[Any, int]],
) -> float:
    """Mean loss per answer token over ``items``, in order, without gradients
    (``batch_loss`` gives a batch's summed loss and its token count)."""
    import torch

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for batch in batches(items, size, None):
            loss, n = batch_loss(batch)
            total, count = total + float(loss), count + n
    model.train()
    return total / max(count, 1)


@dataclass(frozen=True)
class Schedule:
    """How long a run lasts and when it is checkpointed."""

    epochs: int
    total_steps: int
    batch_size: int
    patience: int
    grad_accumulation: int = 1
    eval_every: int | None = None
    """Checkpoint every N optimiser steps (None: after each epoch)."""
    clip_norm: float | None = None


@dataclass
class Fitted:
    """What a run did: its history and the checkpoint that was kept (loaded back)."""

    history: list[Entry] = field(default_factory=list)
    steps: int = 0
    best_epoch: int = 0
    best_step: int = 0
    best_entry: Entry | None = None


@dataclass(frozen=True)
class Trainer(Generic[Item]):
    """The parts of a run that differ between the trainers.

    ``loss`` turns a batch into its summed answer loss and token count (training mode);
    ``tokens`` counts an item's answer tokens (a group's loss is divided by their sum);
    ``validate`` gives a checkpoint's validation numbers ({} without a validation set);
    ``key`` ranks a checkpoint's entry (larger is better); ``snapshot`` copies the state
    that is kept. ``floor`` is the key any checkpoint must beat to be kept first (None:
    the first is kept whatever it is).
    """

    loss: Callable[[list[Item]], tuple[Any, int]]
    tokens: Callable[[Item], int]
    validate: Callable[[], dict[str, float]]
    has_validation: bool
    key: Callable[[Entry], Key]
    snapshot: Callable[[], dict[str, Any]]
    floor: Key | None = None
    length: Callable[[Item], int] | None = None
    """When given, batches group items of like length (:func:`batches`)."""


def fit(
    model: Any,
    trainable: list[Any],
    optimizer: Any,
    scheduler: Any,
    items: Sequence[Item],
    trainer: Trainer[Item],
    schedule: Schedule,
    rng: random.Random,
    started: float,
    progress: Callable[[Entry], None] | None = None,
) -> Fitted:
    """Train ``model`` on ``items``; the best checkpoint's state is loaded back."""
    import torch

    fitted = Fitted()
    best_key: Key | None = trainer.floor
    best_state: dict[str, Any] | None = None
    stale = 0
    window_loss, window_tokens = 0.0, 0
    total = schedule.total_steps

    def checkpoint(epoch: int) -> bool:
        """Validate, record, keep the best state; True when training should stop."""
        nonlocal stale, window_loss, window_tokens, best_key, best_state
        entry: Entry = {
            "epoch": epoch,
            "step": fitted.steps,
            "train_loss": round(window_loss / max(window_tokens, 1), 5),
            "seconds": round(time.time() - started, 1),
        }
        window_loss, window_tokens = 0.0, 0
        entry.update(trainer.validate())
        fitted.history.append(entry)
        if progress is not None:
            progress(entry)
        key = trainer.key(entry)
        if not trainer.has_validation or best_key is None or key > best_key:
            best_key, best_state = key, trainer.snapshot()
            fitted.best_epoch, fitted.best_step, fitted.best_entry = epoch, fitted.steps, entry
            stale = 0
        else:
            stale += 1
        return (trainer.has_validation and stale >= schedule.patience) or fitted.steps >= total

    model.train()
    stop = False
    for epoch in range(1, schedule.epochs + 1):
        shuffled = batches(items, schedule.batch_size, rng, trainer.length)
        for group in batches(shuffled, schedule.grad_accumulation, None):
            # the loss is the mean over the answer tokens of the whole accumulation group
            group_tokens = sum(trainer.tokens(item) for batch in group for item in batch)
            for batch in group:
                loss, n = trainer.loss(batch)
                (loss / max(group_tokens, 1)).backward()
                window_loss, window_tokens = window_loss + float(loss.detach()), window_tokens + n
            if schedule.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(trainable, schedule.clip_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            fitted.steps += 1
            if schedule.eval_every is not None and fitted.steps % schedule.eval_every == 0:
                stop = checkpoint(epoch)
            if stop or fitted.steps >= total:
                break
        if not stop and (schedule.eval_every is None or fitted.steps >= total):
            stop = checkpoint(epoch)
        if stop or fitted.steps >= total:
            break

    if best_state is not None:
        model.load_state_dict(best_state, strict=False)
    return fitted
