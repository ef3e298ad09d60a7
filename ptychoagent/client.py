"""A typed client of the gateway, for Bluesky plans and scripts: :class:`Client` (sync)
and :class:`AsyncClient` (asyncio), with the same methods.

::

    from ptychoagent.client import Client

    with Client("http://gateway:8100", api_key="pk_…") as gateway:
        result = gateway.analyze(
            "recon_0042.png", sample_type="Integrated circuit", instrument="Velociprobe",
            parameters={"Number of iterations": "100"},
        )
        print(result.diagnosis.labels, result.recommendation.letters)
        gateway.feedback(result.diagnosis.prediction_id, ["Halo artifacts"])

Every prediction request carries an ``Idempotency-Key`` (yours, or one made per call),
so the client's retries after a timeout or a 503 never make a second prediction. Errors
are :class:`GatewayError`, carrying the gateway's problem+json (status, title, detail).
The base URL and key default to ``PTYCHO_GATEWAY_URL`` and ``PTYCHO_API_KEY``.

Light on purpose: httpx and pydantic, no FastAPI.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from ptychowire.base import Strategy
from ptychowire.gateway import (
    Analysis,
    DiagnosisAnswer,
    FeedbackResponse,
    LiveF1Response,
    PredictionRecord,
    RecommendationAnswer,
)
from ptychowire.refine import RefineJobResponse

__all__ = [
    "Analysis",
    "AsyncClient",
    "Client",
    "DiagnosisAnswer",
    "FeedbackResponse",
    "GatewayError",
    "LiveF1Response",
    "PredictionRecord",
    "RecommendationAnswer",
    "RefineJobResponse",
]
FINISHED = frozenset({"done", "failed", "cancelled", "interrupted"})
"""States of a refinement job that will not change any more."""

DEFAULT_URL = "http://127.0.0.1:8100"
RETRY_STATUSES = frozenset({502, 503, 504})
Image = str | os.PathLike[str] | bytes
T = TypeVar("T")


class GatewayError(Exception):
    """The gateway refused or failed a request; ``detail`` says why."""

    def __init__(self, status: int, title: str, detail: str, body: Any = None) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One request, built once and sent by either client."""

    method: str
    path: str
    result: TypeAdapter[T]
    json: Any = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    data: dict[str, str] | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bool = False
    """The answer is bytes (an image), not JSON."""

    def kwargs(self) -> dict[str, Any]:
        return {
            "json": self.json,
            "files": self.files,
            "data": self.data,
            "params": self.params,
            "headers": self.headers,
        }

    def read(self, response: httpx.Response) -> T:
        if response.status_code >= 400:
            raise _error(response)
        if self.raw:
            return self.result.validate_python(response.content)
        return self.result.validate_python(response.json())


def _error(response: httpx.Response) -> GatewayError:
    try:
        body = response.json()
    except ValueError:
        return GatewayError(response.status_code, response.reason_phrase, response.text[:500])
    if isinstance(body, dict):
        return GatewayError(
            response.status_code,
            str(body.get("title", response.reason_phrase)),
            str(body.get("detail", body)),
            body,
        )
    return GatewayError(response.status_code, response.reason_phrase, str(body), body)


def _image(image: Image) -> tuple[str, bytes]:
    if isinstance(image, bytes):
        return "image", image
    path = Path(image)
    try:
        return path.name, path.read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read the image {path}: {error}") from error


def _model(result: type[BaseModel] | Any) -> TypeAdapter[Any]:
    return TypeAdapter(result)


def _keyed(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key or uuid.uuid4().hex}


def _upload(
    path: str, options: Mapping[str, Any], image: Image, key: str | None, result: Any
) -> _Call[Any]:
    name, data = _image(image)
    return _Call(
        "POST",
        path,
        _model(result),
        files={"image": (name, data, "application/octet-stream")},
        data={"request": json.dumps(options)},
        headers=_keyed(key),
    )


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


