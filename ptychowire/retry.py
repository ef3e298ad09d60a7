"""The project's one retry policy, as the wire states it: which answers are worth a
retry, which say the server is down, which are the caller's own fault, and how long to
wait. Statuses and numbers only (the standard library), so that every process applies
the same policy: the services' upstream calls (``services.common.retry`` adds the
transport errors httpx raises), the gateway's typed client and the benchmark runner.

::

    answer                       retried   says the server is down   the caller's fault
    no connection, a timeout     yes       yes                       -
    502, 503, 504                yes       yes                       -
    408, 429, 500                yes       no                        -
    409                          no        no                        no (an earlier request
                                                                      with the same key is
                                                                      in flight)
    any other 4xx                no        no                        yes (no retry changes it)
"""

from __future__ import annotations

from collections.abc import Mapping

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
DOWN_STATUS = frozenset({502, 503, 504})
"""What a server (or the proxy in front of it) answers when it cannot serve anyone."""
IN_FLIGHT_STATUS = 409
"""The gateway's answer while a request with the same Idempotency-Key is being answered."""


def refused(status: int) -> bool:
    """Whether a status is the server refusing the request itself (4xx but timeouts,
    conflicts and rate limits): no retry and no other item would change it."""
    return 400 <= status < 500 and status not in RETRYABLE_STATUS | {IN_FLIGHT_STATUS}


def backoff(attempt: int, base_s: float, max_s: float) -> float:
    """How long to wait after failed attempt number ``attempt`` (1, 2, …)."""
    return float(min(base_s * 2 ** (attempt - 1), max_s))


def retry_after(headers: Mapping[str, str], max_s: float) -> float | None:
    """The wait a server asked for in ``Retry-After`` (seconds, capped), if it did."""
    after = headers.get("Retry-After", "")
    return min(float(after), max_s) if after.isdigit() else None
