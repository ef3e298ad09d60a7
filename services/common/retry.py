"""The project's one retry policy (:mod:`ptychowire.retry`: the table of what is retried,
what says a server is down, what is the caller's fault, the back-off), with the transport
failures httpx raises: :class:`services.common.upstream.Upstream` repeats what
:func:`retryable` allows and counts what :func:`counts_against_circuit` says against its
circuit breaker."""

from __future__ import annotations

import httpx

from ptychowire.retry import (
    DOWN_STATUS,
    IN_FLIGHT_STATUS,
    RETRYABLE_STATUS,
    backoff,
    refused,
    retry_after,
)

__all__ = [
    "DOWN_STATUS",
    "IN_FLIGHT_STATUS",
    "RETRYABLE_STATUS",
    "backoff",
    "counts_against_circuit",
    "refused",
    "retry_after",
    "retryable",
]


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