class _Calls:
    """The requests, built the same way for both clients."""

    @staticmethod
    def diagnose(
        image: Image,
        sample_type: str,
        instrument: str,
        description: str,
        k: int,
        strategy: Strategy,
        backend: str | None,
        adapter: str | None,
        seed: int,
        sample_id: str | None,
        idempotency_key: str | None,
    ) -> _Call[DiagnosisAnswer]:
        options = _drop_none(
            {
                "sample": _drop_none(
                    {
                        "sample_type": sample_type,
                        "instrument": instrument,
                        "description": description,
                        "id": sample_id,
                    }
                ),
                "k": k,
                "strategy": strategy,
                "backend": backend,
                "adapter": adapter,
                "seed": seed,
            }
        )
        return _upload("/v1/diagnose", options, image, idempotency_key, DiagnosisAnswer)

    @staticmethod
    def recommend(
        sample: Mapping[str, Any],
        k: int,
        strategy: Strategy,
        adapter: str | None,
        seed: int,
        sample_id: str | None,
        idempotency_key: str | None,
    ) -> _Call[RecommendationAnswer]:
        body = _drop_none(
            {
                "sample": dict(sample),
                "k": k,
                "strategy": strategy,
                "adapter": adapter,
                "seed": seed,
                "sample_id": sample_id,
            }
        )
        return _Call(
            "POST",
            "/v1/recommend",
            _model(RecommendationAnswer),
            json=body,
            headers=_keyed(idempotency_key),
        )

    @staticmethod
    def analyze(
        image: Image,
        sample_type: str,
        instrument: str,
        description: str,
        parameters: Mapping[str, Any] | None,
        diagnosis: Mapping[str, Any] | None,
        recommendation: Mapping[str, Any] | None,
        idempotency_key: str | None,
    ) -> _Call[Analysis]:
        options = {
            "sample": {
                "sample_type": sample_type,
                "instrument": instrument,
                "description": description,
                "parameters": {str(k): str(v) for k, v in (parameters or {}).items()},
            },
            "diagnosis": dict(diagnosis or {}),
            "recommendation": dict(recommendation or {}),
        }
        return _upload("/v1/analyze", options, image, idempotency_key, Analysis)

    @staticmethod
    def feedback(
        prediction_id: str,
        labels: list[str],
        expert: str | None,
        comment: str,
        add_to_pool: bool,
    ) -> _Call[FeedbackResponse]:
        body = _drop_none(
            {"labels": labels, "expert": expert, "comment": comment, "add_to_pool": add_to_pool}
        )
        return _Call("POST", f"/v1/feedback/{prediction_id}", _model(FeedbackResponse), json=body)

    @staticmethod
    def prediction(prediction_id: str) -> _Call[PredictionRecord]:
        return _Call("GET", f"/v1/predictions/{prediction_id}", _model(PredictionRecord))

    @staticmethod
    def predictions(limit: int, filters: Mapping[str, Any]) -> _Call[list[PredictionRecord]]:
        params = _drop_none({"limit": limit, **filters})
        return _Call("GET", "/v1/predictions", _model(list[PredictionRecord]), params=params)

    @staticmethod
    def live_f1(window: str) -> _Call[LiveF1Response]:
        return _Call("GET", "/v1/live-f1", _model(LiveF1Response), params={"window": window})

    @staticmethod
    def refine(
        experiment: str | os.PathLike[str] | bytes, request: Mapping[str, Any]
    ) -> _Call[RefineJobResponse]:
        if isinstance(experiment, bytes):
            name, data = "experiment.h5", experiment
        else:
            path = Path(experiment)
            try:
                name, data = path.name, path.read_bytes()
            except OSError as error:
                raise ValueError(f"cannot read the experiment {path}: {error}") from error
        return _Call(
            "POST",
            "/v1/refine",
            _model(RefineJobResponse),
            files={"experiment": (name, data, "application/x-hdf5")},
            data={"request": json.dumps(dict(request))},
        )

    @staticmethod
    def refine_job(job_id: str) -> _Call[RefineJobResponse]:
        return _Call("GET", f"/v1/refine/{job_id}", _model(RefineJobResponse))

    @staticmethod
    def cancel_refine(job_id: str) -> _Call[RefineJobResponse]:
        return _Call("DELETE", f"/v1/refine/{job_id}", _model(RefineJobResponse))

    @staticmethod
    def refine_image(job_id: str, number: int, which: str) -> _Call[bytes]:
        path = f"/v1/refine/{job_id}/rounds/{number}/{which}.png"
        return _Call("GET", path, _model(bytes), raw=True)


def _refine_request(
    sample_type: str, instrument: str, max_rounds: int, options: Mapping[str, Any]
) -> dict[str, Any]:
    return {"sample_type": sample_type, "instrument": instrument, "max_rounds": max_rounds} | {
        k: v for k, v in options.items() if v is not None
    }


