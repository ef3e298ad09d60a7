"""Training of the frozen-feature artifact classifier (`ptychobench.classifier`).

Features: `ptychobench.features.image_features` of every image of the training split.
Head: one logistic regression per label (one-vs-rest), L2-penalised, class-balanced
(positives and negatives weigh the same in total), fitted by Newton's method on
standardised features. Everything that is chosen is chosen inside the training split
by ``folds``-fold cross-validation repeated ``repeats`` times (folds stratified by the
rarest label of each sample, fixed seeds): the penalty from ``c_grid`` by out-of-fold
micro-F1, then each label's threshold from ``threshold_grid`` by its out-of-fold F1. A
label whose best out-of-fold F1 is 0 gets threshold 1, which switches it off. The test
split is only scored, once, after everything is fixed.

Kept whole at ~500 lines: the cross-validated choice of penalty and thresholds, the fit
and the card are one procedure whose parts share the folds; split, each would need them
passed around. The CNN comparison lives apart in ``training.classifier_cnn``.

The result is written as ``model.json`` (see `ptychobench.classifier`) with the
configuration, the hash of the data (image bytes and labels of both splits), the
cross-validation record, and the test scores with bootstrap 95 % intervals: micro- and
macro-F1, F1 per label, and the same for the trivial baseline (always the most frequent
training labels). No time stamp or revision is written: the same command on the same
data gives the same file.

``training.classifier_cnn.train_cnn`` trains a small CNN on the same split for
comparison (torch, CPU); its record goes to a separate ``cnn.json`` so that
``model.json`` never depends on it.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from ptychobench.bootstrap import bootstrap
from ptychobench.classifier import FeatureClassifier, Projection
from ptychobench.data import Sample
from ptychobench.features import FEATURE_NAMES, image_features
from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS, Task
from ptychobench.metrics import binarize, score
from training.data import DatasetPaths, data_arguments, open_training_data, shown, splits_made

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

NULL_INDEX = ARTIFACT_LABELS.index(NO_ARTIFACTS)
CNN_FILE = "cnn.json"
CARD_FILE = "README.md"


class ClassifierTrainingError(RuntimeError):
    """Training cannot start or finish; the message says why."""


class ClassifierConfig(BaseModel):
    """One training run of the feature classifier."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "physics-v1"
    version: str = "1"
    dataset: DatasetPaths = "data/ptychobench-sim"
    """A dataset, or several trained and scored together (see ``training.data``)."""
    train_split: str = "train"
    test_split: str = "test"
    seed: int = 0
    folds: int = Field(default=5, ge=2)
    repeats: int = Field(default=3, ge=1)
    c_grid: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
    """Inverse L2 strengths tried (the penalty is ``|w|^2 / (2 C)`` on a loss summed
    over samples whose weights average 1)."""
    threshold_grid: tuple[float, ...] = tuple(round(0.05 * k, 2) for k in range(1, 20))
    n_resamples: int = Field(default=10_000, ge=1)
    bootstrap_seed: int = 0
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N training samples (tests)."""
    decimals: int = Field(default=6, ge=1)
    """Significant digits kept for the model's numbers (short, stable JSON)."""
    backbone_components: int = Field(default=0, ge=0)
    """Add this many principal components of the pretrained backbone's texture
    statistics (`ptychobench.backbone`, fitted on the training split's images) to the
    physics features; 0 keeps the physics features alone."""


# --- data ---------------------------------------------------------------------------------


def read_grey(path: str | Path) -> FloatArray:
    """An image file as the diagnosis service reads an upload of it (the same decoder:
    colour back through its colormap, 16-bit and float stretched, 8-bit divided by 255),
    so that what the classifier is trained on is what it is served. Sizes up to the
    largest image the decoder reads at all."""
    from ptychobench.decode import TRAINING_LIMITS, decode_image

    return decode_image(Path(path).read_bytes(), TRAINING_LIMITS).pixels


