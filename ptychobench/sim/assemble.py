"""From finished units to the release files: each sample as the release shows it (its
image, rendered for a corpus or shifted set; its wording), the dataset with its
recommendation side, ``metadata.json`` and ``samples.jsonl``.

Moved out of :mod:`ptychobench.sim.generate` (which runs the units and calls these) as
they were: same draws from the same seeds, so a release is bit-identical.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ptychobench.data import Dataset, Sample
from ptychobench.labels import ARTIFACT_LABELS, OPTION_LETTERS
from ptychobench.sim.faults import FAULTS
from ptychobench.sim.objects import object_metadata

if TYPE_CHECKING:
    from ptychobench.sim.plan import PlanItem, SimSettings

GENERATOR_VERSION: Final = "ptychobench-sim/1"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _json(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _sample(record: Mapping[str, Any], out: Path, settings: SimSettings) -> Sample:
    from ptychobench.sim.text import caption_obj
    from ptychobench.sim.wording import draw_style, write_parameters

    rng = np.random.default_rng([settings.seed, record["index"], 5])
    phrase = object_metadata(record["sample_type"])["sample_type"]
    style, shuffle = draw_style(settings.variation, settings.seed, record["index"])
    return Sample(
        id=record["id"],
        image=_release_image(record, out, settings),
        sample_type=record["sample_type"],
        instrument=record["instrument"],
        beam="X-ray",
        package="pty-chi",
        artifacts=tuple(record["artifacts"]),
        caption_obj=caption_obj(record["artifacts"], phrase, rng),
        parameters=write_parameters(
            record["parameters"], style, shuffle, settings.seed, record["index"]
        ),
    )


def _release_image(record: Mapping[str, Any], out: Path, settings: SimSettings) -> Path:
    """The sample's image as the release shows it: the phase PNG itself for the
    benchmark set, else rendered (:mod:`ptychobench.sim.render`) from ``work/phase``."""
    from ptychobench.sim.render import draw_rendering, render

    if settings.variation == "none":
        return out / "images" / str(record["image"])
    rendering = draw_rendering(settings.variation, settings.seed, record["index"])
    target = out / "images" / (Path(record["image"]).stem + rendering.extension)
    if not target.exists():
        from PIL import Image

        with Image.open(out / "work" / "phase" / record["image"]) as canonical:
            scaled = np.asarray(canonical.convert("L"), dtype=np.float64) / 255.0
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(target, render(scaled, tuple(record["phase_range"]), rendering))
    return target


def _dataset(
    samples: list[Sample],
    train: list[Sample],
    test: list[Sample],
    chosen: Mapping[str, Mapping[str, Any]],
    records: Mapping[str, dict[str, Any]],
    settings: SimSettings,
) -> Dataset:
    from ptychobench.sim.text import caption_param

    def advised(side: list[Sample]) -> tuple[Sample, ...]:
        out = []
        for sample in side:
            if sample.id not in chosen:
                continue
            record = records[sample.id]
            rng = np.random.default_rng([settings.seed, record["index"], 7])
            advice = caption_param(record["letters"], rng, record["parameters"])
            out.append(
                sample.model_copy(
                    update={"options": tuple(record["letters"]), "caption_param": advice}
                )
            )
        return tuple(out)

    rec_train, rec_test = advised(train), advised(test)
    updated = {s.id: s for s in (*rec_train, *rec_test)}
    return Dataset(
        detection={
            "train": tuple(updated.get(s.id, s) for s in train),
            "test": tuple(updated.get(s.id, s) for s in test),
        },
        recommendation={"train": rec_train, "test": rec_test},
    )


def _write_summary(
    out: Path,
    settings: SimSettings,
    plan: list[PlanItem],
    records: Mapping[str, dict[str, Any]],
    chosen: Mapping[str, Mapping[str, Any]],
    failed: list[str],
) -> None:
    ordered = [records[item.id] for item in plan]
    label_counts = Counter(label for r in ordered for label in r["artifacts"])
    letter_counts = Counter(letter for r in ordered if r["id"] in chosen for letter in r["letters"])
    planned = Counter(name for item in plan for name in item.faults)
    shown = Counter(name for r in ordered for name in r["faults"])
    verified = [v for v in chosen.values() if v]
    metadata = {
        "generator": GENERATOR_VERSION,
        "settings": settings.model_dump(mode="json"),
        "object_size": 128,
        "pattern_size": 64,
        "engine": "Pty-chi LSQML",
        "counts": {
            "samples": len(ordered),
            "recommendation": len(chosen),
            "labels": {label: label_counts.get(label, 0) for label in ARTIFACT_LABELS},
            "letters": {letter: letter_counts.get(letter, 0) for letter in OPTION_LETTERS},
            "sample_types": dict(Counter(r["sample_type"] for r in ordered)),
            "instruments": dict(Counter(r["instrument"] for r in ordered)),
            "faults_planned": dict(planned),
            "faults_confirmed": dict(shown),
            "replaced_attempts": sum(len(r["dropped_attempts"]) for r in ordered),
            "replaced_samples": len(failed),
            "fixes_verified": len(verified),
            "fixes_helped": sum(1 for v in verified if v["helped"]),
        },
        "faults": {
            name: {
                "summary": fault.summary,
                "artifacts": {
                    label: [c.describe() for c in checks]
                    for label, checks in fault.artifacts.items()
                },
                "fixes": list(fault.fixes),
            }
            for name, fault in FAULTS.items()
        },
        "metrics": _metric_summary(ordered),
        "reconstruction_seconds": round(sum(r["seconds"] for r in ordered), 1),
    }
    _write_atomic(out / "metadata.json", (json.dumps(metadata, indent=2) + "\n").encode())
    lines = [
        json.dumps(
            {
                **{k: v for k, v in r.items() if k != "config"},
                "verification": chosen.get(r["id"]),
                **_presentation(r, settings),
            },
            default=_json,
        )
        for r in ordered
    ]
    _write_atomic(out / "samples.jsonl", ("\n".join(lines) + "\n").encode())


def _presentation(record: Mapping[str, Any], settings: SimSettings) -> dict[str, Any]:
    """How the release shows a corpus or shifted sample (its rendering and wording)."""
    from ptychobench.sim.render import draw_rendering
    from ptychobench.sim.wording import draw_style

    if settings.variation == "none":
        return {}
    style, shuffle = draw_style(settings.variation, settings.seed, record["index"])
    return {
        "rendering": draw_rendering(settings.variation, settings.seed, record["index"]).as_record(),
        "wording": {"style": style.name if style else None, "shuffled": shuffle},
    }


def _metric_summary(records: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Median of each metric over clean and faulted reconstructions, per label."""
    by_label: dict[str, list[Mapping[str, float]]] = {}
    for r in records:
        for label in r["artifacts"]:
            by_label.setdefault(label, []).append(r["metrics"]["fault"])
    return {
        label: {k: round(float(np.median([m[k] for m in rows])), 4) for k in rows[0]}
        for label, rows in by_label.items()
    }


__all__ = ["GENERATOR_VERSION"]
