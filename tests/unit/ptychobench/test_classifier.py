"""The feature classifier's contract: load, scores, predict, thresholds, the saved format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ptychobench.classifier import (
    MODEL_FILE,
    MODEL_FORMAT,
    ClassifierFormatError,
    FeatureClassifier,
    Projection,
)
from ptychobench.features import FEATURE_NAMES
from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "artifacts" / "classifiers" / "physics-v1"
L, F = len(ARTIFACT_LABELS), len(FEATURE_NAMES)
HALO = ARTIFACT_LABELS.index("Halo artifacts")
NOISY = ARTIFACT_LABELS.index("Noisy artifacts")
NULL = ARTIFACT_LABELS.index(NO_ARTIFACTS)


def model(bias: list[float] | None = None, thresholds: list[float] | None = None) -> Any:
    """A classifier that ignores its features: its scores are sigmoid(bias)."""
    return FeatureClassifier(
        name="test",
        version="0",
        labels=ARTIFACT_LABELS,
        feature_names=FEATURE_NAMES,
        mean=np.zeros(F),
        scale=np.ones(F),
        weights=np.zeros((L, F)),
        bias=np.asarray(bias if bias is not None else [-5.0] * L),
        thresholds=np.asarray(thresholds if thresholds is not None else [0.5] * L),
        metadata={"note": "kept"},
    )


def image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (64, 64))


def test_nothing_above_threshold_gives_the_null_label_alone() -> None:
    assert model().predict(image()) == (NO_ARTIFACTS,)


def test_the_null_label_never_goes_with_another() -> None:
    bias = [-5.0] * L
    bias[NOISY] = bias[HALO] = bias[NULL] = 5.0
    assert model(bias).predict(image()) == ("Halo artifacts", "Noisy artifacts")


def test_scores_are_probabilities_for_every_label_in_order() -> None:
    bias = np.linspace(-3, 3, L).tolist()
    scores = model(bias).scores(image())
    assert list(scores) == list(ARTIFACT_LABELS)
    expected = 1 / (1 + np.exp(-np.asarray(bias)))
    np.testing.assert_allclose(list(scores.values()), expected, rtol=1e-12)


def test_a_label_fires_exactly_when_its_score_reaches_its_threshold() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=F)
    for _ in range(200):
        thresholds = rng.uniform(0.05, 0.95, L)
        classifier = FeatureClassifier(
            name="random",
            version="0",
            labels=ARTIFACT_LABELS,
            feature_names=FEATURE_NAMES,
            mean=rng.normal(size=F),
            scale=rng.uniform(0.5, 2, F),
            weights=rng.normal(0, 0.3, (L, F)),
            bias=rng.normal(0, 1, L),
            thresholds=thresholds,
        )
        scores = classifier.probabilities(features)
        fired = tuple(
            label
            for label, p, t in zip(ARTIFACT_LABELS, scores, thresholds, strict=True)
            if label != NO_ARTIFACTS and p >= t
        )
        assert classifier.predict_features(features) == [fired or (NO_ARTIFACTS,)]
    classifier = model(rng.normal(0, 2, L).tolist(), rng.uniform(0.05, 0.95, L).tolist())
    scores = classifier.scores(image())
    assert classifier.predict(image()) == classifier.decide(list(scores.values()))
    at = model([0.0] * L, [0.5] * L)  # sigmoid(0) == 0.5 exactly: at threshold fires
    assert NO_ARTIFACTS not in at.predict(image())


def test_a_threshold_of_one_switches_a_label_off_even_for_a_huge_score() -> None:
    bias = [-50.0] * L
    bias[HALO] = 100.0
    thresholds = [0.5] * L
    thresholds[HALO] = 1.0
    assert model(bias, thresholds).predict(image()) == (NO_ARTIFACTS,)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    bias = np.linspace(-2, 2, L).tolist()
    original = model(bias, np.linspace(0.1, 0.9, L).tolist())
    path = original.save(tmp_path / "m")
    assert path == tmp_path / "m" / MODEL_FILE
    data = json.loads(path.read_text())
    assert data["format"] == MODEL_FORMAT
    assert list(data["head"]["thresholds"]) == list(ARTIFACT_LABELS)
    loaded = FeatureClassifier.load(tmp_path / "m")
    assert loaded == original
    assert loaded.metadata == {"note": "kept"}
    assert loaded.scores(image()) == original.scores(image())


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    (tmp_path / MODEL_FILE).write_text(json.dumps(data))
    return tmp_path


def test_a_model_made_with_other_features_is_refused(tmp_path: Path) -> None:
    data = model().to_dict()
    data["features"] = [*FEATURE_NAMES[:-1], "something_else"]
    with pytest.raises(ClassifierFormatError, match="other features"):
        FeatureClassifier.load(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="pickle"), "format"),
        (lambda d: d["head"].update(bias=[0.0]), "shape"),
        (lambda d: d.update(labels=list(reversed(ARTIFACT_LABELS))), "labels"),
        (lambda d: d["head"]["thresholds"].update({"Halo artifacts": 1.5}), "thresholds"),
        (lambda d: d["standardisation"].update(scale=[0.0] * F), "scales"),
        (lambda d: d.pop("head"), "malformed"),
    ],
)
def test_malformed_models_are_refused(tmp_path: Path, change: Any, message: str) -> None:
    data = model().to_dict()
    change(data)
    with pytest.raises(ClassifierFormatError, match=message):
        FeatureClassifier.load(_write(tmp_path, data))


def projected(components: int = 3) -> FeatureClassifier:
    """A classifier that also reads ``components`` backbone components."""
    from ptychobench.backbone import FEATURE_COUNT, NAME

    rng = np.random.default_rng(0)
    projection = Projection(
        backbone=NAME,
        mean=rng.normal(0, 1, FEATURE_COUNT),
        scale=rng.uniform(0.5, 2, FEATURE_COUNT),
        components=rng.normal(0, 0.05, (components, FEATURE_COUNT)),
    )
    n = F + components
    return FeatureClassifier(
        name="test",
        version="0",
        labels=ARTIFACT_LABELS,
        feature_names=FEATURE_NAMES + projection.names,
        mean=np.zeros(n),
        scale=np.ones(n),
        weights=rng.normal(0, 0.3, (L, n)),
        bias=np.zeros(L),
        thresholds=np.full(L, 0.5),
        projection=projection,
    )


def test_a_model_with_a_backbone_reads_its_components_and_round_trips(tmp_path: Path) -> None:
    from ptychobench.backbone import backbone_features
    from ptychobench.features import image_features

    original = projected()
    assert original.feature_names[-3:] == tuple(f"efficientnet-lite0_pc{i}" for i in (1, 2, 3))
    picture = image()
    assert original.projection is not None
    want = np.concatenate(
        [image_features(picture), original.projection.apply(backbone_features(picture))]
    )
    np.testing.assert_allclose(original.features(picture), want)
    data = json.loads(original.save(tmp_path / "m").read_text())
    assert set(data["backbone"]) == {"name", "mean", "scale", "components"}
    assert "backbone" not in FeatureClassifier.load(tmp_path / "m").metadata
    loaded = FeatureClassifier.load(tmp_path / "m")
    assert loaded == original
    assert loaded != model()
    assert loaded.scores(picture) == original.scores(picture)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["backbone"].update(name="resnet50"), "unknown backbone"),
        (lambda d: d["backbone"].update(components=[[0.0] * 5]), "components have shape"),
        (lambda d: d["backbone"].update(mean=[0.0]), "mean and scale"),
        (lambda d: d["features"].pop(), "other features"),
        (lambda d: d.pop("backbone"), "other features"),
    ],
)
def test_a_malformed_backbone_is_refused(tmp_path: Path, change: Any, message: str) -> None:
    data = projected().to_dict()
    change(data)
    with pytest.raises(ClassifierFormatError, match=message):
        FeatureClassifier.load(_write(tmp_path, data))


def test_a_missing_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClassifierFormatError, match=r"no model\.json"):
        FeatureClassifier.load(tmp_path)


def test_the_committed_model_loads_and_predicts_a_dataset_image() -> None:
    from ptychobench.data import read_release
    from ptychobench.labels import Task

    classifier = FeatureClassifier.load(COMMITTED)
    assert (classifier.name, classifier.version) == ("physics-v1", "3")
    assert classifier.projection is not None  # it reads the pretrained backbone
    sample = read_release(ROOT / "data" / "ptychobench-sim").samples(Task.DETECTION, "test")[0]
    assert sample.image is not None
    grey = _read_png(sample.image)
    labels = classifier.predict(grey)
    assert labels
    assert list(labels) == [label for label in ARTIFACT_LABELS if label in labels]
    assert NO_ARTIFACTS not in labels or labels == (NO_ARTIFACTS,)
    assert all(0 < p < 1 for p in classifier.scores(grey).values())


def _read_png(path: Path) -> np.ndarray:
    """The 8-bit greyscale PNGs of the dataset (one IDAT, filter 0), in [0, 1]."""
    import struct
    import zlib

    data = path.read_bytes()
    offset, idat, width, height = 8, b"", 0, 0
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, payload = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", payload[:8])
        elif kind == b"IDAT":
            idat += payload
        offset += 12 + length
    rows = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, width + 1)
    assert (rows[:, 0] == 0).all(), "only filter type 0 is read here"
    return rows[:, 1:] / 255.0
