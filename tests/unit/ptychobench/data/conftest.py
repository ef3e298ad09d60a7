"""Fixtures for the dataset readers and writers: images on disk and JSON files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def write_image(make_png: Callable[..., bytes]) -> Callable[[Path, str, int], Path]:
    """``write_image(directory, name, seed)``: a small valid PNG written to disk."""

    def write(directory: Path, name: str, seed: int = 0) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / name
        path.write_bytes(make_png(seed=seed))
        return path

    return write


@pytest.fixture
def write_json() -> Callable[..., Path]:
    """``write_json(path, data, **dumps_kwargs)``: JSON written with ``json.dumps``."""

    def write(path: Path, data: Any, newline: bool = False, **kwargs: Any) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((json.dumps(data, **kwargs) + ("\n" if newline else "")).encode())
        return path

    return write
