"""What every request model of our APIs shares, stated once: unknown fields refused, no
string with a NUL byte anywhere in it (PostgreSQL text cannot hold one, and no caller
means one), and seeds held to what the database's ``INTEGER`` columns keep (int4 on
PostgreSQL, where SQLite would keep up to int64).

A request model subclasses :class:`RequestModel`; a query parameter takes
:data:`CleanText`; a seed is a :data:`Seed`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

SEED_MAX = 2**31 - 1
"""The largest seed: int4, the ``seed`` columns' type on every database we support."""
Seed = Annotated[int, Field(ge=0, le=SEED_MAX, description="0 to 2³¹ − 1")]


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
