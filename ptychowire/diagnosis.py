"""Requests and responses of the diagnosis service (our API: extra fields refused).

``POST /v1/diagnose`` takes either JSON (:class:`DiagnoseRequest`, the image base64 in
``image_base64``) or ``multipart/form-data`` with the image as the file part ``image`` and
the other fields as a JSON form field ``request``.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field

from ptychowire.base import ADAPTER_PATTERN, Base64, K, RequestModel, Seed, Strategy

Backend = Literal["vlm", "classifier"]
BACKENDS: tuple[str, ...] = get_args(Backend)
"""The models that can answer a diagnosis; each fails alone (a circuit each)."""


class SampleMeta(RequestModel):
    """What is known about the reconstruction besides its image."""

    sample_type: str = Field(default="unknown", min_length=1, max_length=200)
    instrument: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=4000)
    id: str | None = Field(default=None, max_length=200)
    """The sample's id when it is one of the pool's (never shown as its own example)."""


class DiagnoseOptions(RequestModel):
    """Everything but the image (the ``request`` field of a multipart upload)."""

    sample: SampleMeta = Field(default_factory=SampleMeta)
    k: K = 0
    strategy: Strategy = Strategy.SSFS
    backend: Backend | None = None
    """Which model answers (default: the service's ``default_backend``)."""
    adapter: str | None = Field(default=None, max_length=200, pattern=ADAPTER_PATTERN)
    """The VLM adapter (or base model) to use; for the classifier, its name."""
    seed: Seed = 0


class DiagnoseRequest(DiagnoseOptions):
    image_base64: Base64 = Field(min_length=1, max_length=40_000_000)
    """PNG, JPEG, TIFF or ``.npy`` bytes, base64-encoded."""


class ImageInfo(BaseModel):
    format: str
    mode: str
    width: int
    height: int
    sha256: str
    colormap: str | None = None
    """The colormap a colour image was read back through (``None``: grey, or colour no
    known map fits, read as luminance)."""


class DiagnoseResponse(BaseModel):
    labels: list[str]
    """Detected artifacts, in the vocabulary's order."""
    raw_answer: str
    unmapped: list[str]
    """Answer fragments that matched no label (parse failures)."""
    scores: dict[str, float] | None = None
    """The classifier's probability per label (``None`` for the VLM)."""
    backend: str
    adapter: str
    """The VLM adapter, or the classifier's name and version."""
    k: int
    strategy: str
    seed: int
    example_ids: list[str]
    prompt_version: str | None = None
    prompt_hash: str | None = None
    image: ImageInfo
    prompt_tokens: int = 0
    completion_tokens: int = 0
    backend_latency_s: float
    latency_s: float