@dataclass(frozen=True)
class Split:
    """The samples of one split with their physics features (n, F), labels (n, 12)
    and, when asked for, the backbone's features (n, B)."""

    samples: tuple[Sample, ...]
    features: FloatArray
    labels: BoolArray
    backbone: FloatArray | None = None


def load_split(samples: Sequence[Sample], backbone: bool = False) -> Split:
    """Features and label matrix of a split (and the backbone's features)."""
    from ptychobench import backbone as pretrained

    rows, deep = [], []
    for sample in samples:
        if sample.image is None:
            raise ClassifierTrainingError(f"sample {sample.id} has no image")
        pixels = read_grey(sample.image)
        rows.append(image_features(pixels))
        if backbone:
            deep.append(pretrained.backbone_features(pixels))
    features = np.stack(rows) if rows else np.zeros((0, len(FEATURE_NAMES)))
    labels = binarize([s.artifacts for s in samples], ARTIFACT_LABELS)
    if not backbone:
        return Split(tuple(samples), features, labels)
    deep_features = np.stack(deep) if deep else np.zeros((0, pretrained.FEATURE_COUNT))
    return Split(tuple(samples), features, labels, deep_features)


def fit_projection(backbone: FloatArray, components: int, digits: int) -> Projection:
    """Principal components of the backbone's features of the training split (each
    component's sign fixed so that its largest loading is positive; rounded to
    ``digits`` significant digits, as the model keeps them)."""
    from ptychobench.backbone import NAME

    if components > min(backbone.shape):
        raise ClassifierTrainingError(
            f"{components} backbone components from {backbone.shape[0]} training images"
        )
    standard = Standardisation.fit(backbone)
    _, _, vt = np.linalg.svd(standard.apply(backbone), full_matrices=False)
    top = vt[:components]
    signs = np.sign(top[np.arange(components), np.abs(top).argmax(axis=1)])
    return Projection(
        backbone=NAME,
        mean=_round(standard.mean, digits),
        scale=_round(standard.scale, digits),
        components=_round(top * signs[:, None], digits),
    )


def model_features(split: Split, projection: Projection | None) -> FloatArray:
    """The features a model with ``projection`` reads: physics, then components."""
    if projection is None:
        return split.features
    if split.backbone is None:
        raise ClassifierTrainingError("the split was loaded without the backbone's features")
    return np.hstack([split.features, projection.apply(split.backbone)])


def data_hash(splits: Mapping[str, Sequence[Sample]]) -> str:
    """SHA-256 of the canonical JSON of every sample's id, image bytes (their SHA-256)
    and labels, split by split."""
    content: dict[str, list[list[Any]]] = {}
    for name, samples in splits.items():
        content[name] = []
        for sample in samples:
            if sample.image is None:
                raise ClassifierTrainingError(f"sample {sample.id} has no image")
            digest = hashlib.sha256(Path(sample.image).read_bytes()).hexdigest()
            content[name].append([sample.id, digest, list(sample.artifacts)])
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def dataset_splits(config: ClassifierConfig) -> dict[str, tuple[Sample, ...]]:
    """The training and test samples the configuration names."""
    dataset = open_training_data(config.dataset)
    have = dataset.splits(Task.DETECTION)
    for split in (config.train_split, config.test_split):
        if split not in have:
            raise ClassifierTrainingError(
                f"{shown(config.dataset)} has no detection split {split!r}; it has {list(have)}"
            )
    train = dataset.samples(Task.DETECTION, config.train_split)
    if config.limit is not None:
        train = train[: config.limit]
    return {"train": train, "test": dataset.samples(Task.DETECTION, config.test_split)}


# --- the head -------------------------------------------------------------------------------


