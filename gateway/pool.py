"""The example pool: a reviewed prediction, with its expert's labels, becomes a
training example of the retriever's pool (``POST /v1/examples``)."""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any

from ptychobench.labels import Task
from ptychobench.prompts import format_parameters
from services.common.errors import InvalidInput
from services.common.upstream import Upstream

if TYPE_CHECKING:
    from gateway.predictions import Prediction, PredictionTables


class ExamplePool:
    def __init__(self, store: PredictionTables, retriever: Upstream) -> None:
        self.store = store
        self.retriever = retriever

    async def add(self, prediction: Prediction, labels: list[str]) -> None:
        """The sample with its corrected labels, as a training example of the pool."""
        example: dict[str, Any] = {
            "task": prediction.task,
            "id": f"feedback-{prediction.id}",
            "sample_type": prediction.sample_type,
            "instrument": prediction.instrument,
            "split": "train",
            "source": "feedback",
            "origin": f"prediction:{prediction.id}",
        }
        request = prediction.request
        if prediction.task == Task.DETECTION.value:
            if prediction.image_sha256 is None:
                raise InvalidInput("the prediction kept no image to add to the pool")
            image = await asyncio.to_thread(self.store.image, prediction.image_sha256)
            example |= {
                "artifacts": labels,
                "description": request.get("sample", {}).get("description", ""),
                "image_base64": base64.b64encode(image).decode(),
            }
        else:
            sample = request.get("sample", {})
            example |= {
                "options": labels,
                "artifacts": sample.get("artifacts", []),
                "description": sample.get("description", ""),
                "beam": sample.get("beam", "X-ray"),
                "package": sample.get("package", "pty-chi"),
                "parameters": format_parameters(sample.get("parameters", {})),
            }
        await self.retriever.request("POST", "/v1/examples", example, label="retriever")
