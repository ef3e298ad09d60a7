"""The small CNN the feature classifier (``training.classifier``) is compared with
(``ptychoagent train classifier --cnn``): trained on the same split, its thresholds
chosen by out-of-fold F1 inside the training split as for the feature model, scored on
the test split; its record is ``cnn.json`` beside ``model.json``, never part of it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from ptychobench.bootstrap import paired_bootstrap
from ptychobench.classifier import FeatureClassifier
from ptychobench.data import Sample
from ptychobench.labels import ARTIFACT_LABELS
from ptychobench.metrics import binarize
from training.classifier import (
    CNN_FILE,
    BoolArray,
    ClassifierConfig,
    FloatArray,
    choose_thresholds,
    dataset_splits,
    decide,
    library_versions,
    micro_f1,
    read_grey,
    stratified_folds,
    test_report,
)


class CNNConfig(BaseModel):
    """The small CNN the feature model is compared with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    size: int = 64
    channels: tuple[int, ...] = (16, 32, 48, 64)
    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    folds: int = 3
    threads: int = 2


def _cnn(channels: Sequence[int], n_labels: int) -> Any:
    import torch

    layers: list[Any] = []
    previous = 1
    for width in channels:
        layers += [
            torch.nn.Conv2d(previous, width, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(width),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        ]
        previous = width
    layers += [
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(previous, n_labels),
    ]
    return torch.nn.Sequential(*layers)


def _fit_cnn(images: Any, labels: Any, config: CNNConfig, seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    model = _cnn(config.channels, labels.shape[1])
    positives = labels.sum(0)
    pos_weight = ((labels.shape[0] - positives) / positives.clamp(min=1)).clamp(max=20)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps = config.epochs * -(-images.shape[0] // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(config.epochs):
        model.train()
        order = torch.randperm(images.shape[0], generator=generator)
        for start in range(0, images.shape[0], config.batch_size):
            index = order[start : start + config.batch_size]
            batch = images[index]
            # flips keep the scan axes (rows stay rows), so line artifacts stay lines
            if torch.rand(1, generator=generator).item() < 0.5:
                batch = batch.flip(-1)
            if torch.rand(1, generator=generator).item() < 0.5:
                batch = batch.flip(-2)
            loss = loss_fn(model(batch), labels[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    model.eval()
    return model


def _cnn_scores(model: Any, images: Any) -> FloatArray:
    import torch

    with torch.no_grad():
        p = torch.sigmoid(model(images)).numpy().astype(np.float64)
    return p


def train_cnn(
    config: ClassifierConfig,
    cnn: CNNConfig,
    out: Path | None = None,
    progress: Callable[[str], None] | None = None,
    reference: FeatureClassifier | None = None,
) -> dict[str, Any]:
    """Train the small CNN (thresholds by out-of-fold F1 inside the training split, as
    for the feature model), score it on the test split, and (with ``out``) write
    ``cnn.json`` beside the model. With a ``reference`` (the feature model), a paired
    bootstrap of the micro-F1 difference (CNN minus reference) on the same resamples is
    recorded too. Returns the record."""
    import time

    import torch

    from ptychobench.features import resample

    say = progress or (lambda _: None)
    torch.set_num_threads(cnn.threads)
    torch.use_deterministic_algorithms(True)
    samples = dataset_splits(config)

    def tensors(split: Sequence[Sample]) -> tuple[Any, BoolArray]:
        arrays = [resample(read_grey(s.image or ""), (cnn.size, cnn.size)) for s in split]
        images = torch.tensor(np.stack(arrays)[:, None], dtype=torch.float32) - 0.5
        return images, binarize([s.artifacts for s in split], ARTIFACT_LABELS)

    started = time.perf_counter()
    x_train, y_train = tensors(samples["train"])
    x_test, y_test = tensors(samples["test"])
    labels = torch.tensor(y_train, dtype=torch.float32)
    fold = stratified_folds(y_train, cnn.folds, cnn.seed)
    oof = np.zeros(y_train.shape)
    for k in range(cnn.folds):
        held = fold == k
        model = _fit_cnn(
            x_train[torch.from_numpy(~held)], labels[torch.from_numpy(~held)], cnn, cnn.seed + k
        )
        oof[held] = _cnn_scores(model, x_train[torch.from_numpy(held)])
        say(f"cnn fold {k + 1}/{cnn.folds} done ({time.perf_counter() - started:.0f} s)")
    thresholds = choose_thresholds(oof, y_train, config.threshold_grid)
    model = _fit_cnn(x_train, labels, cnn, cnn.seed + cnn.folds)
    pred = decide(_cnn_scores(model, x_test), thresholds)
    types = [s.sample_type for s in samples["test"]]
    test_ids = [s.id for s in samples["test"]]
    record: dict[str, Any] = {
        "config": cnn.model_dump(mode="json"),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "thresholds": dict(zip(ARTIFACT_LABELS, thresholds.tolist(), strict=True)),
        "cross_validation": {"micro_f1": round(micro_f1(y_train, decide(oof, thresholds)), 4)},
        "test": test_report(y_test, pred, config, types),
        "seconds": round(time.perf_counter() - started, 1),
        "versions": {**library_versions(), "torch": torch.__version__},
        "test_predictions": {
            sample_id: [label for label, on in zip(ARTIFACT_LABELS, row, strict=True) if on]
            for sample_id, row in zip(test_ids, pred, strict=True)
        },
    }
    if reference is not None:
        reference_pred = binarize(
            [reference.predict(read_grey(s.image or "")) for s in samples["test"]],
            ARTIFACT_LABELS,
        )
        paired = paired_bootstrap(
            y_test,
            pred,
            reference_pred,
            "micro_f1",
            n_resamples=config.n_resamples,
            seed=config.bootstrap_seed,
        )
        record["paired_vs_reference"] = {
            "reference": reference.name,
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in paired.to_dict().items()},
        }
    say(f"cnn test micro-F1 {record['test']['micro_f1']} ({record['seconds']} s)")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / CNN_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record