def fit_logistic(
    x: FloatArray, y: BoolArray, c: float, iterations: int = 100, tol: float = 1e-10
) -> tuple[FloatArray, float]:
    """Class-balanced L2 logistic regression by Newton's method: (weights, bias).

    Minimises ``sum_i s_i log(1 + exp(-t_i (x_i w + b))) + |w|^2 / (2 c)`` with
    ``t_i = +-1`` and ``s_i = n / (2 n_class(i))``. A label with no positives or no
    negatives gets zero weights and the bias of its (smoothed) base rate.
    """
    n, f = x.shape
    positives = int(y.sum())
    if positives in (0, n):
        rate = (positives + 0.5) / (n + 1.0)
        return np.zeros(f), float(np.log(rate / (1 - rate)))
    weight = np.where(y, n / (2.0 * positives), n / (2.0 * (n - positives)))
    design = np.concatenate([x, np.ones((n, 1))], axis=1)
    target = y.astype(np.float64)
    penalty = np.full(f + 1, 1.0 / c)
    penalty[-1] = 0.0
    theta = np.zeros(f + 1)
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (design @ theta)))
        gradient = design.T @ (weight * (p - target)) + penalty * theta
        hessian = (design * (weight * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
        hessian[-1, -1] += 1e-9
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if float(np.max(np.abs(step))) < tol:
            break
    return theta[:-1].copy(), float(theta[-1])


@dataclass(frozen=True)
class Standardisation:
    """Per-feature mean and scale (a constant feature gets scale 1)."""

    mean: FloatArray
    scale: FloatArray

    @classmethod
    def fit(cls, x: FloatArray) -> Standardisation:
        scale = x.std(axis=0)
        return cls(x.mean(axis=0), np.where(scale > 1e-12, scale, 1.0))

    def apply(self, x: FloatArray) -> FloatArray:
        out: FloatArray = (x - self.mean) / self.scale
        return out


def fit_head(
    x: FloatArray, y: BoolArray, c: float
) -> tuple[Standardisation, FloatArray, FloatArray]:
    """Standardisation and one logistic regression per label: (std, weights (L, F), bias)."""
    standard = Standardisation.fit(x)
    z = standard.apply(x)
    fits = [fit_logistic(z, y[:, j], c) for j in range(y.shape[1])]
    return standard, np.stack([w for w, _ in fits]), np.array([b for _, b in fits])


def head_probabilities(
    x: FloatArray, standard: Standardisation, weights: FloatArray, bias: FloatArray
) -> FloatArray:
    """Scores (n, L) of a fitted head."""
    logits = standard.apply(x) @ weights.T + bias
    p: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * logits))
    return p


def stratified_folds(y: BoolArray, folds: int, seed: int) -> npt.NDArray[np.int64]:
    """Fold index per sample: samples ordered by their rarest label (then at random) and
    dealt round-robin, so every label's positives spread over the folds."""
    n = y.shape[0]
    frequency = y.sum(axis=0)
    rarest = np.array(
        [int(frequency[row].min()) if row.any() else n + 1 for row in y], dtype=np.int64
    )
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.permutation(n), rarest))
    out = np.empty(n, dtype=np.int64)
    out[order] = np.arange(n) % folds
    return out


def out_of_fold(x: FloatArray, y: BoolArray, c: float, fold: npt.NDArray[np.int64]) -> FloatArray:
    """Out-of-fold scores (n, L): each fold scored by a head fitted on the others."""
    p = np.zeros(y.shape, dtype=np.float64)
    for k in np.unique(fold):
        held = fold == k
        standard, weights, bias = fit_head(x[~held], y[~held], c)
        p[held] = head_probabilities(x[held], standard, weights, bias)
    return p


def decide(p: FloatArray, thresholds: FloatArray) -> BoolArray:
    """Predictions (n, L): artifact labels at or above threshold, else the null label."""
    fired = p >= thresholds
    fired[:, NULL_INDEX] = False
    fired[:, NULL_INDEX] = ~fired.any(axis=1)
    return fired


def _f1(truth: BoolArray, pred: BoolArray) -> float:
    tp = int(np.sum(truth & pred))
    wrong = int(np.sum(truth ^ pred))
    return 2 * tp / (2 * tp + wrong) if tp else 0.0


