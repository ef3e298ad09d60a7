"""Calls to another server that survive a bad minute: the circuit breaker every service
client shares, under the project's one retry policy (:mod:`services.common.retry`).

:class:`Upstream` wraps one pooled ``httpx.AsyncClient`` with timeouts, the retry policy
(:func:`retryable` decides, exponential back-off with a cap) and circuit breakers that
fail fast while the server is down and let one trial request through after
``circuit_reset_s``. Only signs that the server is down count against a circuit
(:func:`counts_against_circuit` decides): an answer about the request itself (4xx, or a
500 for one input) never does, so one caller's bad input switches nothing off for the
others. A server that fronts several backends (the diagnosis service: the classifier
and the VLM) gets one circuit per backend, named in :meth:`Upstream.request`. httpx
errors are translated into ``services.common.errors`` here and nowhere else. The model
backend (:mod:`services.common.backend`) and the retriever client
(:mod:`services.common.examples`) are built on it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal, Protocol

import httpx

from services.common.errors import BackendError, BackendRejected, BackendUnavailable
from services.common.retry import backoff, counts_against_circuit, retryable
from services.common.settings import UpstreamSettings

log = logging.getLogger(__name__)

CircuitState = Literal["closed", "open", "half_open"]
DEFAULT_CIRCUIT = "default"


class BackendObserver(Protocol):
    """What the client reports (implemented by ``services.common.metrics``)."""

    def backend_call(self, model: str, seconds: float, outcome: str) -> None: ...

    def backend_retry(self, model: str) -> None: ...

    def circuit_state(self, state: CircuitState, circuit: str = DEFAULT_CIRCUIT) -> None: ...


class CircuitBreaker:
    """Closed → open after ``failures`` consecutive failures; open → half-open after
    ``reset_s``, when one trial request goes through; its success closes the circuit,
    its failure opens it again."""

    def __init__(
        self,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self.clock = clock
        self.on_change = on_change
        self.state: CircuitState = "closed"
        self.consecutive = 0
        self.opened_at = 0.0
        self.trial_in_flight = False

    def _set(self, state: CircuitState) -> None:
        if state != self.state:
            log.warning("backend circuit %s -> %s", self.state, state)
            self.state = state
            if self.on_change is not None:
                self.on_change(state)

    def allow(self) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open" and self.clock() - self.opened_at >= self.reset_s:
            self._set("half_open")
        if self.state == "half_open" and not self.trial_in_flight:
            self.trial_in_flight = True
            return True
        return False

    def retry_in(self) -> float:
        return max(0.0, self.reset_s - (self.clock() - self.opened_at))

    def success(self) -> None:
        self.consecutive = 0
        self.trial_in_flight = False
        self._set("closed")

    def failure(self) -> None:
        self.consecutive += 1
        self.trial_in_flight = False
        if self.state == "half_open" or self.consecutive >= self.failures:
            self.opened_at = self.clock()
            self._set("open")


def error_message(text: str) -> str:
    """The message of an error body: vLLM's (``{"error": {"message"}}`` or
    ``{"message"}``), our services' problem+json (``detail``), else the text itself."""
    try:
        body = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])
        if "message" in body:
            return str(body["message"])
        if "detail" in body:  # problem+json, from our own services
            return str(body["detail"])
    return text[:500]


def _message(response: httpx.Response) -> str:
    return error_message(response.text)