class _Base:
    def __init__(
        self, base_url: str | None, api_key: str | None, retries: int, backoff_s: float
    ) -> None:
        self.base_url = (base_url or os.environ.get("PTYCHO_GATEWAY_URL") or DEFAULT_URL).rstrip(
            "/"
        )
        key = api_key or os.environ.get("PTYCHO_API_KEY")
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.retries = retries
        self.backoff_s = backoff_s

    def _retry(self, call: _Call[Any], attempt: int, outcome: httpx.Response | Exception) -> bool:
        """Whether to send ``call`` again: transport failures and 502/503/504, for reads
        and for keyed (idempotent) writes, within ``retries``."""
        if attempt > self.retries:
            return False
        safe = call.method == "GET" or "Idempotency-Key" in call.headers
        if isinstance(outcome, Exception):
            return safe and isinstance(outcome, httpx.TransportError)
        return safe and outcome.status_code in RETRY_STATUSES

    def _delay(self, attempt: int, outcome: httpx.Response | Exception) -> float:
        if isinstance(outcome, httpx.Response):
            after = outcome.headers.get("Retry-After", "")
            if after.isdigit():
                return min(float(after), 30.0)
        return float(min(self.backoff_s * 2 ** (attempt - 1), 10.0))


class Client(_Base):
    """The gateway, synchronously (``with Client(...) as gateway:``)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 300.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, retries, backoff_s)
        self.http = httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def _send(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            outcome: httpx.Response | Exception
            try:
                outcome = self.http.request(call.method, call.path, **call.kwargs())
            except httpx.HTTPError as error:
                outcome = error
            if not self._retry(call, attempt, outcome):
                if isinstance(outcome, Exception):
                    raise GatewayError(0, "No answer", f"{self.base_url}: {outcome}") from outcome
                return call.read(outcome)
            time.sleep(self._delay(attempt, outcome))

    def ready(self) -> bool:
        """Whether the gateway and everything behind it answers."""
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def diagnose(
        self,
        image: Image,
        *,
        sample_type: str = "unknown",
        instrument: str = "",
        description: str = "",
        k: int = 0,
        strategy: Strategy = Strategy.SSFS,
        backend: str | None = None,
        adapter: str | None = None,
        seed: int = 0,
        sample_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> DiagnosisAnswer:
        """Which artifacts the reconstruction ``image`` (a path or bytes) shows."""
        return self._send(
            _Calls.diagnose(
                image,
                sample_type,
                instrument,
                description,
                k,
                strategy,
                backend,
                adapter,
                seed,
                sample_id,
                idempotency_key,
            )
        )

    def recommend(
        self,
        sample: Mapping[str, Any],
        *,
        k: int = 0,
        strategy: Strategy = Strategy.SSFS,
        adapter: str | None = None,
        seed: int = 0,
        sample_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> RecommendationAnswer:
        """Which parameters to change, for ``sample`` (instrument, sample_type,
        description, artifacts, parameters: the paper's SAMPLE INFORMATION)."""
        return self._send(
            _Calls.recommend(sample, k, strategy, adapter, seed, sample_id, idempotency_key)
        )

    def analyze(
        self,
        image: Image,
        *,
        sample_type: str,
        instrument: str,
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
        diagnosis: Mapping[str, Any] | None = None,
        recommendation: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Analysis:
        """Diagnose ``image``, then recommend from what was found. ``diagnosis`` and
        ``recommendation`` take each step's options (k, strategy, adapter, seed)."""
        return self._send(
            _Calls.analyze(
                image,
                sample_type,
                instrument,
                description,
                parameters,
                diagnosis,
                recommendation,
                idempotency_key,
            )
        )

    def feedback(
        self,
        prediction_id: str,
        labels: list[str],
        *,
        expert: str | None = None,
        comment: str = "",
        add_to_pool: bool = False,
    ) -> FeedbackResponse:
        """An expert's true labels for a prediction (the latest review counts)."""
        return self._send(_Calls.feedback(prediction_id, labels, expert, comment, add_to_pool))

    def prediction(self, prediction_id: str) -> PredictionRecord:
        return self._send(_Calls.prediction(prediction_id))

    def predictions(self, limit: int = 50, **filters: Any) -> list[PredictionRecord]:
        """The latest predictions; filters: sample_type, instrument, adapter, unreviewed."""
        return self._send(_Calls.predictions(limit, filters))

    def live_f1(self, window: Literal["1h", "24h", "7d", "all"] = "all") -> LiveF1Response:
        return self._send(_Calls.live_f1(window))

    def refine(
        self,
        experiment: str | os.PathLike[str] | bytes,
        *,
        sample_type: str,
        instrument: str,
        max_rounds: int = 3,
        **options: Any,
    ) -> RefineJobResponse:
        """Start the closed loop on an experiment file (``POST /v1/refine``); ``options``
        are RefineRequest's other fields (description, diagnosis, recommendation, rule)."""
        request = _refine_request(sample_type, instrument, max_rounds, options)
        return self._send(_Calls.refine(experiment, request))

    def refine_job(self, job_id: str) -> RefineJobResponse:
        return self._send(_Calls.refine_job(job_id))

    def cancel_refine(self, job_id: str) -> RefineJobResponse:
        return self._send(_Calls.cancel_refine(job_id))

    def refine_image(self, job_id: str, number: int, which: Literal["before", "after"]) -> bytes:
        return self._send(_Calls.refine_image(job_id, number, which))

    def wait_refine(
        self,
        job_id: str,
        *,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        on_progress: Any = None,
    ) -> RefineJobResponse:
        """Poll a refinement job until it finishes; ``on_progress(job)`` after each poll."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = self.refine_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.state in FINISHED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"refinement job {job_id} still {job.state}")
            time.sleep(poll_s)


class AsyncClient(_Base):
    """The gateway, for asyncio code (``async with AsyncClient(...) as gateway:``)."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout_s: float = 300.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, retries, backoff_s)
        self.http = httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=timeout_s, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, call: _Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            outcome: httpx.Response | Exception
            try:
                outcome = await self.http.request(call.method, call.path, **call.kwargs())
            except httpx.HTTPError as error:
                outcome = error
            if not self._retry(call, attempt, outcome):
                if isinstance(outcome, Exception):
                    raise GatewayError(0, "No answer", f"{self.base_url}: {outcome}") from outcome
                return call.read(outcome)
            await asyncio.sleep(self._delay(attempt, outcome))

    async def ready(self) -> bool:
        try:
            return (await self.http.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    async def diagnose(
        self,
        image: Image,
        *,
        sample_type: str = "unknown",
        instrument: str = "",
        description: str = "",
        k: int = 0,
        strategy: Strategy = Strategy.SSFS,
        backend: str | None = None,
        adapter: str | None = None,
        seed: int = 0,
        sample_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> DiagnosisAnswer:
        return await self._send(
            _Calls.diagnose(
                image,
                sample_type,
                instrument,
                description,
                k,
                strategy,
                backend,
                adapter,
                seed,
                sample_id,
                idempotency_key,
            )
        )

    async def recommend(
        self,
        sample: Mapping[str, Any],
        *,
        k: int = 0,
        strategy: Strategy = Strategy.SSFS,
        adapter: str | None = None,
        seed: int = 0,
        sample_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> RecommendationAnswer:
        return await self._send(
            _Calls.recommend(sample, k, strategy, adapter, seed, sample_id, idempotency_key)
        )

    async def analyze(
        self,
        image: Image,
        *,
        sample_type: str,
        instrument: str,
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
        diagnosis: Mapping[str, Any] | None = None,
        recommendation: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Analysis:
        return await self._send(
            _Calls.analyze(
                image,
                sample_type,
                instrument,
                description,
                parameters,
                diagnosis,
                recommendation,
                idempotency_key,
            )
        )

    async def feedback(
        self,
        prediction_id: str,
        labels: list[str],
        *,
        expert: str | None = None,
        comment: str = "",
        add_to_pool: bool = False,
    ) -> FeedbackResponse:
        return await self._send(
            _Calls.feedback(prediction_id, labels, expert, comment, add_to_pool)
        )

    async def prediction(self, prediction_id: str) -> PredictionRecord:
        return await self._send(_Calls.prediction(prediction_id))

    async def predictions(self, limit: int = 50, **filters: Any) -> list[PredictionRecord]:
        return await self._send(_Calls.predictions(limit, filters))

    async def live_f1(self, window: Literal["1h", "24h", "7d", "all"] = "all") -> LiveF1Response:
        return await self._send(_Calls.live_f1(window))

    async def refine(
        self,
        experiment: str | os.PathLike[str] | bytes,
        *,
        sample_type: str,
        instrument: str,
        max_rounds: int = 3,
        **options: Any,
    ) -> RefineJobResponse:
        """As :meth:`Client.refine`."""
        request = _refine_request(sample_type, instrument, max_rounds, options)
        return await self._send(_Calls.refine(experiment, request))

    async def refine_job(self, job_id: str) -> RefineJobResponse:
        return await self._send(_Calls.refine_job(job_id))

    async def cancel_refine(self, job_id: str) -> RefineJobResponse:
        return await self._send(_Calls.cancel_refine(job_id))

    async def refine_image(
        self, job_id: str, number: int, which: Literal["before", "after"]
    ) -> bytes:
        return await self._send(_Calls.refine_image(job_id, number, which))

    async def wait_refine(
        self,
        job_id: str,
        *,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        on_progress: Any = None,
    ) -> RefineJobResponse:
        """As :meth:`Client.wait_refine`."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while True:
            job = await self.refine_job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job.state in FINISHED:
                return job
            if deadline is not None and loop.time() > deadline:
                raise TimeoutError(f"refinement job {job_id} still {job.state}")
            await asyncio.sleep(poll_s)
