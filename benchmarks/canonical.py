"""What reading colour back through its colormap (`ptychobench.canonical`) buys over the
intake's old luminance, on PtychoBench-Sim's committed images shown as beamlines show them.

The committed images (``data/ptychobench-sim/images``, 8-bit grey phase) are the truth.
Each is re-rendered (`ptychobench.sim.render.render`) with the rendering that
``draw_rendering(variation, seed, index)`` draws, for the corpus's and the shifted set's
renderings. The committed set keeps no phase range (it needs none), so each image
borrows one from ``data/shifted/work/detect/*.json`` in turn (a wrapped rendering needs
it); without that folder, (-1, 1) rad. Every rendering is read by the diagnosis intake's
readers, then turned into grey two ways, both timed, in the same run:

- **old**: the intake before `ptychobench.canonical` (colour → Rec. 601 luminance);
- **new**: the intake now (colour → the colormap read back, luminance when none fits).

Printed:

1. the Pearson correlation of each path's picture with the truth shown the same way (the
   same crop, turns, flip, size, inversion and wrap, in 8-bit grey: what a perfect
   reading of the colour would give), mean over the images, for all images and for the
   colour ones by colormap; the new-minus-old difference, and the milliseconds per image
   of each conversion (median, colour images only) and their ratio;
2. the committed classifier's (``artifacts/classifiers/physics-v1``) micro-F1 on the detection test
   split: on the images as committed, and re-rendered (corpus and shifted renderings)
   read by each path, with a paired bootstrap (10,000 resamples) of new minus old;
3. the phase-wrap check behind leaving unwrapping out of the intake: how often two
   detectors of "this picture is wrapped" fire on the committed (unwrapped) images and
   on wrapped renderings of them with phase ranges of ±1.5, ±2 and ±3π; and how many of
   the shifted set's phase ranges wrap at all.

    .venv/bin/python benchmarks/canonical.py [--seed 0] [--limit N]
"""

from __future__ import annotations

import argparse
import glob
import json
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from ptychobench.bootstrap import paired_bootstrap
from ptychobench.canonical import LUMINANCE
from ptychobench.classifier import FeatureClassifier
from ptychobench.data import Sample, read_release
from ptychobench.decode import ImageLimits, normalise, read_pil, read_tiff, to_unit
from ptychobench.labels import ARTIFACT_LABELS, Task
from ptychobench.metrics import score
from ptychobench.sim.render import Rendering, draw_rendering, phase_display, render

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT / "data" / "ptychobench-sim"
SHIFTED_RECORDS = ROOT / "data" / "shifted" / "work" / "detect"
CLASSIFIER = ROOT / "artifacts" / "classifiers" / "physics-v1"
FloatArray = npt.NDArray[np.float64]
Path_ = Callable[[npt.NDArray[Any]], FloatArray]


def old_path(array: npt.NDArray[Any]) -> FloatArray:
    """The intake's grey before `ptychobench.canonical`: colour by luminance."""
    squeezed = np.squeeze(array) if array.ndim > 2 else array
    if squeezed.ndim == 3:
        return np.asarray(to_unit(squeezed[..., :3]) @ LUMINANCE)
    return normalise(array)[0]


def new_path(array: npt.NDArray[Any]) -> FloatArray:
    return normalise(array)[0]


PATHS: dict[str, Path_] = {"old": old_path, "new": new_path}


def read(data: bytes) -> npt.NDArray[Any]:
    """The array the intake's readers give for a rendered file."""
    kind = (
        "tiff"
        if data[:4] in (b"II*\x00", b"MM\x00*")
        else "jpeg"
        if data[:2] == b"\xff\xd8"
        else "png"
    )
    reader = read_tiff if kind == "tiff" else read_pil
    return reader(data, ImageLimits(), kind)[0]


def grey(path: Path) -> FloatArray:
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.float64) / 255.0


def phase_ranges() -> list[tuple[float, float]]:
    ranges = []
    for record in sorted(glob.glob(str(SHIFTED_RECORDS / "*.json"))):
        found = json.loads(Path(record).read_text()).get("phase_range")
        if found is not None:
            ranges.append((float(found[0]), float(found[1])))
    return ranges or [(-1.0, 1.0)]


def truth_shown(truth: FloatArray, span: tuple[float, float], rendering: Rendering) -> FloatArray:
    """The truth in the rendering's geometry, inversion and wrap, as 8-bit grey PNG."""
    plain = replace(rendering, colormap=None, bit_depth=8, file_format="png")
    return grey_bytes(render(truth, span, plain))


def grey_bytes(data: bytes) -> FloatArray:
    return np.asarray(read(data), dtype=np.float64) / 255.0


