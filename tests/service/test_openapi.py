"""Property-based fuzzing over the OpenAPI documents of the gateway and of each service,
in-process: schemathesis reads each app's ``/openapi.json`` and, for every operation,
hypothesis sends requests generated from it, valid and invalid.

An answer fails the test when it is a 5xx other than a deliberate 503 (a backend or the
database unavailable), an exception out of the app (a 500), or when it breaks the
document: a status, a media type, a body or a header the document does not give for that
operation, a request the schema forbids that is not refused with a 4xx, or a secured
route that answers without its key. Every operation is fuzzed and all failures are
reported together.

The apps are the real ones over SQLite: the diagnosis service with its committed
classifier, the retriever, the agent and the diagnosis VLM path with a scripted engine
(the only fake: no vLLM here). Each service requires an API key, the gateway a key with
every scope. ``--fuzz-examples`` sets the budget per operation and kind (valid, invalid),
``--fuzz-seed`` a random run instead of the repeatable one (``make fuzz`` sets both); the
counts are printed at the end of the run.

(schemathesis' own pytest integration, ``from_fixture(...).parametrize()``, does not run
on pytest 9.2: hence hypothesis over ``operation.as_strategy()``.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.errors import FailureGroup

from gateway.app import create_app as create_gateway
from gateway.keys import SCOPES, KeyStore
from gateway.settings import AgentUpstream, DiagnosisUpstream, GatewaySettings
from services.common.database import make_engine
from services.common.settings import UpstreamSettings
from services.diagnosis.app import create_app as create_diagnosis
from services.diagnosis.settings import DiagnosisBackendSettings, DiagnosisSettings
from services.ptycho_agent.app import create_app as create_agent
from services.ptycho_agent.settings import AgentBackendSettings, AgentSettings
from services.retriever.app import create_app as create_retriever
from services.retriever.settings import RetrieverSettings

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DATASET = str(ROOT / "data" / "ptychobench-sim")
CLASSIFIER = str(ROOT / "artifacts" / "classifiers" / "physics-v1")
SERVICE_KEY = "fuzz-service-key-0123456789"
FAST = {"max_retries": 1, "backoff_s": 0, "connect_timeout_s": 1}
DELIBERATE = 503
"""The one 5xx that is an answer, not a failure: unavailable, try again later."""


def _engine(answer: str) -> httpx.MockTransport:
    """A scripted OpenAI-compatible engine that always answers ``answer``."""

    def reply(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": answer}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 5},
            },
        )

    return httpx.MockTransport(reply)


def _services(tmp: Path) -> dict[str, FastAPI]:
    keyed = {"api_keys": [SERVICE_KEY]}
    return {
        "diagnosis": create_diagnosis(
            DiagnosisSettings(
                classifier=CLASSIFIER,
                examples_dataset=DATASET,
                backend=DiagnosisBackendSettings(base_url="http://engine", **FAST),
                **keyed,
            ),
            transport=_engine("<answer>Halo artifacts</answer>"),
        ),
        "agent": create_agent(
            AgentSettings(
                examples_dataset=DATASET,
                backend=AgentBackendSettings(base_url="http://engine", **FAST),
                **keyed,
            ),
            transport=_engine("<answer>G, K</answer>"),
        ),
        "retriever": create_retriever(
            RetrieverSettings(database_url=f"sqlite:///{tmp / 'pool.db'}", semantic=False, **keyed)
        ),
    }


def _gateway(tmp: Path, services: dict[str, FastAPI]) -> FastAPI:
    key = {"api_key": SERVICE_KEY, **FAST}
    return create_gateway(
        GatewaySettings(
            database_url=f"sqlite:///{tmp / 'gateway.db'}",
            diagnosis=DiagnosisUpstream(base_url="http://diagnosis", **key),
            agent=AgentUpstream(base_url="http://agent", **key),
            retriever=UpstreamSettings(base_url="http://retriever", **key),
            max_image_bytes=2_000_000,
            reports_dir=str(tmp / "reports"),
        ),
        transports={name: httpx.ASGITransport(app=app) for name, app in services.items()},
    )


class WithUpstreams:
    """The gateway as schemathesis runs it: its lifespan also runs the lifespans of the
    services it calls in-process (the retriever migrates its database at start-up)."""

    def __init__(self, app: FastAPI, upstreams: list[FastAPI]) -> None:
        self.app = app
        self.upstreams = upstreams

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async with AsyncExitStack() as stack:
            if scope["type"] == "lifespan":
                for upstream in self.upstreams:
                    await stack.enter_async_context(upstream.router.lifespan_context(upstream))
            await self.app(scope, receive, send)


@dataclass
class Fuzzed:
    name: str
    schema: Any
    """The app's document as schemathesis loaded it (the app attached)."""
    headers: dict[str, str]
    """What authenticates a request."""


