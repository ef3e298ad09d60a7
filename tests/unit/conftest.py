"""Datasets the project did not make: written by hand in the authors' release layout or as
a Label Studio export, for the tests of what a user brings (run --dataset, train --data)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pytest

from ptychobench.data import Dataset, Sample, paper_split, write_labelstudio, write_release

TYPES = ("Integrated circuit", "Zeolite", "Battery cathode")
INSTRUMENTS = ("APS-2IDE-XFM", "APS-26ID-CNM", "Velociprobe")
ARTIFACTS = (
    ("Halo artifacts", "Line artifacts"),
    ("Phase ramp",),
    ("Grid artifacts", "Noisy artifacts"),
    ("No obvious artifacts",),
)
ADVICE = ("Increase the number of iterations to 2000", "Enable position correction", "")

MakeDataset = Callable[..., Path]


@pytest.fixture
def handmade(make_png: Callable[..., bytes], tmp_path: Path) -> MakeDataset:
    """``handmade(name, n=12, kind="release", seed=0)``: a small dataset written under
    ``tmp_path/name`` and its path: a release directory, or (``kind="labelstudio"``) a
    directory holding ``export.json`` and ``images/``. Ids are UUIDs, as in the authors'
    export; images are 32x32 PNGs named as theirs are; labels, sample types, instruments
    and advice vary from sample to sample. The same ``seed`` gives the same ids."""

    def make(
        name: str, n: int = 12, kind: Literal["release", "labelstudio"] = "release", seed: int = 0
    ) -> Path:
        root = tmp_path / name
        source = tmp_path / f"{name}-source"
        source.mkdir(parents=True)
        samples = []
        for index in range(n):
            sample_id = str(uuid.UUID(int=seed * 1_000_003 + index + 1))
            image = source / f"{sample_id[:8]}-object_ph_Niter400.png"
            image.write_bytes(make_png(seed=seed * 97 + index, size=32))
            advice = ADVICE[index % len(ADVICE)]
            samples.append(
                Sample(
                    id=sample_id,
                    image=image,
                    sample_type=TYPES[index % len(TYPES)],
                    instrument=INSTRUMENTS[(index // 2) % len(INSTRUMENTS)],
                    artifacts=ARTIFACTS[index % len(ARTIFACTS)],
                    caption_obj=f"Reconstruction {index} of a {TYPES[index % len(TYPES)]}.",
                    caption_param=advice,
                    options=("K",) if "iterations" in advice else ("G",) if advice else (),
                    parameters="- Iterations: 400\n- Batches: 4",
                )
            )
        if kind == "labelstudio":
            root.mkdir()
            (root / "images").mkdir()
            for sample in samples:
                assert sample.image is not None
                (root / "images" / sample.image.name).write_bytes(sample.image.read_bytes())
            write_labelstudio(samples, root / "export.json")
            return root
        split = paper_split(samples)
        write_release(Dataset(detection=split.detection, recommendation=split.recommendation), root)
        return root

    return make