class Upstream:
    """One server, called with retries behind a circuit breaker.

    ``name`` says what the server is in error messages ("the model backend", "the
    retriever"); the observer sees every call labelled by ``label``. ``circuits`` names
    the backends behind the server that fail alone (each gets its own breaker, besides
    the ``default`` one, all made here so metrics show them closed before any call).
    """

    def __init__(
        self,
        settings: UpstreamSettings,
        name: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        observer: BackendObserver | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        circuits: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.name = name
        self.observer = observer
        self.sleep = sleep
        headers = {}
        if settings.api_key is not None:
            headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self.http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/"),
            headers=headers,
            transport=transport,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(max_connections=settings.max_connections),
        )
        self.circuits = {
            name: self._breaker(name) for name in dict.fromkeys((DEFAULT_CIRCUIT, *circuits))
        }
        self.circuit = self.circuits[DEFAULT_CIRCUIT]
        self._last_error = "none recorded"

    def _breaker(self, name: str) -> CircuitBreaker:
        observer = self.observer
        if observer is None:
            return CircuitBreaker(self.settings.circuit_failures, self.settings.circuit_reset_s)
        observer.circuit_state("closed", name)
        return CircuitBreaker(
            self.settings.circuit_failures,
            self.settings.circuit_reset_s,
            on_change=lambda state: observer.circuit_state(state, name),
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def healthy(self, path: str) -> bool:
        """Whether ``GET path`` answers 200 now (no retries, no circuit)."""
        try:
            response = await self.http.get(path, timeout=self.settings.connect_timeout_s)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        label: str = "-",
        files: dict[str, tuple[str, bytes, str]] | None = None,
        data: dict[str, str] | None = None,
        circuit: str = DEFAULT_CIRCUIT,
    ) -> tuple[httpx.Response, int]:
        """The response (status < 400) and the attempts it took.

        Raises :class:`BackendRejected` when the server refuses the request (not
        retried), :class:`BackendUnavailable` when it is down after the retries or the
        circuit is open, and :class:`BackendError` when it kept answering with an error
        that does not say it is down (a 500). ``body`` goes as JSON; ``files`` and
        ``data`` as a multipart upload instead. ``circuit`` is the backend the request is
        for (one of those named at construction).
        """
        headers = {"X-Request-ID": request_id} if request_id else {}
        breaker = self.circuits[circuit]
        where = self.name if circuit == DEFAULT_CIRCUIT else f"{self.name} ({circuit})"
        last = self._last_error
        down = True
        for attempt in range(1, self.settings.max_retries + 2):
            if not breaker.allow():
                raise BackendUnavailable(
                    f"{where} at {self.settings.base_url} is failing; the circuit "
                    f"is open, next try in {breaker.retry_in():.0f} s (last error: {last})"
                )
            started = time.perf_counter()
            try:
                response = await self.http.request(
                    method, path, json=body, files=files, data=data, headers=headers
                )
            except httpx.HTTPError as error:
                self._observe(label, started, "error")
                down = counts_against_circuit(error)
                if down:
                    breaker.failure()
                last = self._last_error = f"{type(error).__name__}: {error}".rstrip(": ")
                if not retryable(error):
                    break
            else:
                status = response.status_code
                if status < 400:
                    self._observe(label, started, "ok")
                    breaker.success()
                    return response, attempt
                last = self._last_error = f"HTTP {status}: {_message(response)}"
                down = counts_against_circuit(status=status)
                if down:
                    breaker.failure()
                else:
                    breaker.success()  # it answered about this request: the server is up
                if not retryable(status=status):
                    self._observe(label, started, "rejected")
                    raise self._rejected(response)
                self._observe(label, started, "error")
            if attempt <= self.settings.max_retries:
                if self.observer is not None:
                    self.observer.backend_retry(label)
                await self.sleep(
                    backoff(attempt, self.settings.backoff_s, self.settings.backoff_max_s)
                )
        attempts = self.settings.max_retries + 1
        if not down:
            raise BackendError(
                f"{where} at {self.settings.base_url} failed {attempts} attempts: {last}"
            )
        raise BackendUnavailable(
            f"{where} at {self.settings.base_url} did not answer after {attempts} attempts: {last}"
        )

    def _rejected(self, response: httpx.Response) -> BackendRejected:
        status = response.status_code
        # what the caller got wrong stays the caller's error; anything else is ours
        mapped = 422 if status in (400, 422) else status if status in (404, 413, 415) else 502
        return BackendRejected(
            f"{self.name} refused the request: {_message(response)}", status=mapped
        )

    def _observe(self, label: str, started: float, outcome: str) -> None:
        if self.observer is not None:
            self.observer.backend_call(label, time.perf_counter() - started, outcome)
