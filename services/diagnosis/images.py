"""Image intake at the service's edge: :mod:`ptychobench.decode` (the one decoder, shared
with training and the benchmarks), its errors translated into the service's tree (413,
415, 422 problem+json)."""

from __future__ import annotations

from ptychobench.decode import (
    TRAINING_LIMITS,
    DecodedImage,
    ImageError,
    ImageLimits,
    ImageTooLargeError,
    UnsupportedImageError,
)
from ptychobench.decode import decode_image as decode
from services.common.errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType

__all__ = ["TRAINING_LIMITS", "DecodedImage", "ImageLimits", "decode_image"]


UPLOAD_LIMITS = ImageLimits()


def decode_image(data: bytes, limits: ImageLimits = UPLOAD_LIMITS) -> DecodedImage:
    """Check and decode an uploaded image (raises 4xx ``ServiceError`` on bad input)."""
    try:
        return decode(data, limits)
    except ImageTooLargeError as error:
        raise PayloadTooLarge(str(error)) from error
    except UnsupportedImageError as error:
        raise UnsupportedMediaType(str(error)) from error
    except ImageError as error:
        raise InvalidInput(str(error)) from error
