"""Training of the feature classifier: the head, the choices made inside the training
split, determinism, and the committed model against the committed dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ptychobench.classifier import MODEL_FILE, FeatureClassifier
from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS
from ptychobench.metrics import binarize, score
from training.classifier import (
    NULL_INDEX,
    ClassifierConfig,
    ClassifierTrainingError,
    Split,
    choose_thresholds,
    data_hash,
    dataset_splits,
    decide,
    fit_logistic,
    fit_projection,
    load_split,
    model_features,
    most_frequent_baseline,
    read_grey,
    stratified_folds,
    train,
)

ROOT = Path(__file__).resolve().parents[3]
DATASET = ROOT / "data" / "ptychobench-sim"
COMMITTED = ROOT / "artifacts" / "classifiers" / "physics-v1"
SMALL = ClassifierConfig(
    dataset=str(DATASET), limit=24, folds=2, repeats=1, c_grid=(1.0,), n_resamples=200
)


@pytest.fixture(scope="module")
def test_split() -> Split:
    return load_split(dataset_splits(SMALL)["test"])


@pytest.fixture(scope="module")
def small_train() -> Split:
    return load_split(dataset_splits(SMALL)["train"])


def test_logistic_regression_separates_and_the_penalty_shrinks() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=200) > 0.8  # imbalanced
    w, b = fit_logistic(x, y, c=10.0)
    assert w[0] > 1.0 > 0 > w[1]
    assert abs(w[2]) < 0.5 * w[0]
    w_strong, _ = fit_logistic(x, y, c=0.001)
    assert np.linalg.norm(w_strong) < 0.1 * np.linalg.norm(w)
    p = 1 / (1 + np.exp(-(x @ w + b)))
    assert np.mean(p[y]) > 0.5 > np.mean(p[~y])  # balanced: both classes on their side


def test_a_label_without_positives_gets_its_base_rate() -> None:
    w, b = fit_logistic(np.ones((10, 2)), np.zeros(10, dtype=bool), c=1.0)
    assert (w == 0).all()
    assert 1 / (1 + np.exp(-b)) < 0.1


def test_folds_spread_every_rare_label() -> None:
    y = np.zeros((30, 3), dtype=bool)
    y[[3, 17, 25], 0] = True
    y[::2, 1] = True
    fold = stratified_folds(y, 3, seed=0)
    assert sorted(np.bincount(fold)) == [10, 10, 10]
    assert len(set(fold[[3, 17, 25]])) == 3
    assert (stratified_folds(y, 3, seed=0) == fold).all()


def test_thresholds_maximise_f1_and_a_hopeless_label_is_switched_off() -> None:
    y = np.zeros((6, 2), dtype=bool)
    y[:3, 0] = True
    y[0, 1] = True
    p = np.array([[0.9, 0.1], [0.8, 0.2], [0.5, 0.1], [0.3, 0.9], [0.25, 0.9], [0.05, 0.8]])
    thresholds = choose_thresholds(p, y, (0.2, 0.4, 0.6))
    assert thresholds[0] == 0.4  # F1 1; 0.2 lets two negatives in, 0.6 loses a positive
    assert thresholds[1] == 1.0  # its positive scores lowest: no threshold helps


def test_decide_gives_the_null_label_exactly_when_nothing_fires() -> None:
    p = np.full((3, len(ARTIFACT_LABELS)), 0.1)
    p[0, 1] = 0.9
    p[:, NULL_INDEX] = 0.99
    pred = decide(p, np.full(len(ARTIFACT_LABELS), 0.5))
    assert pred[0].sum() == 1
    assert pred[0, 1]
    assert (pred[1:, NULL_INDEX]).all()
    assert pred[1:].sum() == 2


def test_the_trivial_baseline_never_pairs_the_null_label() -> None:
    y = binarize(
        [["Halo artifacts"], ["Halo artifacts", "Blurring"], [NO_ARTIFACTS], ["Blurring"]],
        ARTIFACT_LABELS,
    )
    labels, row = most_frequent_baseline(y)
    assert NO_ARTIFACTS not in labels or labels == [NO_ARTIFACTS]
    assert labels == [label for label, on in zip(ARTIFACT_LABELS, row, strict=True) if on]


def test_training_is_deterministic(tmp_path: Path, small_train: Split, test_split: Split) -> None:
    first = train(SMALL, tmp_path / "a", splits=(small_train, test_split))
    second = train(SMALL, tmp_path / "b", splits=(small_train, test_split))
    a = (tmp_path / "a" / MODEL_FILE).read_bytes()
    assert a == (tmp_path / "b" / MODEL_FILE).read_bytes()
    assert first == second
    record = json.loads(a)
    assert record["config"]["limit"] == 24
    assert record["data"]["train"] == 24
    assert 0 <= record["metrics"]["test"]["micro_f1"]["point"] <= 1
    assert FeatureClassifier.load(tmp_path / "a") == first


def test_principal_components_are_orthonormal_signed_and_bounded() -> None:
    from ptychobench.backbone import FEATURE_COUNT

    rng = np.random.default_rng(0)
    deep = rng.normal(0, 1, (40, 3)) @ rng.normal(0, 1, (3, FEATURE_COUNT))
    deep += rng.normal(0, 0.01, deep.shape)
    projection = fit_projection(deep, 3, digits=12)
    c = projection.components
    np.testing.assert_allclose(c @ c.T, np.eye(3), atol=1e-9)
    assert (c[np.arange(3), np.abs(c).argmax(axis=1)] > 0).all()
    # three components carry almost all the variance of rank-3 data
    z = (deep - projection.mean) / projection.scale
    kept = np.linalg.norm(projection.apply(deep)) ** 2 / np.linalg.norm(z) ** 2
    assert kept > 0.99
    with pytest.raises(ClassifierTrainingError, match="41 backbone components from 40"):
        fit_projection(deep, 41, digits=6)


def test_training_with_the_backbone_is_deterministic_and_reads_images_as_served(
    tmp_path: Path,
) -> None:
    config = SMALL.model_copy(update={"limit": 16, "backbone_components": 4})
    samples = dataset_splits(config)
    splits = (load_split(samples["train"], True), load_split(samples["test"][:10], True))
    first = train(config, tmp_path / "a", splits=splits)
    train(config, tmp_path / "b", splits=splits)
    assert (tmp_path / "a" / MODEL_FILE).read_bytes() == (tmp_path / "b" / MODEL_FILE).read_bytes()
    assert first.projection is not None
    assert first.feature_names[-4:] == first.projection.names
    loaded = FeatureClassifier.load(tmp_path / "a")
    assert loaded == first
    assert "--backbone-components 4" in (tmp_path / "a" / "README.md").read_text()
    # what the service computes from the image is what training computed
    sample = samples["test"][0]
    assert sample.image is not None
    served = loaded.features(read_grey(sample.image))
    np.testing.assert_allclose(served, model_features(splits[1], first.projection)[0], rtol=1e-9)
    with pytest.raises(ClassifierTrainingError, match="backbone"):
        train(config, splits=(load_split(samples["train"]), splits[1]))


def test_the_data_hash_sees_labels_and_image_bytes(tmp_path: Path) -> None:
    splits = dataset_splits(SMALL)
    reference = data_hash(splits)
    assert data_hash(splits) == reference
    relabelled = dict(splits)
    first = splits["train"][0]
    other = ("Blurring",) if first.artifacts != ("Blurring",) else ("Halo artifacts",)
    relabelled["train"] = (first.model_copy(update={"artifacts": other}), *splits["train"][1:])
    assert data_hash(relabelled) != reference
    copy = tmp_path / "copy.png"
    assert first.image is not None
    copy.write_bytes(first.image.read_bytes() + b"\x00")
    rewritten = dict(splits)
    rewritten["train"] = (first.model_copy(update={"image": copy}), *splits["train"][1:])
    assert data_hash(rewritten) != reference


def test_the_committed_model_was_trained_on_the_committed_dataset() -> None:
    record = json.loads((COMMITTED / MODEL_FILE).read_text())
    config = ClassifierConfig.model_validate(record["config"])
    assert config.limit is None
    splits = dataset_splits(config.model_copy(update={"dataset": str(ROOT / config.dataset)}))
    assert record["data"]["hash"] == data_hash(splits), (
        "the dataset changed since the classifier was trained: run "
        "`ptychoagent train classifier` and commit artifacts/classifiers/physics-v1"
    )


def test_the_committed_model_reproduces_its_recorded_test_scores() -> None:
    model = FeatureClassifier.load(COMMITTED)
    config = ClassifierConfig.model_validate(model.metadata["config"])
    own = config.model_copy(update={"dataset": str(ROOT / config.dataset)})
    # the split it was scored on, its features computed afresh
    test_split = load_split(dataset_splits(own)["test"], model.projection is not None)
    recorded = model.metadata["metrics"]["test"]
    pred = model.predict_features(model_features(test_split, model.projection))
    scores = score([s.artifacts for s in test_split.samples], pred, ARTIFACT_LABELS)
    assert round(scores.micro.f1, 4) == recorded["micro_f1"]["point"]
    for label in ARTIFACT_LABELS:
        assert round(scores.per_class[label].f1, 4) == recorded["per_class"][label]["f1"]["point"]
    assert recorded["n_items"] == len(test_split.samples)


@pytest.mark.parametrize(
    ("colormap", "file_format", "bit_depth"),
    [
        ("turbo", "png", 8),
        ("hot", "jpeg", 8),
        (None, "png", 8),
        (None, "png", 16),
        (None, "tiff", 16),
    ],
)
def test_training_reads_an_image_as_the_service_does(
    tmp_path: Path, colormap: str | None, file_format: str, bit_depth: int
) -> None:
    """One image path: what the classifier is trained on is what it is served."""
    from PIL import Image

    from ptychobench.sim.render import Rendering, render
    from services.diagnosis.images import decode_image
    from training.classifier import read_grey

    image = next((DATASET / "images").glob("*.png"))
    with Image.open(image) as grey:
        phase = np.asarray(grey, dtype=np.float64) / 255
    rendering = Rendering(colormap=colormap, file_format=file_format, bit_depth=bit_depth)  # type: ignore[arg-type]
    data = render(phase, (0.0, 1.0), rendering)
    path = tmp_path / f"recon.{file_format}"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_grey(path), decode_image(data).pixels)
