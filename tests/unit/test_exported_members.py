"""Pin the public names of the packages, so an export cannot vanish unnoticed."""

from __future__ import annotations

import gateway
import ptychobench
import ptychobench.data
import ptychobench.sim
import ptychowire
import services.common


def test_ptychobench_exports() -> None:
    assert set(ptychobench.__all__) == {
        "ARTIFACT_LABELS",
        "NO_ARTIFACTS",
        "NO_CHANGES",
        "OPTIONS",
        "OPTION_LETTERS",
        "Task",
        "vocabulary",
    }


def test_ptychowire_exports() -> None:
    assert set(ptychowire.__all__) == {
        "ADAPTER_PATTERN",
        "ARTIFACT_LABELS",
        "BASE64_PATTERN",
        "K",
        "K_MAX",
        "NO_ARTIFACTS",
        "NO_CHANGES",
        "OPTION_LETTERS",
        "PROBLEM_MEDIA_TYPE",
        "PROBLEM_TYPE_BASE",
        "SEED_MAX",
        "ArtifactLabel",
        "ArtifactList",
        "Base64",
        "CleanText",
        "OptionLetter",
        "OptionList",
        "ProblemDetail",
        "RequestModel",
        "Seed",
        "Strategy",
        "Task",
        "k_limit_message",
        "refuse_nul",
    }


def test_ptychobench_data_exports() -> None:
    assert set(ptychobench.data.__all__) == {
        "LABELSTUDIO_SPLIT",
        "DataFormatError",
        "Dataset",
        "DatasetLocation",
        "Sample",
        "locate_dataset",
        "open_dataset",
        "open_datasets",
        "paper_split",
        "read_labelstudio",
        "read_labelstudio_dataset",
        "read_release",
        "release_metadata",
        "split_samples",
        "write_labelstudio",
        "write_release",
    }


def test_services_common_exports() -> None:
    assert set(services.common.__all__) == {
        "BackendClient",
        "BackendError",
        "BackendRejected",
        "BackendSettings",
        "BackendUnavailable",
        "BadRequest",
        "CircuitBreaker",
        "Completion",
        "Forbidden",
        "InvalidInput",
        "NotFound",
        "PayloadTooLarge",
        "RequestContext",
        "ServiceError",
        "ServiceMetrics",
        "ServiceSettings",
        "Unauthorized",
        "UnparseableAnswer",
        "UnsupportedMediaType",
        "Upstream",
        "UpstreamSettings",
        "api_key_guard",
        "configure_logging",
        "install_error_handlers",
        "operations_router",
        "request_id_var",
        "retryable",
    }


def test_gateway_exports() -> None:
    assert set(gateway.__all__) == {
        "ApiKey",
        "BenchConfig",
        "GatewayMetrics",
        "GatewayService",
        "GatewaySettings",
        "KeyStore",
        "PredictionStore",
        "RunStore",
        "create_app",
        "load_config",
        "run_benchmark",
    }


def test_every_exported_name_exists() -> None:
    for module in (ptychobench, ptychobench.data, ptychobench.sim, services.common, gateway):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