def choose_thresholds(p: FloatArray, y: BoolArray, grid: Sequence[float]) -> FloatArray:
    """Per label, the grid threshold with the best F1 on (out-of-fold) scores; ties go to
    the threshold nearest 0.5; a label with no F1 above 0 gets 1 (off)."""
    out = np.ones(y.shape[1])
    candidates = sorted(grid, key=lambda t: (abs(t - 0.5), t))
    for j in range(y.shape[1]):
        best, best_f1 = 1.0, 0.0
        for t in candidates:
            f1 = _f1(y[:, j], p[:, j] >= t)
            if f1 > best_f1 + 1e-12:
                best, best_f1 = t, f1
        out[j] = best
    return out


def micro_f1(truth: BoolArray, pred: BoolArray) -> float:
    """Micro-F1 over every label (the null label included)."""
    return _f1(truth, pred)


def cross_validate(
    x: FloatArray, y: BoolArray, config: ClassifierConfig
) -> tuple[float, FloatArray, dict[str, Any]]:
    """Choose C and the thresholds inside the training split: (C, thresholds, record).

    Cross-validation is repeated ``repeats`` times with different fold assignments
    (seeds ``seed``, ``seed + 1``, ...) and the out-of-fold scores of all repeats are
    pooled: one 312-sample split into 5 folds moves the micro-F1 by a few hundredths,
    more than the differences between neighbouring values of C.
    """
    folds = [stratified_folds(y, config.folds, config.seed + r) for r in range(config.repeats)]
    truth = np.concatenate([y] * config.repeats)
    results = []
    for c in config.c_grid:
        p = np.concatenate([out_of_fold(x, y, c, fold) for fold in folds])
        thresholds = choose_thresholds(p, truth, config.threshold_grid)
        results.append((micro_f1(truth, decide(p, thresholds)), c, thresholds))
    best_f1 = max(r[0] for r in results)
    _, c, thresholds = next(r for r in results if r[0] >= best_f1 - 1e-12)  # smallest C
    record = {
        "folds": config.folds,
        "repeats": config.repeats,
        "micro_f1_by_c": {f"{r[1]:g}": round(r[0], 4) for r in results},
        "c": c,
        "micro_f1": round(best_f1, 4),
    }
    return c, thresholds, record


# --- scoring ------------------------------------------------------------------------------


def test_report(
    truth: BoolArray, pred: BoolArray, config: ClassifierConfig, sample_types: Sequence[str]
) -> dict[str, Any]:
    """Micro-, macro- and per-label F1 on the test split with bootstrap intervals."""

    def interval(t: BoolArray, p: BoolArray, statistic: str = "micro_f1") -> dict[str, Any]:
        result = bootstrap(
            t,
            p,
            statistic,  # type: ignore[arg-type]
            n_resamples=config.n_resamples,
            seed=config.bootstrap_seed,
        )
        return {
            "point": round(result.point, 4),
            "ci_low": round(result.ci_low, 4),
            "ci_high": round(result.ci_high, 4),
            "std": round(result.std, 4),
        }

    scores = score(truth, pred, ARTIFACT_LABELS, sample_types)
    per_class = {}
    for j, label in enumerate(ARTIFACT_LABELS):
        prf = scores.per_class[label]
        per_class[label] = {
            "support": prf.support,
            "predicted": int(pred[:, j].sum()),
            "precision": round(prf.precision, 4),
            "recall": round(prf.recall, 4),
            "f1": interval(truth[:, j : j + 1], pred[:, j : j + 1]),
        }
    return {
        "n_items": int(truth.shape[0]),
        "confidence": 0.95,
        "n_resamples": config.n_resamples,
        "bootstrap_seed": config.bootstrap_seed,
        "micro_f1": interval(truth, pred),
        "macro_f1": interval(truth, pred, "macro_f1"),
        "micro_precision": round(scores.micro.precision, 4),
        "micro_recall": round(scores.micro.recall, 4),
        "per_class": per_class,
    }


