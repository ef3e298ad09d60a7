"""Settings shared by every service: the backend block and the service's own basics.

Each service subclasses :class:`ServiceSettings` with its own env prefix
(``AGENT_``, ``DIAGNOSIS_``, ``RETRIEVER_``, ``GATEWAY_``); nested blocks are read with
``__`` (``AGENT_BACKEND__BASE_URL``). Nothing is read at import time: an app builds its
settings in ``create_app``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ptychowire.base import K_MAX, k_limit_message
from services.common.errors import InvalidInput

MaxK = Annotated[int, Field(ge=0, le=K_MAX)]
"""A service's own limit on k (its ``max_k`` setting): never above the wire's ``K_MAX``,
lower where the deployment needs it (an engine that takes few images per prompt)."""


def check_k(k: int, max_k: int, why: str = "") -> None:
    """Refuse (422) a request for more examples than this service is deployed for."""
    if k > max_k:
        raise InvalidInput(k_limit_message(k, max_k) + (f" ({why})" if why else ""))


PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development"})


class UpstreamSettings(BaseModel):
    """Another server a service calls, and how hard to try (retries, circuit breaker)."""

    model_config = ConfigDict(extra="forbid")

    base_url: str = "http://127.0.0.1:8011"
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    backoff_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=8.0, ge=0)
    circuit_failures: int = Field(default=5, ge=1)
    circuit_reset_s: float = Field(default=30.0, ge=0)
    max_connections: int = Field(default=32, ge=1)


class BackendSettings(UpstreamSettings):
    """Where a service's model is served (vLLM's OpenAI-compatible API)."""

    model: str = "base"
    cache_size: int = Field(default=0, ge=0)
    """Responses kept in the LRU cache (0: no cache)."""


class ServiceSettings(BaseSettings):
    """What every service has: environment, accepted API keys, logging, database."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="forbid")

    environment: Literal["development", "production"] = "development"
    api_keys: list[SecretStr] = Field(default_factory=list)
    """Keys accepted from other services (``Authorization: Bearer`` or ``X-API-Key``).
    Empty: no key needed, allowed in development only."""
    log_format: Literal["text", "json"] = "text"
    database_url: str = "sqlite:///runs/ptychoagent.db"
    max_body_bytes: int = Field(default=1_000_000, ge=1)
    """The largest request body read, counted as it streams in (413 past it); routes
    that take an image allow that image as base64 instead."""
    instance_id: str | None = Field(default=None, max_length=100)
    """Reported by ``/healthz``: whoever started the process (``ptychoagent run`` sets a
    nonce per run) knows that what answers on the port is that process."""

    @model_validator(mode="after")
    def _no_placeholders_in_production(self) -> ServiceSettings:
        if self.environment == "production":
            if not self.api_keys:
                raise ValueError("production needs api_keys (service-to-service auth)")
            weak = [k for k in self.api_keys if k.get_secret_value() in PLACEHOLDER_SECRETS]
            if weak or any(len(k.get_secret_value()) < 16 for k in self.api_keys):
                raise ValueError("production api_keys must be real secrets (16+ characters)")
        return self
