"""The adapter registry and the checks made before an adapter reaches vLLM."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ptychoagent.adapters import (
    AdapterError,
    Registry,
    check_servable,
    describe,
)
from ptychoagent.engine import EngineConfig, EngineError, up
from services.common.upstream import error_message as _error_message


def _adapter(root: Path, name: str, rank: int = 16, **extra: object) -> Path:
    """An adapter directory as peft writes it (the weights file is not read here)."""
    path = root / name
    path.mkdir(parents=True)
    config = {
        "r": rank,
        "lora_alpha": rank,
        "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": "/somewhere/SmolLM2-135M-Instruct",
        **extra,
    }
    (path / "adapter_config.json").write_text(json.dumps(config))
    (path / "adapter_model.safetensors").write_bytes(b"")
    return path


def test_describe_reads_rank_base_and_the_training_record(tmp_path: Path) -> None:
    path = _adapter(tmp_path, "a", rank=8)
    assert describe(path)["rank"] == 8
    assert describe(path)["base"] == "SmolLM2-135M-Instruct"
    record = {"data": {"hash": "abc"}, "config": {"base": "models/X-1B", "task": "detection"}}
    (path / "training.json").write_text(json.dumps(record))
    info = describe(path)
    assert (info["data_hash"], info["base"], info["task"]) == ("abc", "X-1B", "detection")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "no adapter_config.json"),
        (lambda root: _adapter(root, "big", rank=32), "rank 32, above the engine's"),
        (
            lambda root: _adapter(root, "heads", modules_to_save=["lm_head"]),
            "modules_to_save",
        ),
    ],
)
def test_unservable_adapters_are_refused_by_name(
    tmp_path: Path, make: Callable[[Path], Path], message: str
) -> None:
    with pytest.raises(AdapterError, match=message) as caught:
        check_servable("mine", make(tmp_path), max_rank=16)
    assert "'mine'" in str(caught.value)


def test_a_weightless_adapter_is_refused(tmp_path: Path) -> None:
    path = _adapter(tmp_path, "a")
    (path / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterError, match=r"no adapter_model\.safetensors"):
        describe(path)


def test_registry_add_get_metrics_remove(tmp_path: Path) -> None:
    book = Registry(tmp_path / "adapters" / "registry.json")
    path = _adapter(tmp_path / "adapters", "agent")
    entry = book.add("agent", path, task="recommendation", metrics={"loss": 0.5})
    assert entry.path == "adapters/agent"  # relative to the project root: a checkout can move
    assert book.resolve(book.get("agent")) == path.resolve()
    with pytest.raises(AdapterError, match="already registered"):
        book.add("agent", path, task="recommendation")
    book.set_metrics("agent", {"test/k0": {"micro_f1": 0.4}})
    assert book.get("agent").metrics == {"loss": 0.5, "test/k0": {"micro_f1": 0.4}}
    book.remove("agent")
    with pytest.raises(AdapterError, match=r"no adapter named 'agent'.*registered: none"):
        book.get("agent")


def test_registry_needs_a_task_and_a_valid_name(tmp_path: Path) -> None:
    book = Registry(tmp_path / "registry.json")
    path = _adapter(tmp_path, "a")
    with pytest.raises(AdapterError, match="which task"):
        book.add("a", path)
    with pytest.raises(ValueError, match="name"):
        book.add("bad name", path, task="recommendation")
    assert book.entries() == []


def test_concurrent_writers_lose_no_entry(tmp_path: Path) -> None:
    book = Registry(tmp_path / "registry.json")
    paths = [_adapter(tmp_path, f"a{i}") for i in range(24)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: book.add(p.name, p, task="recommendation"), paths))
    assert sorted(e.name for e in book.entries()) == sorted(p.name for p in paths)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"error": {"message": "not found", "code": 404}}', "not found"),
        ('{"object": "error", "message": "already loaded"}', "already loaded"),
        ("plain text", "plain text"),
    ],
)
def test_engine_error_bodies_are_read(body: str, message: str) -> None:
    assert _error_message(body) == message


def test_engine_up_names_a_missing_adapter_before_starting_anything(tmp_path: Path) -> None:
    config = EngineConfig.model_validate(
        {
            "name": "t",
            "model": str(tmp_path / "model"),
            "served_model_name": "m",
            "adapters": [{"name": "agent-sft", "path": str(tmp_path / "nowhere")}],
            "venv": str(tmp_path / "venv"),
        }
    )
    with pytest.raises(EngineError, match=r"adapter 'agent-sft'.*no adapter_config.json"):
        up(config, tmp_path / "state", zero_adapter=str(tmp_path))
    assert not (tmp_path / "venv").exists()  # refused before creating vLLM's environment
    assert not (tmp_path / "state" / "engine.json").exists()


def test_the_registry_keeps_classifier_and_vlm_entries_when_adapters_change(
    tmp_path: Path,
) -> None:
    registry = tmp_path / "artifacts" / "registry.json"
    registry.parent.mkdir()
    classifier = {
        "kind": "classifier",
        "name": "c",
        "base": "f",
        "task": "detection",
        "path": "artifacts/classifiers/c",
        "data_hash": "h",
        "metrics": {},
    }
    registry.write_text(json.dumps({"artifacts": [classifier]}))
    book = Registry(registry)
    path = _adapter(tmp_path / "artifacts" / "adapters", "agent")
    book.add("agent", path, task="recommendation")
    assert [e.name for e in book.entries()] == ["agent"]
    written = json.loads(registry.read_text())["artifacts"]
    assert [(item["kind"], item["name"]) for item in written] == [
        ("adapter", "agent"),
        ("classifier", "c"),
    ]
    assert written[0]["path"] == "artifacts/adapters/agent"
    book.remove("agent")
    assert json.loads(registry.read_text())["artifacts"] == [classifier]


def test_other_artifacts_are_put_beside_the_adapters_and_replaced_by_name(
    tmp_path: Path,
) -> None:
    registry = tmp_path / "artifacts" / "registry.json"
    book = Registry(registry)
    book.add("agent", _adapter(tmp_path / "artifacts" / "adapters", "agent"), task="recommendation")
    model = tmp_path / "artifacts" / "classifiers" / "c"
    book.put_artifact("classifier", "c", model, data_hash="one", metrics={"f1": 0.1})
    book.put_artifact("classifier", "c", model, data_hash="two", metrics={"f1": 0.2})
    written = json.loads(registry.read_text())["artifacts"]
    assert [(item["kind"], item["name"]) for item in written] == [
        ("adapter", "agent"),
        ("classifier", "c"),
    ]
    assert list(written[1].items()) == [
        ("kind", "classifier"),
        ("name", "c"),
        ("path", "artifacts/classifiers/c"),
        ("data_hash", "two"),
        ("metrics", {"f1": 0.2}),
    ]
    book.put_artifact("vlm", "v", tmp_path / "artifacts" / "vlm" / "v")
    book.put_artifact("classifier", "c", model, data_hash="three")
    assert [item["name"] for item in json.loads(registry.read_text())["artifacts"]] == [
        "agent",
        "c",  # in its place
        "v",
    ]
    with pytest.raises(AdapterError, match="add"):
        book.put_artifact("adapter", "agent", model)


def test_a_registry_in_the_adapters_only_format_is_still_read(tmp_path: Path) -> None:
    path = _adapter(tmp_path / "adapters", "agent")
    old = Registry(tmp_path / "adapters" / "registry.json")
    old.add("agent", path, task="recommendation")
    entry = old.get("agent")
    (tmp_path / "adapters" / "registry.json").write_text(
        json.dumps({"adapters": [entry.model_dump(mode="json")]})
    )
    assert old.entries() == [entry]