def most_frequent_baseline(train: BoolArray) -> tuple[list[str], BoolArray]:
    """The trivial baseline: always the k most frequent training labels, k chosen by
    micro-F1 on the training split. (labels, one prediction row)."""
    order = np.argsort(-train.sum(axis=0), kind="stable")
    best_row, best_f1 = np.zeros(train.shape[1], dtype=bool), -1.0
    for k in range(1, train.shape[1] + 1):
        row = np.zeros(train.shape[1], dtype=bool)
        row[order[:k]] = True
        if row[NULL_INDEX] and row.sum() > 1:
            continue  # the null label never goes with another
        f1 = micro_f1(train, np.broadcast_to(row, train.shape))
        if f1 > best_f1 + 1e-12:
            best_row, best_f1 = row, f1
    return [label for label, on in zip(ARTIFACT_LABELS, best_row, strict=True) if on], best_row


# --- the whole run --------------------------------------------------------------------------


def _round(values: FloatArray, digits: int) -> FloatArray:
    return np.array([float(f"{v:.{digits}g}") for v in np.ravel(values)]).reshape(values.shape)


def library_versions() -> dict[str, str]:
    return {"numpy": np.__version__, "python": platform.python_version()}


def train(
    config: ClassifierConfig,
    out: Path | None = None,
    progress: Callable[[str], None] | None = None,
    splits: tuple[Split, Split] | None = None,
) -> FeatureClassifier:
    """Fit, choose, score on the test split and (with ``out``) write ``model.json``.

    ``splits`` (train, test) skips reading the images again (tests, the CNN comparison).
    """
    say = progress or (lambda _: None)
    samples = dataset_splits(config)
    deep = config.backbone_components > 0
    if splits is None:
        say(f"features of {len(samples['train'])} training and {len(samples['test'])} test images")
        splits = (load_split(samples["train"], deep), load_split(samples["test"], deep))
    train_split, test_split = splits
    projection = None
    if deep:
        if train_split.backbone is None:
            raise ClassifierTrainingError("backbone_components needs the backbone's features")
        projection = fit_projection(
            train_split.backbone, config.backbone_components, config.decimals
        )
    x, y = model_features(train_split, projection), train_split.labels
    if x.shape[0] < config.folds:
        raise ClassifierTrainingError(f"{x.shape[0]} training samples for {config.folds} folds")
    c, thresholds, cv_record = cross_validate(x, y, config)
    say(f"cross-validation: C={c:g}, out-of-fold micro-F1 {cv_record['micro_f1']}")
    standard, weights, bias = fit_head(x, y, c)
    d = config.decimals
    data: dict[str, Any] = {
        "dataset": config.dataset,
        "hash": data_hash(samples),
        "train": len(samples["train"]),
        "test": len(samples["test"]),
    }
    if made := splits_made(config.dataset):
        data["splits_made"] = made
    metadata: dict[str, Any] = {
        "kind": "one-vs-rest L2 logistic regression on physics features",
        "config": config.model_dump(mode="json"),
        "data": data,
        "cross_validation": cv_record,
        "versions": library_versions(),
    }
    model = FeatureClassifier(
        name=config.name,
        version=config.version,
        labels=ARTIFACT_LABELS,
        feature_names=FEATURE_NAMES + (projection.names if projection else ()),
        mean=_round(standard.mean, d),
        scale=_round(standard.scale, d),
        weights=_round(weights, d),
        bias=_round(bias, d),
        thresholds=thresholds,
        projection=projection,
        metadata=metadata,
    )
    # the test split is scored with the model exactly as written (rounded numbers)
    truth = test_split.labels
    pred = binarize(model.predict_features(model_features(test_split, projection)), ARTIFACT_LABELS)
    types = [s.sample_type for s in test_split.samples]
    baseline_labels, baseline_row = most_frequent_baseline(y)
    baseline = np.broadcast_to(baseline_row, truth.shape).copy()
    metadata["metrics"] = {
        "test": test_report(truth, pred, config, types),
        "baselines": {
            "most_frequent": {
                "labels": baseline_labels,
                "test": test_report(truth, baseline, config, types),
            }
        },
    }
    say(f"test micro-F1 {metadata['metrics']['test']['micro_f1']}")
    if out is not None:
        model.save(out)
        (out / CARD_FILE).write_text(model_card(model), encoding="utf-8")
    return model


