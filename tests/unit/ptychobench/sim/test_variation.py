"""What varies per sample in the corpus and the shifted set (ptychobench.sim.variation)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ptychobench.sim.faults import FAULTS, OBJECT_SIZE, PROBE_SIZE, Scene
from ptychobench.sim.generate import SimSettings, _claim, build_setups, make_plan
from ptychobench.sim.instruments import (
    INSTRUMENTS,
    SHIFTED_INSTRUMENTS,
    instrument_named,
    make_scan,
    scan_family,
)
from ptychobench.sim.objects import SAMPLE_TYPES, SHIFTED_SAMPLE_TYPES, make_object
from ptychobench.sim.variation import Variant, draw_variant


def test_the_benchmark_set_varies_nothing() -> None:
    assert draw_variant("none", 123, 2) == Variant()
    assert Variant().instrument("Velociprobe") is INSTRUMENTS["Velociprobe"]


def test_a_corpus_variant_is_deterministic_and_changes_the_experiment() -> None:
    variants = [draw_variant("corpus", seed, 2) for seed in range(200)]
    assert variants[7] == draw_variant("corpus", 7, 2)
    assert len(set(variants)) == 200
    assert {v.scan_kind for v in variants} == {None, "fermat", "raster", "raster_jitter"}
    assert all(0.75 <= v.phase_scale <= 1.3 and 0.8 <= v.step_scale <= 1.2 for v in variants)
    base = INSTRUMENTS["2-ID-D"]
    varied = replace(variants[0], step_scale=1.2, dose_scale=0.5).instrument("2-ID-D")
    assert varied.name == base.name
    assert varied.step_px == pytest.approx(base.step_px * 1.2)
    assert varied.photons_per_pattern == pytest.approx(base.photons_per_pattern * 0.5)
    assert draw_variant("corpus", 1, 1).coherence is None  # one coherent mode stays one


def test_an_unknown_variation_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown variation"):
        draw_variant("sideways", 0, 1)
    with pytest.raises(ValueError, match="variation"):
        SimSettings(variation="sideways")  # type: ignore[arg-type]


def test_the_shifted_set_has_its_own_beamlines_and_sample_types() -> None:
    assert not set(SHIFTED_INSTRUMENTS) & set(INSTRUMENTS)
    assert not set(SHIFTED_SAMPLE_TYPES) & set(SAMPLE_TYPES)
    assert len(SAMPLE_TYPES) == 10  # the benchmark set's types are unchanged
    plan = make_plan(SimSettings(n=60, seed=3, variation="shifted"))
    assert {item.sample_type for item in plan} == set(SHIFTED_SAMPLE_TYPES)
    assert {item.instrument for item in plan} <= set(SHIFTED_INSTRUMENTS)
    assert any(item.faults for item in plan)
    for item in plan:
        scene = Scene(item.sample_type, instrument_named(item.instrument), 0, False)
        assert all(FAULTS[name].applies_to(scene) for name in item.faults)
    corpus = make_plan(SimSettings(n=60, seed=3, variation="corpus"))
    assert {item.sample_type for item in corpus} == set(SAMPLE_TYPES)
    with pytest.raises(ValueError, match="unknown instrument"):
        instrument_named("SPring-8")


@pytest.mark.parametrize("sample_type", SHIFTED_SAMPLE_TYPES)
def test_shifted_sample_types_are_objects_with_structure(sample_type: str) -> None:
    obj = make_object(sample_type, OBJECT_SIZE, np.random.default_rng(0))
    phase = np.angle(obj)
    assert obj.shape == (OBJECT_SIZE, OBJECT_SIZE)
    assert np.isfinite(obj).all()
    assert phase.std() > 0.05
    thicker = make_object(sample_type, OBJECT_SIZE, np.random.default_rng(0), 1.3, 1.0)
    assert np.abs(np.log(np.abs(thicker))).max() == pytest.approx(
        np.abs(np.log(np.abs(obj))).max(), rel=1e-5
    )
    assert not np.allclose(thicker, obj)


@pytest.mark.parametrize("kind", ["line", "raster_jitter"])
def test_new_raster_scans_stay_inside_and_count_as_rasters(kind: str) -> None:
    instrument = replace(INSTRUMENTS["2-ID-D"], scan_kind=kind)  # type: ignore[arg-type]
    points = make_scan(instrument, OBJECT_SIZE, PROBE_SIZE, np.random.default_rng(1), margin=6)
    half = (OBJECT_SIZE - PROBE_SIZE) / 2 - 0.5 - 6
    assert np.abs(points).max() <= half + 1e-9
    assert scan_family(kind) == "raster"
    line_lag = FAULTS["line_lag"]
    assert line_lag.applies_to(Scene("Siemens star", instrument, len(points), False))
    rows = np.unique(np.round(points[:, 0]))
    assert len(rows) > 3
    if kind == "line":  # every row runs the same way
        row_a, row_b = points[points[:, 0] == rows[0]], points[points[:, 0] == rows[1]]
        assert np.all(np.diff(row_a[:, 1]) > 0)
        assert np.all(np.diff(row_b[:, 1]) > 0)
    else:
        grid = make_scan(
            replace(instrument, scan_kind="raster"),
            OBJECT_SIZE,
            PROBE_SIZE,
            np.random.default_rng(1),
            margin=6,
        )
        offsets = np.abs(points - grid)
        assert 0 < offsets.max() <= 0.2 * instrument.step_px + 1e-9


def test_the_verification_rebuilds_the_diagnosed_experiment() -> None:
    settings = SimSettings(n=12, seed=9, variation="corpus")
    item = next(i for i in make_plan(settings) if i.faults)
    first = build_setups(item, item.faults, 1234, "cpu", "corpus")
    again = build_setups(item, item.faults, 1234, "cpu", "corpus")
    plain = build_setups(item, item.faults, 1234, "cpu", "none")
    assert np.array_equal(first[0].object, again[0].object)
    assert np.array_equal(first[0].positions, again[0].positions)
    assert first[2] == again[2]
    assert first[0].scene.instrument != plain[0].scene.instrument


def test_a_run_recorded_before_variations_existed_resumes(tmp_path: Path) -> None:
    settings = SimSettings(n=20)
    recorded = settings.model_dump(mode="json")
    del recorded["variation"]
    (tmp_path / "sim-settings.json").write_text(json.dumps(recorded))
    _claim(tmp_path, settings)  # no error: "none" was the only variation then
    with pytest.raises(ValueError, match="variation"):
        _claim(tmp_path, SimSettings(n=20, variation="corpus"))
