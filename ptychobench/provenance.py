"""What a run was made with, read from files and the interpreter: content hashes of
adapters and data sets, the prompts' version and hash, package versions, the machine.

A run's record keeps these so that it alone says how to make the run again and whether
two runs can be compared (inspect_ai's ``EvalSpec`` is the model). Nothing heavy is
imported: package versions come from the installed distributions' metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any, Final

PACKAGES: Final[tuple[str, ...]] = (
    "ptychoagent",
    "torch",
    "transformers",
    "peft",
    "vllm",
    "fastapi",
    "pydantic",
    "numpy",
)
"""The distributions whose versions a run records (None: not installed)."""
ADAPTER_REGISTRY: Final = Path("artifacts/registry.json")
"""Where adapters are registered, relative to the project's root."""
_NOT_CONTENT: Final = frozenset({".md", ".txt"})
"""Suffixes of an adapter folder's files that do not change its answers (its notes)."""
_CHUNK: Final = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(path: Path, skip_suffixes: Iterable[str] = ()) -> str | None:
    """SHA-256 of a file, or of a folder's files (their relative paths and contents, in
    sorted order, hidden files and ``skip_suffixes`` left out); None if nothing is there."""
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        return None
    skip = set(skip_suffixes)
    digest = hashlib.sha256()
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and p.suffix not in skip
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    for file in files:
        digest.update(f"{file.relative_to(path).as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def prompt_identity() -> dict[str, str]:
    """The prompts' version (``PROMPT_VERSION``) and the SHA-256 of their texts: a changed
    prompt changes the hash even where the version was not bumped."""
    from ptychobench import prompts

    texts = {
        "version": prompts.PROMPT_VERSION,
        "detection": prompts.DETECTION_PROMPT,
        "recommendation": prompts.RECOMMENDATION_TEMPLATE,
    }
    body = json.dumps(texts, sort_keys=True).encode()
    return {"version": prompts.PROMPT_VERSION, "sha256": hashlib.sha256(body).hexdigest()}


def adapter_path(name: str, root: Path, registry: Path = ADAPTER_REGISTRY) -> Path | None:
    """The folder of a registered adapter, or None when the registry does not name it."""
    file = registry if registry.is_absolute() else root / registry
    try:
        raw = json.loads(file.read_text())
        # ``{"artifacts": [...]}`` (every model, with its kind), or the older
        # adapters-only ``{"adapters": [...]}`` a user's registry may still be in.
        entries = raw["artifacts"] if "artifacts" in raw else raw.get("adapters", [])
    except (OSError, ValueError, AttributeError):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name and "path" in entry:
            path = Path(str(entry["path"]))
            return path if path.is_absolute() else root / path
    return None


def adapter_sha256(name: str, root: Path, registry: Path = ADAPTER_REGISTRY) -> str | None:
    """SHA-256 of a registered adapter's weights and configuration (its folder's files
    but notes); None when it is not registered here or its folder is gone."""
    path = adapter_path(name, root, registry)
    return None if path is None else sha256_tree(path, _NOT_CONTENT)


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Python's version and each distribution's (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def machine() -> dict[str, Any]:
    """The platform and CPU count of this machine."""
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


__all__ = [
    "ADAPTER_REGISTRY",
    "PACKAGES",
    "adapter_path",
    "adapter_sha256",
    "machine",
    "package_versions",
    "prompt_identity",
    "sha256_file",
    "sha256_tree",
]
