"""The data a training run reads: one dataset, or several whose splits are used together.

A configuration's ``dataset`` is one path (a string, as every record written before
several were possible has it, so those records still validate and reproduce) or a tuple
of paths. Each path is anything ``ptychobench.data.open_dataset`` opens: a release
directory or a Label Studio export (split as the paper did; the records say so).
Several open as one (``ptychobench.data.open_datasets``): same-named splits
concatenated in the order given, a sample id repeated across them refused.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

from ptychobench.data import LABELSTUDIO_SPLIT, Dataset, locate_dataset, open_datasets


def _one_or_many(value: str | tuple[str, ...]) -> str | tuple[str, ...]:
    if isinstance(value, str):
        return value
    if not value:
        raise ValueError("at least one dataset")
    return value[0] if len(value) == 1 else value


DatasetPaths = Annotated[str | tuple[str, ...], AfterValidator(_one_or_many)]
"""One dataset path, or several (a one-element tuple becomes the path itself)."""


def dataset_paths(value: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The paths of a configuration's ``dataset``, as a tuple."""
    return (value,) if isinstance(value, str) else tuple(value)


def shown(value: str | tuple[str, ...] | list[str]) -> str:
    """The datasets for a message or a card: ``a`` or ``a + b``."""
    return " + ".join(dataset_paths(value))


def data_arguments(value: str | tuple[str, ...] | list[str]) -> str:
    """The command-line options that name these datasets: ``--data a --data b``."""
    return " ".join(f"--data {path}" for path in dataset_paths(value))


def open_training_data(value: str | tuple[str, ...] | list[str]) -> Dataset:
    """The datasets of a configuration, opened as one."""
    return open_datasets(list(dataset_paths(value)))


def splits_made(value: str | tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Path → how its splits were made, for the sources whose splits were made here (Label
    Studio exports); empty for releases, whose splits are their own."""
    return {
        path: dict(LABELSTUDIO_SPLIT)
        for path in dataset_paths(value)
        if locate_dataset(path).format == "labelstudio"
    }
