"""Step 3 of the small VLM (``ptychoagent train diagnosis``): LoRA SFT of the base VLM
on the detection training split: the paper's prompt and ``<answer>[labels]</answer>``,
0-shot, loss on the answer tokens, the adapter on the text model's projections only
(vLLM applies LoRA to the language model of a multimodal model).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field

from ptychobench.data import Sample
from ptychobench.labels import Task
from ptychobench.prompts import DETECTION_PROMPT, PROMPT_VERSION, format_answer
from training.adapters import PROJECTIONS, lora_config, outside_text_model
from training.checkpoints import read_manifest
from training.data import DatasetPaths, open_training_data, shown, splits_made
from training.fit import save_adapter, versions
from training.vlm.checkpoint import VLMError, load_model
from training.vlm.encoding import Item, encode, messages_for, open_rgb
from training.vlm.loop import (
    TrainConfig,
    card_rows,
    content_hash,
    device_precision,
    fit_items,
    seed_all,
    split_validation,
)

TRAINING_RECORD: Final = "training.json"


class DiagnosisConfig(TrainConfig):
    """LoRA SFT of the base VLM on artifact detection (``ptychoagent train diagnosis``).

    ``paper`` is Table 5 for the VLM (r 16, alpha 16, dropout 0.05, lr 2e-4, 50 epochs);
    ``cpu`` keeps the LoRA and the learning rate and stops early on a validation slice.
    """

    base: str
    dataset: DatasetPaths
    """A dataset, or several whose training splits are used together (``training.data``)."""
    split: str = "train"
    profile: Literal["paper", "cpu"] = "cpu"
    rank: int = Field(default=16, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: tuple[str, ...] = PROJECTIONS
    learning_rate: float = Field(default=2e-4, gt=0)
    limit: int | None = Field(default=None, ge=1)
    save_dtype: Literal["bfloat16", "float32"] = "float32"


DIAGNOSIS_PROFILES: Final[dict[str, dict[str, Any]]] = {
    "paper": {"epochs": 50, "batch_size": 4, "validation_fraction": 0.0},
    "cpu": {"epochs": 4, "batch_size": 8, "validation_fraction": 0.1},
}


def diagnosis_config(profile: str = "cpu", **fields: Any) -> DiagnosisConfig:
    """A configuration from a profile, with explicit fields (not None) taking precedence."""
    if profile not in DIAGNOSIS_PROFILES:
        raise VLMError(f"profile must be one of {sorted(DIAGNOSIS_PROFILES)}, got {profile!r}")
    given = {key: value for key, value in fields.items() if value is not None}
    return DiagnosisConfig.model_validate(
        {**DIAGNOSIS_PROFILES[profile], "profile": profile, **given}
    )


def train_diagnosis(
    config: DiagnosisConfig,
    out: str | Path,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train the detection adapter; write it (as vLLM loads it), its record and a card."""
    from peft import get_peft_model

    seed_all(config.seed)
    base, out = Path(config.base), Path(out)
    config_file = base / "config.json"
    if not config_file.is_file() or "vision_config" not in json.loads(config_file.read_text()):
        raise VLMError(
            f"{base} is not a vision-language checkpoint (see ptychoagent train vlm-base)"
        )
    dataset = open_training_data(config.dataset)
    if config.split not in dataset.splits(Task.DETECTION):
        raise VLMError(f"{shown(config.dataset)} has no detection split {config.split!r}")
    samples = [s for s in dataset.samples(Task.DETECTION, config.split) if s.image is not None]
    samples = samples[: config.limit] if config.limit else samples
    if not samples:
        raise VLMError(f"{shown(config.dataset)}: the {config.split} split has no images")
    train, validation = split_validation(samples, config.validation_fraction, config.seed)
    device, _ = device_precision(config)
    model, processor = load_model(base, device)

    def items(chosen: list[Sample]) -> list[Item]:
        return [
            encode(
                s.id,
                messages_for(DETECTION_PROMPT, format_answer(s.artifacts, Task.DETECTION)),
                [open_rgb(s.image)],
                processor,
            )
            for s in chosen
            if s.image
        ]

    data = items(train), items(validation)
    lora = lora_config(
        config.rank,
        config.alpha,
        config.dropout,
        config.target_modules,
        outside_text_model(model),
    )
    peft_model = get_peft_model(model, lora)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    pad_id = processor.tokenizer.pad_token_id
    fitted = fit_items(model, trainable, data, config, pad_id, False, progress)
    save_adapter(peft_model, out, config.save_dtype)
    truth = {
        "prompt_version": PROMPT_VERSION,
        "train": [[s.id, list(s.artifacts)] for s in train],
        "validation": [[s.id, list(s.artifacts)] for s in validation],
    }
    record = {
        "format": "ptychoagent-sft/1",
        "config": {**config.model_dump(mode="json"), "task": Task.DETECTION.value},
        "optimizer": "adamw (torch)",
        "data": {
            "hash": content_hash(truth),
            "train_ids": [s.id for s in train],
            "validation_ids": [s.id for s in validation],
            "train_examples": len(data[0]),
            "validation_examples": len(data[1]),
            "max_tokens": max(len(item.input_ids) for item in data[0]),
            **({"splits_made": made} if (made := splits_made(config.dataset)) else {}),
        },
        "base_model": read_manifest(base),
        "trainable_parameters": sum(p.numel() for p in trainable),
        **fitted,
        "best_validation_loss": fitted["best_loss"] if data[1] else None,
        "versions": versions(),
    }
    (out / TRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (out / "README.md").write_text(_diagnosis_card(out.name, record))
    return record


def _diagnosis_card(name: str, record: dict[str, Any]) -> str:
    config, data = record["config"], record["data"]
    return f"""# {name}

LoRA adapter of the PtychoAgent SmolVLM (`{Path(config["base"]).name}`), task **detection**
(the paper's prompt, answer `<answer>[artifact, ...]</answer>`). Trained by
`ptychoagent train diagnosis` ({config["profile"]} profile); see docs/vlm.md.

- data: {shown(config["dataset"])}, split `{config["split"]}`: {data["train_examples"]} training and
  {data["validation_examples"]} validation images; data hash `{data["hash"]}`
- LoRA r {config["rank"]}, alpha {config["alpha"]}, dropout {config["dropout"]}, on the text
  model's {", ".join(config["target_modules"])}
- AdamW lr {config["learning_rate"]}, batch {config["batch_size"]}, seed {config["seed"]};
  {record["device"]}, {record["precision"]}; {record["seconds"]} s
- kept epoch {record["best_epoch"]} of {len(record["history"])}; loss on answer tokens only

| epoch | step | train loss | validation loss |
|---|---|---|---|
{card_rows(record["history"])}

The full record is `{TRAINING_RECORD}`.
"""
