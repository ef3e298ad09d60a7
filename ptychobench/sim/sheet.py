"""A contact sheet: a few samples per artifact label, so a person can see each label.

Needs matplotlib (installed with Pty-chi, the simulation extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptychobench.data import Dataset, Sample
from ptychobench.labels import ARTIFACT_LABELS, Task


def pick(dataset: Dataset, per_label: int = 4, seed: int = 0) -> dict[str, list[Sample]]:
    """Up to ``per_label`` detection samples per label, single-label ones first."""
    samples = [s for split in dataset.by_task(Task.DETECTION).values() for s in split]
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[Sample]] = {}
    for label in ARTIFACT_LABELS:
        having = [s for s in samples if label in s.artifacts and s.image is not None]
        order = rng.permutation(len(having))
        ranked = sorted((having[i] for i in order), key=lambda s: len(s.artifacts))
        chosen[label] = ranked[:per_label]
    return chosen


def contact_sheet(dataset: Dataset, out: str | Path, per_label: int = 4, seed: int = 0) -> Path:
    """Write a PNG montage (one row per label) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = pick(dataset, per_label, seed)
    rows = [label for label in ARTIFACT_LABELS if chosen[label]]
    fig, axes = plt.subplots(
        len(rows), per_label, figsize=(1.6 * per_label + 1.6, 1.75 * len(rows)), squeeze=False
    )
    for r, label in enumerate(rows):
        for c in range(per_label):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if c < len(chosen[label]):
                sample = chosen[label][c]
                assert sample.image is not None
                ax.imshow(plt.imread(sample.image), cmap="gray", vmin=0, vmax=1)
                others = [a for a in sample.artifacts if a != label]
                note = (
                    sample.sample_type
                    if not others
                    else f"{sample.sample_type}\n+ {', '.join(others)}"
                )
                ax.set_xlabel(note, fontsize=5.5)
        axes[r][0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle("PtychoBench-Sim: reconstructed phase, a few samples per label", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.25 / len(rows)))
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
