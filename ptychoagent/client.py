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

Light on purpose: httpx and pydantic, no FastAPI. Each request is built once (the
``_Requests`` functions: method, path, body, the model the answer is read into) and
sent by a thin transport, sync or async; the methods of both clients are made from the
same function, so they cannot drift apart. Retries follow the project's one policy
(:mod:`ptychowire.retry`).

Kept in one module at ~570 lines: it is the one file a beamline's script imports, and
every gateway endpoint has one method here with its docstring (the API's reference).
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Self, TypeVar

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
from ptychowire.retry import DOWN_STATUS, backoff, retry_after

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
Image = str | os.PathLike[str] | bytes
T = TypeVar("T")
P = ParamSpec("P")


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


class _Requests:
    """Every request of the API, built the same way for both clients: each function has
    the signature (and the docstring) of the client method made from it."""

    @staticmethod
    def diagnose(
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
    ) -> _Call[DiagnosisAnswer]:
        """Which artifacts the reconstruction ``image`` (a path or bytes) shows."""
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
        *,
        k: int = 0,
        strategy: Strategy = Strategy.SSFS,
        adapter: str | None = None,
        seed: int = 0,
        sample_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> _Call[RecommendationAnswer]:
        """Which parameters to change, for ``sample`` (instrument, sample_type,
        description, artifacts, parameters: the paper's SAMPLE INFORMATION)."""
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
        *,
        sample_type: str,
        instrument: str,
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
        diagnosis: Mapping[str, Any] | None = None,
        recommendation: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> _Call[Analysis]:
        """Diagnose ``image``, then recommend from what was found. ``diagnosis`` and
        ``recommendation`` take each step's options (k, strategy, adapter, seed)."""
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
        *,
        expert: str | None = None,
        comment: str = "",
        add_to_pool: bool = False,
    ) -> _Call[FeedbackResponse]:
        """An expert's true labels for a prediction (the latest review counts)."""
        body = _drop_none(
            {"labels": labels, "expert": expert, "comment": comment, "add_to_pool": add_to_pool}
        )
        return _Call("POST", f"/v1/feedback/{prediction_id}", _model(FeedbackResponse), json=body)

    @staticmethod
    def prediction(prediction_id: str) -> _Call[PredictionRecord]:
        return _Call("GET", f"/v1/predictions/{prediction_id}", _model(PredictionRecord))

    @staticmethod
    def predictions(limit: int = 50, **filters: Any) -> _Call[list[PredictionRecord]]:
        """The latest predictions; filters: sample_type, instrument, adapter, unreviewed."""
        params = _drop_none({"limit": limit, **filters})
        return _Call("GET", "/v1/predictions", _model(list[PredictionRecord]), params=params)

    @staticmethod
    def live_f1(window: Literal["1h", "24h", "7d", "all"] = "all") -> _Call[LiveF1Response]:
        return _Call("GET", "/v1/live-f1", _model(LiveF1Response), params={"window": window})

    @staticmethod
    def refine(
        experiment: str | os.PathLike[str] | bytes,
        *,
        sample_type: str,
        instrument: str,
        max_rounds: int = 3,
        **options: Any,
    ) -> _Call[RefineJobResponse]:
        """Start the closed loop on an experiment file (``POST /v1/refine``); ``options``
        are RefineRequest's other fields (description, diagnosis, recommendation, rule)."""
        request = {
            "sample_type": sample_type,
            "instrument": instrument,
            "max_rounds": max_rounds,
        } | {k: v for k, v in options.items() if v is not None}
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
            data={"request": json.dumps(request)},
        )

    @staticmethod
    def refine_job(job_id: str) -> _Call[RefineJobResponse]:
        return _Call("GET", f"/v1/refine/{job_id}", _model(RefineJobResponse))

    @staticmethod
    def cancel_refine(job_id: str) -> _Call[RefineJobResponse]:
        return _Call("DELETE", f"/v1/refine/{job_id}", _model(RefineJobResponse))

    @staticmethod
    def refine_image(job_id: str, number: int, which: Literal["before", "after"]) -> _Call[bytes]:
        path = f"/v1/refine/{job_id}/rounds/{number}/{which}.png"
        return _Call("GET", path, _model(bytes), raw=True)