CONFIG = {
    "generation": {"database": "none"},
    "checks": {
        # replaced by the check below, which lets a deliberate 503 through
        "not_a_server_error": {"enabled": False},
        # a valid schema does not make a valid request: a 1 x 1 PNG is refused
        "positive_data_acceptance": {"enabled": False},
    },
}
APPS = ("gateway", "diagnosis", "agent", "retriever")


@pytest.fixture(params=APPS)
def fuzzed(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Fuzzed:
    """One app, built for this test (schemathesis ends its lifespan with the test). The
    test runs in an empty folder: a benchmark's default dataset (a relative path) is
    not there."""
    monkeypatch.chdir(tmp_path)
    name = request.param
    config = SchemathesisConfig.from_dict(CONFIG)
    services = _services(tmp_path)
    if name != "gateway":
        schema = schemathesis.openapi.from_asgi("/openapi.json", services[name], config=config)
        return Fuzzed(name, schema, {"Authorization": f"Bearer {SERVICE_KEY}"})
    app = WithUpstreams(_gateway(tmp_path, services), list(services.values()))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    store = KeyStore(make_engine(f"sqlite:///{tmp_path / 'gateway.db'}"))
    token = store.create("fuzz", list(SCOPES))[1]
    return Fuzzed(name, schema, {"Authorization": f"Bearer {token}"})


def _checker(app: str, counts: Counter[tuple[str, int]]) -> Callable[..., None]:
    """The check that replaces schemathesis' ``not_a_server_error``; it counts too."""

    def only_deliberate_server_errors(ctx: Any, response: Any, case: Any) -> None:
        counts[app, response.status_code] += 1
        if response.status_code >= 500 and response.status_code != DELIBERATE:
            raise AssertionError(
                f"{case.operation.label} answered {response.status_code}: {response.text[:500]}"
            )

    return only_deliberate_server_errors


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    seed: int | None,
    check: Any,
    headers: dict[str, str],
) -> None:
    """``examples`` generated cases of ``operation``, each sent and validated."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: Any) -> None:
        case.call_and_validate(headers=dict(headers), additional_checks=[check])

    if seed is not None:
        send = hypothesis.seed(seed)(send)
    send()


def test_every_answer_is_documented_and_no_5xx_but_503(
    fuzzed: Fuzzed, fuzz_counts: Counter[tuple[str, int]], pytestconfig: pytest.Config
) -> None:
    examples = pytestconfig.getoption("fuzz_examples")
    seed = pytestconfig.getoption("fuzz_seed")
    check = _checker(fuzzed.name, fuzz_counts)
    failures = []
    for result in fuzzed.schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, examples, seed, check, fuzzed.headers)
            except Unsatisfiable:  # nothing to make invalid: no parameter, no body
                assert mode is GenerationMode.NEGATIVE
            except (Exception, FailureGroup) as error:  # every operation; all failures reported
                failures.append(
                    f"{operation.label} ({mode.value}): {type(error).__name__}: {error}"
                )
    assert sum(n for (app, _), n in fuzz_counts.items() if app == fuzzed.name) > 0
    assert not failures, "\n\n".join(failures)
