"""`ptychoagent train agent|vlm-base|diagnosis|classifier`: LoRA SFT of the engine's base
models, pretraining of the small VLM's vision tower, and the frozen-feature artifact
classifier of the diagnosis service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(help="Train LoRA adapters (SFT) for the engine.", no_args_is_help=True)

DEFAULT_BASE = Path("models/SmolLM2-135M-Instruct")
DEFAULT_DATASET = Path("data/ptychobench-sim")
DEFAULT_CLASSIFIER = Path("artifacts/classifiers/physics-v1")
DEFAULT_VISION = Path("artifacts/vlm/ptycho-smolvlm")
DEFAULT_VLM = Path("models/PtychoSmolVLM-135M")
DEFAULT_DIAGNOSIS = Path("artifacts/adapters/ptycho-smolvlm-diagnosis")

# Options that the trainers share.
DATA = typer.Option(
    [DEFAULT_DATASET],
    "--data",
    "--dataset",
    help="A dataset: a release directory (the sim's or the authors') or a Label Studio "
    "export. Repeat to train on several (their splits together; ids must not repeat). "
    "--dataset is the former name.",
)
NAME = typer.Option(None, help="Name in the registry and in vLLM (default: out's).")
EPOCHS = typer.Option(None, help="Override the profile's epochs.")
MAX_STEPS = typer.Option(None, help="Stop after this many optimiser steps.")
LIMIT = typer.Option(None, help="Use only the first N training samples.")
SEED = typer.Option(0, help="Seed of the validation slice, order and LoRA init.")
DEVICE = typer.Option("auto", help="auto, cpu or cuda.")
REGISTRY = typer.Option(Path("artifacts/registry.json"), help="Adapter registry.")
REGISTER = typer.Option(True, help="Add (or replace) the adapter in the registry.")


@app.command()
def agent(
    data: list[Path] = DATA,
    base: Path = typer.Option(DEFAULT_BASE, help="Base model directory (HF checkpoint)."),
    out: Path = typer.Option(
        None, help="Adapter directory (default: artifacts/adapters/<base>-agent)."
    ),
    name: str = NAME,
    profile: str = typer.Option(
        "cpu",
        help="cpu (laptop schedule), fast (constant lr on the top layers, kept by "
        "validation letter F1), fewshot (fast on prompts with 0, 1 or 3 same-type "
        "examples) or paper (Table 6).",
    ),
    shots: str = typer.Option(
        None,
        help="Comma-separated counts of same-sample-type examples in the training prompts, "
        "one drawn per item (e.g. 0,1,3; default: the profile's, 0 for all but fewshot).",
    ),
    init_adapter: Path = typer.Option(
        None, help="Start from this adapter's weights (e.g. the shipped one) instead of fresh."
    ),
    epochs: int = EPOCHS,
    max_steps: int = MAX_STEPS,
    limit: int = LIMIT,
    learning_rate: float = typer.Option(None, help="Override lr (profile: 2e-4)."),
    batch_size: int = typer.Option(None, help="Override the per-step batch (4)."),
    grad_accumulation: int = typer.Option(None, help="Override gradient accumulation."),
    seed: int = SEED,
    device: str = DEVICE,
    registry: Path = REGISTRY,
    register: bool = REGISTER,
) -> None:
    """Train the parameter-recommendation adapter on the dataset's training split."""
    from pydantic import ValidationError

    from ptychoagent.adapters import AdapterError, Registry
    from training.base_models import BaseModelError, ensure_base_model
    from training.sft import SFTError, make_config, train

    if profile not in ("cpu", "fast", "fewshot", "paper"):
        typer.echo(
            f"error: --profile must be cpu, fast, fewshot or paper, got {profile!r}", err=True
        )
        raise typer.Exit(2)
    try:
        counts = tuple(int(k) for k in shots.split(",")) if shots else None
    except ValueError:
        typer.echo(f"error: --shots must be comma-separated whole numbers, got {shots!r}", err=True)
        raise typer.Exit(2) from None
    dataset = _datasets(data)
    try:
        base = ensure_base_model(base)
        config = make_config(
            profile,  # type: ignore[arg-type]
            base=str(base),
            dataset=dataset,
            epochs=epochs,
            max_steps=max_steps,
            limit=limit,
            learning_rate=learning_rate,
            batch_size=batch_size,
            grad_accumulation=grad_accumulation,
            seed=seed,
            device=device,
            shots=counts,
            init_adapter=str(init_adapter) if init_adapter else None,
        )
    except (ValidationError, BaseModelError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    out = out or Path("artifacts/adapters") / f"{base.name.lower().removesuffix('-instruct')}-agent"
    name = name or out.name

    typer.echo(f"training {name} on {_shown(dataset)} ({profile} profile) -> {out}")
    try:
        record = train(config, out, progress=_echo)
        if register:
            Registry(registry).add(name, out, task=config.task, replace=True)
    except (SFTError, AdapterError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    _trained(out, record, name if register else None, registry)


@app.command("vlm-base")
def vlm_base(
    data: list[Path] = typer.Option(
        [DEFAULT_DATASET, Path("data/pretrain-sim")],
        "--data",
        help="Releases whose images are described (repeat; their labels are not used).",
    ),
    held_out: Path = typer.Option(
        DEFAULT_DATASET, help="Release whose detection test split is never used."
    ),
    text_model: Path = typer.Option(DEFAULT_BASE, help="The text model (prepared SmolLM2)."),
    out: Path = typer.Option(DEFAULT_VISION, help="Where vision.safetensors and its record go."),
    epochs: int = typer.Option(None, help="Epochs over the images (default 6)."),
    max_steps: int = typer.Option(None, help="Stop after this many optimiser steps."),
    limit: int = typer.Option(None, help="Use only the first N images (by id)."),
    learning_rate: float = typer.Option(None, help="Override lr (1e-3)."),
    batch_size: int = typer.Option(None, help="Override the batch (8)."),
    seed: int = typer.Option(0, help="Seed of the fresh tower, the order and the flips."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    assemble: bool = typer.Option(
        True, help="Also assemble the servable base checkpoint (models/PtychoSmolVLM-135M)."
    ),
) -> None:
    """Pretrain the VLM's vision tower and connector to describe reconstructions.

    The text model stays frozen; captions name the sample type, instrument, scan and four
    appearance words measured from the pixels. No artifact label is used (docs/vlm.md).
    """
    from pydantic import ValidationError

    from training.base_models import BaseModelError, ensure_base_model
    from training.vlm import VISION_FILE, PretrainConfig, VLMError, pretrain
    from training.vlm import assemble as assemble_checkpoint

    missing = [str(root) for root in data if not (root / "annotations").is_dir()]
    if missing:
        typer.echo(
            f"error: no release at {', '.join(missing)} (generate one with ptychoagent sim)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        text = ensure_base_model(text_model)
        fields: dict[str, Any] = {
            "epochs": epochs,
            "max_steps": max_steps,
            "limit": limit,
            "learning_rate": learning_rate,
            "batch_size": batch_size,
        }
        config = PretrainConfig(
            text_model=str(text),
            datasets=tuple(str(root) for root in data),
            held_out=str(held_out),
            seed=seed,
            device=device,  # type: ignore[arg-type]
            **{key: value for key, value in fields.items() if value is not None},
        )
    except (ValidationError, BaseModelError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"pretraining the vision tower on {', '.join(map(str, data))} -> {out}")
    checkpoint = DEFAULT_VLM if text_model == DEFAULT_BASE else text.parent / DEFAULT_VLM.name
    try:
        record = pretrain(config, out, text.parent, progress=_echo)
        if assemble:
            assemble_checkpoint(checkpoint, text, out / VISION_FILE)
    except (VLMError, BaseModelError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{out}: {record['data']['images']} images, best epoch {record['best_epoch']}, "
        f"caption loss {record['validation_loss_before']} -> {record['best_loss']}, "
        f"{record['seconds']} s" + (f"; base checkpoint {checkpoint}" if assemble else "")
    )


@app.command()
def diagnosis(
    data: list[Path] = DATA,
    base: Path = typer.Option(DEFAULT_VLM, help="The vision-language base checkpoint."),
    out: Path = typer.Option(DEFAULT_DIAGNOSIS, help="Adapter directory."),
    name: str = NAME,
    profile: str = typer.Option("cpu", help="cpu (laptop schedule) or paper (Table 5)."),
    epochs: int = EPOCHS,
    max_steps: int = MAX_STEPS,
    limit: int = LIMIT,
    learning_rate: float = typer.Option(None, help="Override lr (2e-4)."),
    batch_size: int = typer.Option(None, help="Override the batch."),
    seed: int = SEED,
    device: str = DEVICE,
    registry: Path = REGISTRY,
    register: bool = REGISTER,
) -> None:
    """Train the artifact-detection adapter: LoRA SFT of the base VLM's text model on the
    detection training split (0-shot, the paper's prompt)."""
    from pydantic import ValidationError

    from ptychoagent.adapters import AdapterError, Registry
    from training.base_models import BaseModelError, ensure_base_model
    from training.vlm import VLMError, diagnosis_config, train_diagnosis

    dataset = _datasets(data)
    try:
        checkpoint = ensure_base_model(base)
        config = diagnosis_config(
            profile,
            base=str(checkpoint),
            dataset=dataset,
            epochs=epochs,
            max_steps=max_steps,
            limit=limit,
            learning_rate=learning_rate,
            batch_size=batch_size,
            seed=seed,
            device=device,
        )
    except (ValidationError, BaseModelError, VLMError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    name = name or out.name
    typer.echo(f"training {name} on {_shown(dataset)} ({profile} profile) -> {out}")
    try:
        record = train_diagnosis(config, out, progress=_echo)
        if register:
            Registry(registry).add(name, out, task="detection", replace=True)
    except (VLMError, AdapterError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    _trained(out, record, name if register else None, registry)


def _datasets(data: list[Path]) -> str | tuple[str, ...]:
    """The configuration's ``dataset`` for the ``--data`` given (one path stays a string, as
    the shipped records have it), after checking that they open together: a missing or
    unreadable dataset, or an id in two of them, ends the command (exit 2, one line)."""
    from ptychobench.data import DataFormatError, open_datasets
    from ptychobench.data.opening import describe

    paths = [str(path) for path in data]
    try:
        open_datasets(paths)
    except DataFormatError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    for path in paths:
        typer.echo(describe(path))
    return paths[0] if len(paths) == 1 else tuple(paths)


def _shown(dataset: str | tuple[str, ...]) -> str:
    from training.data import shown

    return shown(dataset)


def _echo(entry: dict[str, object]) -> None:
    typer.echo("  " + json.dumps(entry))


def _trained(out: Path, record: dict[str, Any], name: str | None, registry: Path) -> None:
    """The one-line summary of a trained adapter (``name``: where it was registered)."""
    typer.echo(
        f"{out}: best epoch {record['best_epoch']} of {len(record['history'])}, "
        f"{record['steps']} steps, {record['seconds']} s, data {record['data']['hash'][:12]}"
        + (f"; registered as {name!r} in {registry}" if name else "")
    )


@app.command()
def classifier(
    data: list[Path] = DATA,
    out: Path = typer.Option(DEFAULT_CLASSIFIER, help="Model directory (model.json)."),
    seed: int = typer.Option(0, help="Seed of the cross-validation folds."),
    version: str = typer.Option(
        "1", help="The model's version (the service reports name@version with every answer)."
    ),
    cnn: bool = typer.Option(
        False, help="Also train the small CNN it is compared with (torch, minutes) -> cnn.json."
    ),
    backbone: int = typer.Option(
        0,
        "--backbone-components",
        min=0,
        help="Add this many principal components of the pretrained EfficientNet-Lite0's "
        "texture statistics to the physics features (torch at inference; 0: physics only).",
    ),
    registry: Path = REGISTRY,
    register: bool = typer.Option(True, help="Add (or replace) the classifier in the registry."),
) -> None:
    """Train the diagnosis service's feature classifier on the detection training split.

    Physics features of each image (and, with --backbone-components, a pretrained
    backbone's texture statistics), one-vs-rest logistic regression; the penalty and the
    thresholds are chosen by cross-validation inside the training split, then the test
    split is scored (micro-F1 with a bootstrap 95 % interval, per label) and recorded in
    model.json.
    """
    from pydantic import ValidationError

    from ptychobench.backbone import BackboneUnavailableError
    from ptychobench.classifier import ClassifierFormatError
    from ptychobench.data import DataFormatError
    from training.classifier import ClassifierConfig, ClassifierTrainingError, train
    from training.classifier_cnn import CNNConfig, train_cnn

    name = out.name or "classifier"
    dataset = _datasets(data)
    try:
        config = ClassifierConfig(
            name=name,
            dataset=dataset,
            seed=seed,
            version=version,
            backbone_components=backbone,
        )
    except ValidationError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"training classifier {name} on {_shown(dataset)} -> {out}")
    try:
        model = train(config, out, progress=lambda line: typer.echo("  " + line))
        if cnn:
            train_cnn(
                config,
                CNNConfig(seed=seed),
                out,
                progress=lambda line: typer.echo("  " + line),
                reference=model,
            )
    except (
        ClassifierTrainingError,
        ClassifierFormatError,
        DataFormatError,
        BackboneUnavailableError,
        FileNotFoundError,
        KeyError,
    ) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    test = model.metadata["metrics"]["test"]["micro_f1"]
    if register:
        from ptychoagent.adapters import Registry

        Registry(registry).put_artifact(
            "classifier",
            name,
            out,
            base="ptychobench.features"
            + ("+efficientnet-lite0" if model.projection is not None else ""),
            task="detection",
            data_hash=model.metadata["data"]["hash"],
            metrics={"test_micro_f1": test["point"]},
        )
    typer.echo(
        f"{out}: test micro-F1 {test['point']:.3f} "
        f"[{test['ci_low']:.3f}, {test['ci_high']:.3f}], "
        f"data {model.metadata['data']['hash'][:12]}"
        + (f"; registered as {name!r} in {registry}" if register else "")
    )
