"""Settings of the gateway (env prefix ``GATEWAY_``; nested blocks with ``__``, as in
``GATEWAY_AGENT__BASE_URL``)."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from services.common.settings import ServiceSettings, UpstreamSettings


class DiagnosisUpstream(UpstreamSettings):
    base_url: str = "http://127.0.0.1:8103"


class AgentUpstream(UpstreamSettings):
    base_url: str = "http://127.0.0.1:8102"


class ReconstructorUpstream(UpstreamSettings):
    base_url: str = "http://127.0.0.1:8104"


class GatewaySettings(ServiceSettings):
    """The services the gateway calls, and what it keeps.

    The beamline authenticates with the gateway's own API keys (``ptychoagent keys``,
    stored hashed in the database), not with ``api_keys``; the ``api_key`` of each
    upstream block is what the gateway presents to that service.
    """

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_nested_delimiter="__", extra="forbid"
    )

    diagnosis: DiagnosisUpstream = Field(default_factory=DiagnosisUpstream)
    agent: AgentUpstream = Field(default_factory=AgentUpstream)
    retriever: UpstreamSettings | None = None
    """The retriever, for feedback that adds corrected samples to the example pool
    (``add_to_pool``); without one such feedback is refused."""
    reconstructor: ReconstructorUpstream = Field(default_factory=ReconstructorUpstream)
    """The reconstructor, for ``POST /v1/refine`` (the closed loop)."""
    max_image_bytes: int = Field(default=20_000_000, ge=1)
    refine_dir: str = "runs/refine"
    """Where experiments uploaded to ``POST /v1/refine`` are kept, one folder per job."""
    max_experiment_bytes: int = Field(default=2 * 2**30, ge=1)
    """The largest experiment file ``POST /v1/refine`` accepts."""
    refine_poll_s: float = Field(default=1.0, gt=0)
    """How often a refinement job asks the reconstructor about its reconstruction."""
    refine_max_attempts: int = Field(default=2, ge=1)
    """A refinement job the gateway stopped under is resumed until it has been started
    this many times, then marked interrupted."""
    reports_dir: str = "reports"
    """Where reports of runs started with ``POST /v1/benchmarks`` are written."""
    bench_dataset_roots: list[str] = Field(default_factory=lambda: ["data"])
    """The folders whose datasets ``POST /v1/benchmarks`` may read (relative ones count
    from the working directory: ``data`` is the project's, where ``make run`` and the
    container keep PtychoBench-Sim)."""
    idempotency_ttl_h: float = Field(default=24.0, gt=0)
    """How long an ``Idempotency-Key`` answer is kept for replays."""
    idempotency_wait_s: float = Field(default=120.0, ge=0)
    """How long a request waits for the answer of another request with its
    Idempotency-Key that is still being answered (then a 409: send it again later)."""
    idempotency_lease_s: float = Field(default=900.0, gt=0)
    """How long a claimed Idempotency-Key stays its request's: after that (its process
    died mid-call) another request with the key may take it over. Longer than the
    slowest answer (the agent's timeout and retries)."""

    @model_validator(mode="after")
    def _no_placeholders_in_production(self) -> GatewaySettings:
        # the gateway's callers use database keys; what production needs is a real
        # database and real keys for the services behind it
        if self.environment == "production":
            missing = [
                name for name in ("diagnosis", "agent") if getattr(self, name).api_key is None
            ]
            if missing:
                raise ValueError(
                    f"production needs an api_key for {', '.join(missing)} "
                    f"(GATEWAY_{missing[0].upper()}__API_KEY)"
                )
        return self
