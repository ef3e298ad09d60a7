"""The project's one retry policy: which failed calls are repeated, how often, after how
long, and which say that the server is down.

::

    failure                      retried   against the circuit   the caller's own fault
    no connection, a timeout     yes       yes                   -
    502, 503, 504                yes       yes                   -
    408, 429, 500                yes       no                    -
    409                          no        no                    no (an earlier request with
                                                                  the same key is in flight)
    any other 4xx                no        no                    yes (no retry changes it)

Every caller uses these functions: :class:`services.common.upstream.Upstream` (the model
backend, the retriever, the gateway's calls to its services) repeats what
:func:`retryable` allows and counts what :func:`counts_against_circuit` says against its
circuit breaker; the gateway's typed client (``ptychoagent.client``) repeats, for reads
and keyed writes, only what says the server is down, honouring ``Retry-After``; the
benchmark runner stops a run on what :func:`refused` calls the caller's fault. The back-off
is exponential with a cap (:func:`backoff`).

Standard library and httpx only, so the light client can import it.
"""

from __future__ import annotations

import httpx

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
DOWN_STATUS = frozenset({502, 503, 504})
"""What a server (or the proxy in front of it) answers when it cannot serve anyone."""
IN_FLIGHT_STATUS = 409
"""The gateway's answer while a request with the same Idempotency-Key is being answered."""


def retryable(error: Exception | None = None, status: int | None = None) -> bool:
    """The one place that decides whether a failed call is worth repeating."""
    if status is not None:
        return status in RETRYABLE_STATUS
    return isinstance(error, httpx.TransportError)  # connect/read/write errors, timeouts


def counts_against_circuit(error: Exception | None = None, status: int | None = None) -> bool:
    """The one place that decides whether a failed call says the server is down: no
    connection, a timeout, or 502/503/504. Anything else is an answer about the request
    (a 4xx, or a 500 that one input provoked) and leaves the circuit closed."""
    if status is not None:
        return status in DOWN_STATUS
    return isinstance(error, httpx.TransportError)


def refused(status: int) -> bool:
    """Whether a status is the server refusing the request itself (4xx but timeouts,
    conflicts and rate limits): no retry and no other item would change it."""
    return 400 <= status < 500 and status not in RETRYABLE_STATUS | {IN_FLIGHT_STATUS}


def backoff(attempt: int, base_s: float, max_s: float) -> float:
    """How long to wait after failed attempt number ``attempt`` (1, 2, …)."""
    return float(min(base_s * 2 ** (attempt - 1), max_s))


def retry_after(response: httpx.Response, max_s: float) -> float | None:
    """The wait a server asked for in ``Retry-After`` (seconds, capped), if it did."""
    after = response.headers.get("Retry-After", "")
    return min(float(after), max_s) if after.isdigit() else None
