"""One reconstruction on the reconstructor service: submit the experiment with the
options, poll its progress, fetch the result (cancelled there when the job stops)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.common.errors import BackendError, ServiceError
from services.common.upstream import Upstream

log = logging.getLogger(__name__)
EXPERIMENT_FILE = "experiment.h5"


class CancelledError(Exception):
    """The job was asked to stop."""


@dataclass(frozen=True)
class Recon:
    """A finished reconstruction, as the reconstructor reported it."""

    job_id: str
    final_loss: float | None
    metrics: dict[str, float]
    image: bytes


async def reconstruct(
    reconstructor: Upstream,
    data: bytes,
    options: dict[str, Any],
    preprocess: list[str],
    name: str,
    poll_s: float,
    report: Callable[..., Awaitable[None]],
    check_cancel: Callable[[], Awaitable[None]],
) -> Recon:
    """Submit, poll (``report`` told the progress each time; ``check_cancel`` raises
    :class:`CancelledError` to stop), fetch the result."""
    body = {"options": options, "preprocess": preprocess, "name": name}
    response, _ = await reconstructor.request(
        "POST",
        "/v1/jobs",
        files={"experiment": (EXPERIMENT_FILE, data, "application/x-hdf5")},
        data={"request": json.dumps(body)},
        label="reconstructor",
    )
    recon_id = str(response.json()["id"])
    try:
        while True:
            got, _ = await reconstructor.request(
                "GET", f"/v1/jobs/{recon_id}", label="reconstructor"
            )
            state = got.json()
            progress = state.get("progress", {})
            await report(
                recon_job=recon_id,
                epochs_done=progress.get("epochs_done", 0),
                epochs_total=progress.get("epochs_total", 0),
            )
            if state["state"] in ("done", "failed", "cancelled", "interrupted"):
                break
            await check_cancel()
            await asyncio.sleep(poll_s)
    except (CancelledError, asyncio.CancelledError):
        try:
            await reconstructor.request("DELETE", f"/v1/jobs/{recon_id}", label="reconstructor")
        except ServiceError as error:
            log.warning("could not cancel reconstruction %s: %s", recon_id, error.detail)
        raise
    if state["state"] != "done":
        raise BackendError(
            f"the reconstruction {recon_id} ended {state['state']}: {state.get('error')}"
        )
    result, _ = await reconstructor.request(
        "GET", f"/v1/jobs/{recon_id}/result", label="reconstructor"
    )
    image, _ = await reconstructor.request(
        "GET", f"/v1/jobs/{recon_id}/result/image.png", label="reconstructor"
    )
    summary = result.json()
    return Recon(
        recon_id,
        summary.get("final_loss"),
        {k: float(v) for k, v in summary.get("metrics", {}).items()},
        image.content,
    )