def _sync(build: Callable[P, _Call[T]]) -> Callable[Concatenate[Client, P], T]:
    """A :class:`Client` method: build the request, send it."""

    @functools.wraps(build)
    def method(self: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._send(build(*args, **kwargs))

    return method


def _async(
    build: Callable[P, _Call[T]],
) -> Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]]:
    """An :class:`AsyncClient` method: build the request, send it."""

    @functools.wraps(build)
    async def method(self: AsyncClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self._send(build(*args, **kwargs))

    return method


def _finished(job: RefineJobResponse, deadline: float | None, on_progress: Any) -> bool:
    """After each poll of ``wait_refine``: tell ``on_progress``, then whether the job has
    finished; still running past ``deadline`` (``time.monotonic()``) is a ``TimeoutError``."""
    if on_progress is not None:
        on_progress(job)
    if job.state in FINISHED:
        return True
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError(f"refinement job {job.id} still {job.state}")
    return False


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
        """Whether to send ``call`` again: what says the gateway is down (no answer,
        502/503/504), for reads and for keyed (idempotent) writes, within ``retries``."""
        if attempt > self.retries:
            return False
        if call.method != "GET" and "Idempotency-Key" not in call.headers:
            return False
        if isinstance(outcome, Exception):
            return isinstance(outcome, httpx.TransportError)
        return outcome.status_code in DOWN_STATUS

    def _delay(self, attempt: int, outcome: httpx.Response | Exception) -> float:
        asked = retry_after(outcome.headers, 30.0) if isinstance(outcome, httpx.Response) else None
        return backoff(attempt, self.backoff_s, 10.0) if asked is None else asked

    def _outcome(self, call: _Call[T], outcome: httpx.Response | Exception) -> T:
        """The answer of the last attempt, or the error it was."""
        if isinstance(outcome, Exception):
            raise GatewayError(0, "No answer", f"{self.base_url}: {outcome}") from outcome
        return call.read(outcome)


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
                return self._outcome(call, outcome)
            time.sleep(self._delay(attempt, outcome))

    def ready(self) -> bool:
        """Whether the gateway and everything behind it answers."""
        try:
            return self.http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    diagnose = _sync(_Requests.diagnose)
    recommend = _sync(_Requests.recommend)
    analyze = _sync(_Requests.analyze)
    feedback = _sync(_Requests.feedback)
    prediction = _sync(_Requests.prediction)
    predictions = _sync(_Requests.predictions)
    live_f1 = _sync(_Requests.live_f1)
    refine = _sync(_Requests.refine)
    refine_job = _sync(_Requests.refine_job)
    cancel_refine = _sync(_Requests.cancel_refine)
    refine_image = _sync(_Requests.refine_image)

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
            if _finished(job, deadline, on_progress):
                return job
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
                return self._outcome(call, outcome)
            await asyncio.sleep(self._delay(attempt, outcome))

    async def ready(self) -> bool:
        try:
            return (await self.http.get("/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    diagnose = _async(_Requests.diagnose)
    recommend = _async(_Requests.recommend)
    analyze = _async(_Requests.analyze)
    feedback = _async(_Requests.feedback)
    prediction = _async(_Requests.prediction)
    predictions = _async(_Requests.predictions)
    live_f1 = _async(_Requests.live_f1)
    refine = _async(_Requests.refine)
    refine_job = _async(_Requests.refine_job)
    cancel_refine = _async(_Requests.cancel_refine)
    refine_image = _async(_Requests.refine_image)

    async def wait_refine(
        self,
        job_id: str,
        *,
        poll_s: float = 1.0,
        timeout_s: float | None = None,
        on_progress: Any = None,
    ) -> RefineJobResponse:
        """As :meth:`Client.wait_refine`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            job = await self.refine_job(job_id)
            if _finished(job, deadline, on_progress):
                return job
            await asyncio.sleep(poll_s)