def pearson(a: FloatArray, b: FloatArray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    norm = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / norm if norm > 0 else 0.0


def timed(path: Path_, array: npt.NDArray[Any]) -> tuple[FloatArray, float]:
    started = time.perf_counter()
    pixels = path(array)
    return pixels, time.perf_counter() - started


def correlations(samples: Sequence[Sample], variation: str, seed: int) -> None:
    spans = phase_ranges()
    r: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    seconds: dict[str, list[float]] = defaultdict(list)
    for index, sample in enumerate(samples):
        truth = grey(Path(sample.image or ""))
        span = spans[index % len(spans)]
        rendering = draw_rendering(variation, seed, index)
        array = read(render(truth, span, rendering))
        shown = truth_shown(truth, span, rendering)
        group = rendering.colormap or "grey"
        for name, path in PATHS.items():
            pixels, spent = timed(path, array)
            r[group][name].append(pearson(pixels, shown))
            if rendering.colormap is not None:
                seconds[name].append(spent)
    print(f"\n## {variation} renderings of {len(samples)} images (seed {seed})")
    print(f"{'shown as':<10} {'n':>4} {'r old':>7} {'r new':>7} {'new-old':>8}")
    everything: dict[str, list[float]] = defaultdict(list)
    for group in sorted(r, key=lambda g: (g != "grey", g)):
        old, new = np.mean(r[group]["old"]), np.mean(r[group]["new"])
        print(f"{group:<10} {len(r[group]['old']):>4} {old:>7.3f} {new:>7.3f} {new - old:>+8.3f}")
        for name in PATHS:
            everything[name] += r[group][name]
    old, new = np.mean(everything["old"]), np.mean(everything["new"])
    print(f"{'all':<10} {len(everything['old']):>4} {old:>7.3f} {new:>7.3f} {new - old:>+8.3f}")
    old_ms, new_ms = (1e3 * float(np.median(seconds[name])) for name in PATHS)
    print(
        f"colour → grey, median per colour image: old {old_ms:.2f} ms, new {new_ms:.1f} ms "
        f"(new/old {new_ms / old_ms:.0f}x)"
    )


def classifier_f1(test: Sequence[Sample], index: dict[str, int], seed: int) -> None:
    """``index``: each sample's position among all the committed images, which is the
    index its rendering is drawn with in :func:`correlations` too."""
    model = FeatureClassifier.load(CLASSIFIER)
    gold = [s.artifacts for s in test]
    spans = phase_ranges()
    original = [model.predict(grey(Path(s.image or ""))) for s in test]
    f1 = score(gold, original, ARTIFACT_LABELS).micro.f1
    print(f"\n## classifier {model.name}@{model.version}, detection test split ({len(test)})")
    print(f"micro-F1 on the committed images: {f1:.3f}")
    for variation in ("corpus", "shifted"):
        predictions: dict[str, list[tuple[str, ...]]] = defaultdict(list)
        for sample in test:
            at = index[sample.id]
            truth = grey(Path(sample.image or ""))
            array = read(render(truth, spans[at % len(spans)], draw_rendering(variation, seed, at)))
            for name, path in PATHS.items():
                predictions[name].append(model.predict(path(array)))
        paired = paired_bootstrap(
            gold, predictions["new"], predictions["old"], vocab=ARTIFACT_LABELS
        )
        print(
            f"{variation} renderings: micro-F1 old {paired.point_b:.3f}, new {paired.point_a:.3f}; "
            f"new - old {paired.point_diff:+.3f} [{paired.ci_low:+.3f}, {paired.ci_high:+.3f}] "
            f"(p = {paired.p_value:.3f})"
        )


def wraps(samples: Sequence[Sample]) -> None:
    truths = [grey(Path(s.image or "")) for s in samples]
    print(f"\n## is this picture wrapped? ({len(truths)} committed images, all unwrapped)")
    crossing = sum(1 for low, high in phase_ranges() if low < -np.pi or high > np.pi)
    print(f"shifted set: {crossing} of {len(phase_ranges())} phase ranges leave (-π, π]")
    detectors: dict[str, Callable[[FloatArray], float]] = {"jumps": jump_share}
    try:
        from skimage.restoration import unwrap_phase  # noqa: F401
    except ImportError:
        print("(scikit-image is not installed: the unwrap detector is skipped)")
    else:
        detectors["unwrap"] = unwrapped_share
    thresholds = {"jumps": (0.0005, 0.001, 0.002, 0.005), "unwrap": (0.005, 0.01, 0.02, 0.05)}
    for name, detector in detectors.items():
        clean = np.array([detector(t) for t in truths])
        wrapped = {
            span: np.array(
                [
                    detector(
                        phase_display(t, (-span * np.pi, span * np.pi), Rendering(wrapped=True))
                    )
                    for t in truths
                ]
            )
            for span in (1.5, 2.0, 3.0)
        }
        for threshold in thresholds[name]:
            caught = ", ".join(f"±{s}π {np.mean(v > threshold):.3f}" for s, v in wrapped.items())
            print(
                f"{name} > {threshold}: fires on {np.mean(clean > threshold):.3f} of the "
                f"unwrapped images; on the wrapped ones {caught}"
            )


def jump_share(picture: FloatArray) -> float:
    """Share of neighbour pairs that jump between the bottom and the top tenth."""
    pairs = ((picture[1:], picture[:-1]), (picture[:, 1:], picture[:, :-1]))
    jumps = [((np.minimum(a, b) < 0.1) & (np.maximum(a, b) > 0.9)).ravel() for a, b in pairs]
    return float(np.concatenate(jumps).mean())


def unwrapped_share(picture: FloatArray) -> float:
    """Share of pixels that 2-D unwrapping (scikit-image) moves by a whole turn."""
    from skimage.restoration import unwrap_phase

    phase = 2 * np.pi * picture - np.pi
    turns = np.rint((unwrap_phase(phase) - phase) / (2 * np.pi)).astype(int)
    values, counts = np.unique(turns, return_counts=True)
    return float(np.mean(turns != values[np.argmax(counts)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = parser.parse_args()
    dataset = read_release(DATASET)
    samples = sorted(
        (
            s
            for split in dataset.splits(Task.DETECTION)
            for s in dataset.samples(Task.DETECTION, split)
        ),
        key=lambda s: str(s.image),
    )[: args.limit]
    index = {s.id: i for i, s in enumerate(samples)}
    test = [s for s in dataset.samples(Task.DETECTION, "test") if s.id in index]
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    print(f"# canonical intake benchmark — revision {revision or '?'}, seed {args.seed}")
    for variation in ("corpus", "shifted"):
        correlations(samples, variation, args.seed)
    classifier_f1(test, index, args.seed)
    wraps(samples)


if __name__ == "__main__":
    main()
