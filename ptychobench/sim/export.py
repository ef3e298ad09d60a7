"""The raw experiment of any sample a simulator run made, rebuilt from its seeds.

A run keeps no diffraction data (they would be gigabytes); it keeps each sample's
seed, instrument and injected faults (``samples.jsonl``, and ``work/detect/<id>.json``
while a run is under way). The experiment is rebuilt exactly as the generator built it
(:func:`ptychobench.sim.generate.build_setups`, then
:func:`ptychobench.sim.experiment.measure`): the same object, probe, scan and photon
noise. The rebuilt setup is checked against the recorded one (its "Current
Reconstruction Parameters", and its options where the run kept them), so a simulator
that has changed since the run is caught instead of exporting a different experiment.

``setup="fault"`` gives the experiment as the sample was diagnosed (the faulted
measurement, the faulted options); ``setup="clean"`` the same scene measured and set up
as a careful user would.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ptychobench.experiment_io import Experiment, Geometry, Truth
from ptychobench.sim.faults import PROBE_SIZE, parameters_block

SetupName = Literal["fault", "clean"]


class SampleNotFoundError(LookupError):
    """No sample with that id in the run."""


def _settings(run: Path) -> dict[str, Any]:
    for name, key in (("sim-settings.json", None), ("metadata.json", "settings")):
        path = run / name
        if path.exists():
            loaded = json.loads(path.read_text())
            settings: dict[str, Any] = loaded[key] if key else loaded
            return settings
    raise FileNotFoundError(f"{run} is not a simulator run (no sim-settings.json or metadata.json)")


def sample_record(run: str | Path, sample_id: str) -> dict[str, Any]:
    """A sample's record: ``work/detect/<id>.json`` if the run kept it, else its line
    of ``samples.jsonl``."""
    run = Path(run)
    unit = run / "work" / "detect" / f"{sample_id}.json"
    if unit.exists():
        record: dict[str, Any] = json.loads(unit.read_text())
        if not record.get("failed"):
            return record
    listing = run / "samples.jsonl"
    if listing.exists():
        with listing.open() as lines:
            for line in lines:
                if line.strip():
                    found: dict[str, Any] = json.loads(line)
                    if found.get("id") == sample_id:
                        return found
    raise SampleNotFoundError(f"{run} has no sample {sample_id!r}")


def sample_ids(run: str | Path) -> list[str]:
    """The ids of a finished run's samples, in file order."""
    listing = Path(run) / "samples.jsonl"
    if not listing.exists():
        raise FileNotFoundError(f"{listing} does not exist (the run has not finished)")
    with listing.open() as lines:
        return [json.loads(line)["id"] for line in lines if line.strip()]


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k != "device"}


def export_experiment(
    run: str | Path, sample_id: str, setup: SetupName = "fault", device: str = "auto"
) -> Experiment:
    """The experiment of sample ``sample_id`` of the run in ``run``, with its truth."""
    from ptychobench.sim.experiment import measure, positions_for, scene_for, start_probe
    from ptychobench.sim.generate import PlanItem, build_setups

    run = Path(run)
    settings = _settings(run)
    record = sample_record(run, sample_id)
    faults = tuple(record["injected_faults"])
    item = PlanItem(
        record["index"], record["id"], record["sample_type"], record["instrument"], faults
    )
    variation = settings.get("variation", "none")
    data, clean, faulted = build_setups(item, faults, int(record["seed"]), device, variation)
    if parameters_block(faulted, scene_for(data, faulted)) != record["parameters"]:
        raise ValueError(
            f"sample {sample_id}: the rebuilt setup differs from the recorded one; the "
            "simulator has changed since this run"
        )
    if "config" in record and _comparable(record["config"]) != _comparable(
        faulted.config.model_dump()
    ):
        raise ValueError(f"sample {sample_id}: the rebuilt options differ from the recorded ones")
    chosen = faulted if setup == "fault" else clean
    measured = measure(data, chosen)
    scene = scene_for(data, chosen)
    instrument = scene.instrument
    positions = positions_for(data, chosen)
    geometry = Geometry.for_object_pixel(
        instrument.energy_kev * 1000.0, instrument.pixel_size_nm * 1e-9, PROBE_SIZE
    )
    labels = {
        key: record.get(key)
        for key in ("injected_faults", "faults", "artifacts", "letters", "fixable", "seed")
    }
    labels["setup"] = setup
    truth = Truth(
        object=data.object.astype(np.complex64),
        probe=np.asarray(measured.probe, dtype=np.complex64).reshape(-1, PROBE_SIZE, PROBE_SIZE),
        positions_px=measured.true_positions,
        labels=labels,
        clean_config=clean.config,
        clean_preprocess=tuple(clean.preprocess),
    )
    return Experiment(
        patterns=measured.patterns,
        positions_px=np.asarray(positions, dtype=np.float64),
        probe=start_probe(data, chosen)[None, None],
        object=np.ones((1, *data.object.shape), dtype=np.complex64),
        geometry=geometry,
        config=chosen.config,
        preprocess=tuple(chosen.preprocess),
        name=f"ptychobench-sim {sample_id}",
        comments=f"simulated by {settings.get('generator', 'ptychobench-sim')}; {setup} setup",
        sample_type=record["sample_type"],
        instrument=record["instrument"],
        parameters=parameters_block(chosen, scene),
        source=f"ptychobench-sim:{run}#{sample_id}",
        photon_count=float(instrument.photons_per_pattern),
        truth=truth,
    )


__all__ = ["SampleNotFoundError", "export_experiment", "sample_ids", "sample_record"]
