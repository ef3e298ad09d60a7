"""The frozen-feature artifact classifier: physics features and a multi-label linear head.

The paper's frozen-feature baseline (its DINOv3 row) trained a classifier on features
of a frozen vision model. No pretrained vision weights are available offline here, so
the features are measured ones (`ptychobench.features`) and the head is one-vs-rest
logistic regression, trained by ``training.classifier`` (``ptychoagent train
classifier``). This module only runs a trained model, with numpy.

A model is a directory holding ``model.json``, plain human-readable JSON (no pickle):

- ``format``, ``name``, ``version``: what it is (``format`` is `MODEL_FORMAT`);
- ``labels``: the 12 detection labels in vocabulary order, ``features``: the feature
  names in `ptychobench.features.FEATURE_NAMES` order, then the backbone's components
  when it has one (a model made with other features is refused);
- ``standardisation``: ``mean`` and ``scale`` per feature;
- ``head``: ``weights`` (one row per label, one column per feature), ``bias`` per label,
  ``thresholds`` per label;
- ``backbone`` (optional): pretrained image features added to the physics ones, as
  principal components: ``name`` (`ptychobench.backbone.NAME`), ``mean`` and ``scale``
  per backbone feature, and ``components`` (one row per component); the component
  features are named ``<name>_pc<i>`` after the physics ones in ``features``;
- whatever else training recorded (``config``, ``data`` with its hash, ``metrics``),
  kept as it is in `FeatureClassifier.metadata`.

Features of an image: `ptychobench.features.image_features`, then, with a backbone,
``((b − mean) / scale) @ components.T`` of its `ptychobench.backbone.backbone_features`
``b`` (torch is then needed; a model without a backbone runs on numpy alone).

Scores: ``p = sigmoid(w · (x − mean) / scale + b)`` per label, kept within
``[1e-9, 1 − 1e-9]`` so that a threshold of 1 switches a label off. Prediction: every
artifact label whose score reaches its threshold, in vocabulary order; "No obvious
artifacts" when none does, and never together with another label (the null label's own
score is reported by `FeatureClassifier.scores` but does not decide anything).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from ptychobench.features import FEATURE_NAMES, image_features
from ptychobench.labels import ARTIFACT_LABELS, NO_ARTIFACTS

FloatArray = npt.NDArray[np.float64]

MODEL_FILE: Final = "model.json"
MODEL_FORMAT: Final = "ptychobench-feature-classifier/1"
_P_MIN: Final = 1e-9


class ClassifierFormatError(ValueError):
    """A model directory or ``model.json`` that cannot be used; the message says why."""


@dataclass(frozen=True, eq=False)
class Projection:
    """Backbone features to principal components (see the module docstring)."""

    backbone: str
    mean: FloatArray = field(repr=False)
    scale: FloatArray = field(repr=False)
    components: FloatArray = field(repr=False)

    def __post_init__(self) -> None:
        from ptychobench import backbone

        if self.backbone != backbone.NAME:
            raise ClassifierFormatError(
                f"unknown backbone {self.backbone!r}; this version reads {backbone.NAME!r}"
            )
        n = backbone.FEATURE_COUNT
        if self.mean.shape != (n,) or self.scale.shape != (n,):
            raise ClassifierFormatError(f"the backbone's mean and scale must have {n} entries")
        if self.components.ndim != 2 or self.components.shape[1] != n:
            raise ClassifierFormatError(
                f"backbone components have shape {self.components.shape}, expected (d, {n})"
            )
        if not all(np.isfinite(a).all() for a in self.arrays()) or (self.scale <= 0).any():
            raise ClassifierFormatError("the backbone projection holds non-finite or bad scales")

    def arrays(self) -> tuple[FloatArray, ...]:
        return (self.mean, self.scale, self.components)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f"{self.backbone}_pc{i + 1}" for i in range(len(self.components)))

    def apply(self, backbone_features: npt.ArrayLike) -> FloatArray:
        """The components of one backbone feature vector (B,) or a matrix (n, B)."""
        x = np.asarray(backbone_features, dtype=np.float64)
        out: FloatArray = ((x - self.mean) / self.scale) @ self.components.T
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Projection:
        return cls(
            backbone=str(data["name"]),
            mean=_floats(data["mean"]),
            scale=_floats(data["scale"]),
            components=_floats(data["components"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.backbone,
            "mean": _list(self.mean),
            "scale": _list(self.scale),
            "components": [_list(row) for row in self.components],
        }


@dataclass(frozen=True, eq=False)
class FeatureClassifier:
    """A trained feature classifier (see the module docstring for the format).

    Two classifiers are equal when their names, labels, features and numbers are; the
    metadata does not count.
    """

    name: str
    version: str
    labels: tuple[str, ...]
    feature_names: tuple[str, ...]
    mean: FloatArray = field(repr=False)
    scale: FloatArray = field(repr=False)
    weights: FloatArray = field(repr=False)
    bias: FloatArray = field(repr=False)
    thresholds: FloatArray = field(repr=False)
    projection: Projection | None = field(default=None, repr=False)
    metadata: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if tuple(self.labels) != ARTIFACT_LABELS:
            raise ClassifierFormatError(
                f"labels must be the 12 detection labels in order, got {list(self.labels)}"
            )
        if tuple(self.feature_names) != self.expected_features:
            raise ClassifierFormatError(
                "the model was trained on other features than ptychobench.features "
                "(and its backbone) computes now; retrain it (ptychoagent train classifier)"
            )
        n_labels, n_features = len(self.labels), len(self.feature_names)
        shapes = {
            "mean": (self.mean.shape, (n_features,)),
            "scale": (self.scale.shape, (n_features,)),
            "weights": (self.weights.shape, (n_labels, n_features)),
            "bias": (self.bias.shape, (n_labels,)),
            "thresholds": (self.thresholds.shape, (n_labels,)),
        }
        for what, (got, want) in shapes.items():
            if got != want:
                raise ClassifierFormatError(f"{what} has shape {got}, expected {want}")
        if not all(np.isfinite(a).all() for a in self._arrays()):
            raise ClassifierFormatError("the model holds non-finite numbers")
        if (self.scale <= 0).any():
            raise ClassifierFormatError("standardisation scales must be positive")
        if ((self.thresholds < 0) | (self.thresholds > 1)).any():
            raise ClassifierFormatError("thresholds must lie in [0, 1]")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FeatureClassifier):
            return NotImplemented
        return (self.name, self.version, self.labels, self.feature_names) == (
            other.name,
            other.version,
            other.labels,
            other.feature_names,
        ) and (
            len(self._arrays()) == len(other._arrays())
            and all(
                np.array_equal(a, b) for a, b in zip(self._arrays(), other._arrays(), strict=True)
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def _arrays(self) -> tuple[FloatArray, ...]:
        own = (self.mean, self.scale, self.weights, self.bias, self.thresholds)
        return own + (self.projection.arrays() if self.projection else ())

    @property
    def expected_features(self) -> tuple[str, ...]:
        """The feature names this model's features must have, in order."""
        return FEATURE_NAMES + (self.projection.names if self.projection else ())

    # --- reading and writing ------------------------------------------------------------

    @classmethod
    def load(cls, directory: str | Path) -> FeatureClassifier:
        """Read ``<directory>/model.json``."""
        path = Path(directory) / MODEL_FILE
        if not path.is_file():
            raise ClassifierFormatError(f"no {MODEL_FILE} in {directory}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ClassifierFormatError(f"{path}: not JSON ({exc.msg})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureClassifier:
        """A classifier from the content of ``model.json``."""
        if data.get("format") != MODEL_FORMAT:
            raise ClassifierFormatError(f"format {data.get('format')!r} is not {MODEL_FORMAT!r}")
        try:
            labels = tuple(str(label) for label in data["labels"])
            head = data["head"]
            standardisation = data["standardisation"]
            thresholds = head["thresholds"]
            if isinstance(thresholds, Mapping):
                thresholds = [thresholds[label] for label in labels]
            known = {"format", "name", "version", "labels", "features", "standardisation"}
            backbone = data.get("backbone")
            return cls(
                name=str(data["name"]),
                version=str(data["version"]),
                labels=labels,
                feature_names=tuple(str(name) for name in data["features"]),
                mean=_floats(standardisation["mean"]),
                scale=_floats(standardisation["scale"]),
                weights=_floats(head["weights"]),
                bias=_floats(head["bias"]),
                thresholds=_floats(thresholds),
                projection=Projection.from_dict(backbone) if backbone is not None else None,
                metadata={k: v for k, v in data.items() if k not in {*known, "head", "backbone"}},
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ClassifierFormatError):
                raise
            raise ClassifierFormatError(f"malformed model: {exc!r}") from None

    def to_dict(self) -> dict[str, Any]:
        """The content of ``model.json``: the fixed keys first, then the metadata."""
        return {
            "format": MODEL_FORMAT,
            "name": self.name,
            "version": self.version,
            "labels": list(self.labels),
            "features": list(self.feature_names),
            "standardisation": {"mean": _list(self.mean), "scale": _list(self.scale)},
            "head": {
                "weights": [_list(row) for row in self.weights],
                "bias": _list(self.bias),
                "thresholds": {
                    label: float(t) for label, t in zip(self.labels, self.thresholds, strict=True)
                },
            },
            **({"backbone": self.projection.to_dict()} if self.projection else {}),
            **self.metadata,
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``<directory>/model.json`` (indented, sorted as `to_dict`); its path."""
        path = Path(directory) / MODEL_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")
        return path

    # --- inference ----------------------------------------------------------------------

    def probabilities(self, features: npt.ArrayLike) -> FloatArray:
        """Scores per label for one feature vector (F,) or a matrix (n, F)."""
        x = np.asarray(features, dtype=np.float64)
        logits = ((x - self.mean) / self.scale) @ self.weights.T + self.bias
        p: FloatArray = 0.5 * (1.0 + np.tanh(0.5 * logits))  # the sigmoid, overflow-free
        clipped: FloatArray = np.clip(p, _P_MIN, 1.0 - _P_MIN)
        return clipped

    def decide(self, probabilities: npt.ArrayLike) -> tuple[str, ...]:
        """Labels from one row of scores: the artifact labels at or above threshold, or
        "No obvious artifacts" alone."""
        p = np.asarray(probabilities, dtype=np.float64)
        fired = tuple(
            label
            for label, score, threshold in zip(self.labels, p, self.thresholds, strict=True)
            if label != NO_ARTIFACTS and score >= threshold
        )
        return fired or (NO_ARTIFACTS,)

    def features(self, image: npt.ArrayLike) -> FloatArray:
        """The model's features (F,) of a 2-D grey image in [0, 1]."""
        physics = image_features(image)
        if self.projection is None:
            return physics
        from ptychobench.backbone import backbone_features

        return np.concatenate([physics, self.projection.apply(backbone_features(image))])

    def scores(self, image: npt.ArrayLike) -> dict[str, float]:
        """Probability per label (vocabulary order) for a 2-D grey image in [0, 1]."""
        p = self.probabilities(self.features(image))
        return {label: float(v) for label, v in zip(self.labels, p, strict=True)}

    def predict(self, image: npt.ArrayLike) -> tuple[str, ...]:
        """The labels of a 2-D grey image in [0, 1], in vocabulary order."""
        return self.decide(self.probabilities(self.features(image)))

    def predict_features(self, features: npt.ArrayLike) -> list[tuple[str, ...]]:
        """Labels for each row of a feature matrix (n, F)."""
        return [self.decide(row) for row in self.probabilities(np.atleast_2d(features))]


def _floats(value: Sequence[Any]) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


def _list(values: FloatArray) -> list[float]:
    return [float(v) for v in values]
