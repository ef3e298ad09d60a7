"""What every request model of our APIs shares, stated once: unknown fields refused, no
string with a NUL byte anywhere in it (PostgreSQL text cannot hold one, and no caller
means one), seeds held to what the database's ``INTEGER`` columns keep (int4 on
PostgreSQL, where SQLite would keep up to int64), one example-selection
:class:`Strategy` and one bound on the number of examples :data:`K`.

A request model subclasses :class:`RequestModel`; a query parameter takes
:data:`CleanText`; a seed is a :data:`Seed`; a number of few-shot examples is a :data:`K`.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

SEED_MAX: Final = 2**31 - 1
"""The largest seed: int4, the ``seed`` columns' type on every database we support."""
Seed = Annotated[int, Field(ge=0, le=SEED_MAX, description="0 to 2³¹ − 1")]

K_MAX: Final = 16
"""The most few-shot examples any request may ask for, at every hop (gateway, diagnosis,
ptycho_agent, retriever, benchmark configuration). A service may be deployed with a
lower limit of its own (its ``max_k`` setting, never above this)."""


def k_limit_message(k: int, limit: int) -> str:
    """What a request with too many examples is told, by the model or by a service."""
    return f"k = {k} is above this service's limit {limit}"


def _check_k(value: int) -> int:
    if value > K_MAX:
        raise ValueError(k_limit_message(value, K_MAX))
    return value


K = Annotated[int, Field(ge=0, json_schema_extra={"maximum": K_MAX}), AfterValidator(_check_k)]
"""A number of few-shot examples: 0 to :data:`K_MAX`."""


class Strategy(enum.StrEnum):
    """How few-shot examples are chosen: same sample type first (SSFS), at random (RFS),
    or by the similarity of the sample's description (semantic, in the retriever)."""

    SSFS = "ssfs"
    RFS = "rfs"
    SEMANTIC = "semantic"


ADAPTER_PATTERN: Final = r"^[A-Za-z0-9._-]+$"
"""A served model or LoRA adapter name."""

BASE64_PATTERN: Final = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"

Base64 = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": BASE64_PATTERN, "format": "byte", "contentEncoding": "base64"}
    ),
]
"""Standard, padded base64 (``format: byte`` in OpenAPI's words).

The pattern is the canonical form: the standard alphabet in groups of four, padded, no
whitespace; everything it admits ``base64.b64decode(text, validate=True)`` decodes. It is
stated, not enforced by the model: the one check is the decoder where the bytes are used
(``services.common.encoding.decode_base64``)."""


def refuse_nul(value: Any) -> Any:
    """``value``, when no string in it (dictionary keys included, at any depth) holds a
    NUL byte; a ``ValueError`` otherwise. Models are left to their own validators."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL bytes (\\x00)")
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key)
            refuse_nul(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            refuse_nul(item)
    return value


CleanText = Annotated[str, AfterValidator(refuse_nul)]
"""A string parameter outside a model (a query filter)."""


class RequestModel(BaseModel):
    """A request of our API: extra fields refused, every string field (and every string
    inside a list or a dictionary) free of NUL bytes."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        return refuse_nul(value)