def _interval(entry: Mapping[str, Any]) -> str:
    return f"{entry['point']:.3f} [{entry['ci_low']:.3f}, {entry['ci_high']:.3f}]"


def model_card(model: FeatureClassifier) -> str:
    """The README.md written beside ``model.json``: what it is, its numbers, how to
    reproduce it (everything from the model's own record)."""
    meta = model.metadata
    config, data, cv = meta["config"], meta["data"], meta["cross_validation"]
    test = meta["metrics"]["test"]
    baseline = meta["metrics"]["baselines"]["most_frequent"]
    command = "ptychoagent train classifier"
    if config["dataset"] != "data/ptychobench-sim":
        command += " " + data_arguments(config["dataset"])
    if config["seed"] != 0:
        command += f" --seed {config['seed']}"
    components = config.get("backbone_components", 0)
    if components:
        command += f" --backbone-components {components}"
    if config["version"] != "1":
        command += f" --version {config['version']}"
    features = (
        [
            "`classifier`): the physics features of `ptychobench.features` and",
            f"{components} principal components of the frozen ImageNet EfficientNet-Lite0's",
            "texture statistics (`ptychobench.backbone`, fitted on the training images), then",
            "one-vs-rest L2 logistic regression (`ptychobench.classifier`; torch for the",
            "backbone). The project's stand-in for the paper's DINOv3 baseline; see",
            "docs/classifier.md.",
        ]
        if components
        else [
            "`classifier`): the physics features of `ptychobench.features` and one-vs-rest",
            "L2 logistic regression, run with numpy by `ptychobench.classifier`. The",
            "project's stand-in for the paper's DINOv3 baseline; see docs/classifier.md.",
        ]
    )
    lines = [
        f"# {model.name}@{model.version}",
        "",
        "Frozen-feature artifact classifier of the diagnosis service (backend kind",
        *features,
        "",
        f"- data: {shown(data['dataset'])}, {data['train']} training and {data['test']} test"
        " images;",
        f"  data hash `{data['hash']}`",
        f"- {len(model.feature_names)} features; C = {cv['c']:g} and per-label thresholds",
        f"  chosen by {cv['folds']}-fold cross-validation x {cv['repeats']} inside the training",
        f"  split (out-of-fold micro-F1 {cv['micro_f1']:.3f}); seed {config['seed']}",
        f"- test micro-F1 {_interval(test['micro_f1'])}, macro-F1"
        f" {_interval(test['macro_f1'])} (bootstrap {test['n_resamples']} resamples, 95 %)",
        f"- trivial baseline (always {', '.join(baseline['labels'])}): micro-F1"
        f" {_interval(baseline['test']['micro_f1'])}",
        "",
        "| label | test support | predicted | F1 [95 % CI] | threshold |",
        "|---|---|---|---|---|",
    ]
    for label, threshold in zip(model.labels, model.thresholds, strict=True):
        entry = test["per_class"][label]
        rule = "none fires" if label == NO_ARTIFACTS else f"{threshold:g}"
        lines.append(
            f"| {label} | {entry['support']} | {entry['predicted']} | "
            f"{_interval(entry['f1'])} | {rule} |"
        )
    lines += [
        "",
        f"Reproduce (same bytes of `model.json` on the same data): `{command}`.",
        "The comparison with a small CNN (`--cnn`) is recorded in `cnn.json` when present.",
        "",
    ]
    return "\n".join(lines)
