"""Model directories made here: a manifest (``ptychoagent-model.json``) beside the
weights, written through a staging directory so that an interrupted build leaves no
half-written model, and the file hashes and library versions a manifest records.

The text base model (``training.base_models``), the tiny test VLM (``training.tiny_vlm``)
and the assembled VLM (``training.vlm.checkpoint``) are all written this way.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

MANIFEST: Final = "ptychoagent-model.json"


class BaseModelError(RuntimeError):
    """A base model cannot be prepared; the message says what to do."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / MANIFEST
    if not path.is_file():
        return None
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return loaded


def publish_model_dir(target: Path, write: Callable[[Path], dict[str, Any]]) -> Path:
    """Build a model directory in a staging directory beside ``target`` (``write`` fills
    it and returns its manifest), then move it into place, so that an interrupted build
    leaves no half-written model.

    Only a directory this project made (one with a manifest) or an empty one is
    replaced: a path that names anything else (a typo, ``.``) is refused, never deleted.
    """
    target = Path(target)
    if target.exists() and (
        not target.is_dir() or (any(target.iterdir()) and read_manifest(target) is None)
    ):
        raise BaseModelError(
            f"{target} exists and is not a model directory made here; "
            "choose another path, or remove it yourself"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        record = write(staging)
        (staging / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def package_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
