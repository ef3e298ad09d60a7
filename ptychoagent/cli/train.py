"""`ptychoagent train agent|diagnosis|classifier`: LoRA SFT of the engine's base models,
and the frozen-feature artifact classifier of the diagnosis service."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Train LoRA adapters (SFT) for the engine.", no_args_is_help=True)

DEFAULT_BASE = Path("models/SmolLM2-135M-Instruct")
DEFAULT_DATASET = Path("data/ptychobench-sim")
DEFAULT_CLASSIFIER = Path("classifiers/physics-v1")


@app.command()
def agent(
    dataset: Path = typer.Option(DEFAULT_DATASET, help="A release (the sim's or the authors')."),
    base: Path = typer.Option(DEFAULT_BASE, help="Base model directory (HF checkpoint)."),
    out: Path = typer.Option(None, help="Adapter directory (default: adapters/<base>-agent)."),
    name: str = typer.Option(None, help="Name in the registry and in vLLM (default: out's)."),
    profile: str = typer.Option("cpu", help="cpu (laptop schedule) or paper (Table 6)."),
    epochs: int = typer.Option(None, help="Override the profile's epochs."),
    max_steps: int = typer.Option(None, help="Stop after this many optimiser steps."),
    limit: int = typer.Option(None, help="Use only the first N training samples."),
    learning_rate: float = typer.Option(None, help="Override lr (profile: 2e-4)."),
    batch_size: int = typer.Option(None, help="Override the per-step batch (4)."),
    grad_accumulation: int = typer.Option(None, help="Override gradient accumulation."),
    seed: int = typer.Option(0, help="Seed of the validation slice, order and LoRA init."),
    device: str = typer.Option("auto", help="auto, cpu or cuda."),
    registry: Path = typer.Option(Path("adapters/registry.json"), help="Adapter registry."),
    register: bool = typer.Option(True, help="Add (or replace) the adapter in the registry."),
) -> None:
    """Train the parameter-recommendation adapter on the dataset's training split."""
    from pydantic import ValidationError

    from ptychoagent.adapters import AdapterError, Registry
    from training.base_models import BaseModelError, ensure_base_model
    from training.sft import SFTError, make_config, train

    if profile not in ("cpu", "paper"):
        typer.echo(f"error: --profile must be cpu or paper, got {profile!r}", err=True)
        raise typer.Exit(2)
    try:
        base = ensure_base_model(base)
        config = make_config(
            profile,  # type: ignore[arg-type]
            base=str(base),
            dataset=str(dataset),
            epochs=epochs,
            max_steps=max_steps,
            limit=limit,
            learning_rate=learning_rate,
            batch_size=batch_size,
            grad_accumulation=grad_accumulation,
            seed=seed,
            device=device,
        )
    except (ValidationError, BaseModelError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    out = out or Path("adapters") / f"{base.name.lower().removesuffix('-instruct')}-agent"
    name = name or out.name

    def report(entry: dict[str, object]) -> None:
        typer.echo("  " + json.dumps(entry))

    typer.echo(f"training {name} on {dataset} ({profile} profile) -> {out}")
    try:
        record = train(config, out, progress=report)
        if register:
            Registry(registry).add(name, out, task=config.task, replace=True)
    except (SFTError, AdapterError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"{out}: best epoch {record['best_epoch']} of {len(record['history'])}, "
        f"{record['steps']} steps, {record['seconds']} s, data {record['data']['hash'][:12]}"
        + (f"; registered as {name!r} in {registry}" if register else "")
    )


@app.command()
def diagnosis(
    base: Path = typer.Option(..., help="A vision-language base model directory."),
) -> None:
    """Train the artifact-detection adapter (needs a vision-language base model)."""
    config = base / "config.json"
    if not config.exists():
        typer.echo(f"error: no base model at {base}", err=True)
        raise typer.Exit(2)
    if "vision_config" not in json.loads(config.read_text()):
        typer.echo(
            f"error: {base} is a text-only model; detection SFT needs a vision-language "
            "model (none ships with this project yet)",
            err=True,
        )
        raise typer.Exit(2)
    typer.echo("error: LoRA SFT of a vision-language model is not available yet", err=True)
    raise typer.Exit(2)


@app.command()
def classifier(
    data: Path = typer.Option(DEFAULT_DATASET, help="A release (the sim's or the authors')."),
    out: Path = typer.Option(DEFAULT_CLASSIFIER, help="Model directory (model.json)."),
    seed: int = typer.Option(0, help="Seed of the cross-validation folds."),
    cnn: bool = typer.Option(
        False, help="Also train the small CNN it is compared with (torch, minutes) -> cnn.json."
    ),
) -> None:
    """Train the diagnosis service's feature classifier on the detection training split.

    Physics features of each image, one-vs-rest logistic regression; the penalty and the
    thresholds are chosen by cross-validation inside the training split, then the test
    split is scored (micro-F1 with a bootstrap 95 % interval, per label) and recorded in
    model.json.
    """
    from pydantic import ValidationError

    from ptychobench.classifier import ClassifierFormatError
    from ptychobench.data import DataFormatError
    from training.classifier import (
        ClassifierConfig,
        ClassifierTrainingError,
        CNNConfig,
        train,
        train_cnn,
    )

    name = out.name or "classifier"
    try:
        config = ClassifierConfig(name=name, dataset=str(data), seed=seed)
    except ValidationError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"training classifier {name} on {data} -> {out}")
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
        FileNotFoundError,
        KeyError,
    ) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    test = model.metadata["metrics"]["test"]["micro_f1"]
    typer.echo(
        f"{out}: test micro-F1 {test['point']:.3f} "
        f"[{test['ci_low']:.3f}, {test['ci_high']:.3f}], "
        f"data {model.metadata['data']['hash'][:12]}"
    )
