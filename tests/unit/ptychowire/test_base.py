"""The wire's shared field types: one bound on k, one Strategy, the vocabularies."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

import ptychobench.labels
import ptychobench.selection
from ptychowire import K_MAX, K, Strategy
from ptychowire.agent import RecommendRequest
from ptychowire.diagnosis import DiagnoseOptions
from ptychowire.gateway import DiagnoseStep, RecommendStep
from ptychowire.retriever import SelectRequest

SAMPLE = {"instrument": "Velociprobe", "sample_type": "Zeolite crystal"}
REQUESTS = {
    DiagnoseOptions: {},
    RecommendRequest: {"sample": SAMPLE},
    SelectRequest: {"task": "detection", "query": {"sample_type": "x"}},
    DiagnoseStep: {},
    RecommendStep: {},
}


@pytest.mark.parametrize("model", list(REQUESTS))
def test_every_hop_takes_k_up_to_the_one_bound(model: type) -> None:
    body = REQUESTS[model]
    assert model.model_validate({**body, "k": K_MAX}).k == K_MAX
    with pytest.raises(ValidationError, match=f"k = {K_MAX + 1} is above this service's limit"):
        model.model_validate({**body, "k": K_MAX + 1})
    with pytest.raises(ValidationError):
        model.model_validate({**body, "k": -1})
    schema = model.model_json_schema()["properties"]["k"]
    assert (schema["minimum"], schema["maximum"]) == (0, K_MAX)


def test_k_is_an_int_from_zero_to_k_max() -> None:
    adapter = TypeAdapter(K)
    assert [adapter.validate_python(k) for k in (0, K_MAX)] == [0, K_MAX]


def test_one_strategy_vocabulary_on_the_wire_and_in_the_library() -> None:
    assert [s.value for s in Strategy] == ["ssfs", "rfs", "semantic"]
    assert {s.value for s in ptychobench.selection.Strategy} < {s.value for s in Strategy}
    assert DiagnoseOptions.model_validate({"strategy": "semantic"}).strategy is Strategy.SEMANTIC


def test_the_library_builds_its_labels_on_the_wire_types() -> None:
    assert tuple(ptychobench.labels.OPTIONS) == ptychobench.labels.OPTION_LETTERS
    assert ptychobench.labels.ARTIFACT_LABELS[-1] == ptychobench.labels.NO_ARTIFACTS
