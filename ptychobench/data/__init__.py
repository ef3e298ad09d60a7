"""Samples and the file formats they come in: the authors' release layout and Label
Studio JSON exports."""

from ptychobench.data.dataset import Dataset, paper_split, split_samples
from ptychobench.data.errors import DataFormatError
from ptychobench.data.labelstudio import (
    read_labelstudio,
    read_labelstudio_dataset,
    write_labelstudio,
)
from ptychobench.data.opening import (
    LABELSTUDIO_SPLIT,
    DatasetLocation,
    locate_dataset,
    open_dataset,
    open_datasets,
)
from ptychobench.data.release import read_release, release_metadata, write_release
from ptychobench.data.sample import Sample

__all__ = [
    "LABELSTUDIO_SPLIT",
    "DataFormatError",
    "Dataset",
    "DatasetLocation",
    "Sample",
    "locate_dataset",
    "open_dataset",
    "open_datasets",
    "paper_split",
    "read_labelstudio",
    "read_labelstudio_dataset",
    "read_release",
    "release_metadata",
    "split_samples",
    "write_labelstudio",
    "write_release",
]
