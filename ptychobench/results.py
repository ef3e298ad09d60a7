"""Prediction results read into one shape, and scored both ways.

Two inputs are read:

* **Our JSONL** — one JSON object per line: ``task``, ``k``, ``strategy``,
  ``sample_type``, ``truth`` (labels), and ``raw_answer`` (the model's text) or
  ``prediction`` (labels); optional ``model``, ``adapter``, ``id``. Lines are grouped into
  runs by (task, model, adapter, strategy, k). When a line has both ``raw_answer`` and
  ``prediction``, the raw answer is scored, so that both scorings read the same model
  text.
* **The published result JSON** of the PtychoBench code — ``{"config": …, "similar" |
  "random": {"<k>-shot": {"raw_predictions": […], "ground_truths": […], …}}}``; "similar"
  is SSFS and "random" RFS. It stores no per-item sample type (only aggregates), so its
  runs have none. It does not name the task either; it is inferred from the truths
  (detection targets are bracketed, ``<answer>[…]</answer>``) unless given.

Each run is scored twice (`evaluate_run`): *ours* parses every answer robustly into the
task's fixed vocabulary and counts answers that did not parse cleanly (no answer block, or
fragments that match no label; whatever labels could be read still count); *parity* is
the published scoring (`ptychobench.metrics.parity_score`) on the raw texts, with label
lists first rendered in the paper's answer format. Parity reads detection answers with
the published detection script's regex (brackets required) and recommendation answers
with the recommendation script's (brackets optional).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeAlias

from ptychobench.bootstrap import BootstrapResult
from ptychobench.labels import Task, canonical_order, vocabulary
from ptychobench.metrics import Scores, parity_matrices
from ptychobench.report.stats import label_matrices, pooled

Answer: TypeAlias = str | tuple[str, ...]
"""A model's answer text, or labels already in the task's vocabulary."""

_STRATEGY_ALIASES: Final = {"similar": "ssfs", "random": "rfs"}
_SHOT_KEY: Final = re.compile(r"(\d+)-shot")


@dataclass(frozen=True)
class ScoredRun:
    """One (model, strategy, k) cell of predictions on a test set."""

    source: str
    task: Task
    model: str | None
    adapter: str | None
    strategy: str
    k: int
    truths: tuple[Answer, ...]
    predictions: tuple[Answer, ...]
    sample_types: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None

    @property
    def n_items(self) -> int:
        """Number of test items."""
        return len(self.truths)

    @property
    def system(self) -> str:
        """Model and adapter as one name ("-" when neither is known)."""
        parts = [part for part in (self.model, self.adapter) if part]
        return " + ".join(parts) or "-"


def load_results(path: Path | str, task: Task | str | None = None) -> list[ScoredRun]:
    """Runs from a results file of either format, told apart by content.

    ``task`` keeps only that task's runs of a JSONL file, and names the task of a
    published file. Problems raise ``ValueError`` (naming the file and the place) or
    ``OSError``.
    """
    path = Path(path)
    wanted = Task(task) if task is not None else None
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and data.keys() & {"config", *_STRATEGY_ALIASES}:
        return _read_published(path, data, wanted)
    return _read_jsonl(path, text, wanted)


def _error(where: str, name: str, problem: str) -> ValueError:
    return ValueError(f"{where}: field {name!r}: {problem}")


def _optional_str(row: Mapping[str, Any], name: str, where: str) -> str | None:
    value = row.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _error(where, name, f"expected a string, got {value!r}")


def _required(row: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in row:
        raise _error(where, name, "missing")
    value = row[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _error(where, name, f"expected {kind.__name__}, got {value!r}")
    return value


def _labels(row: Mapping[str, Any], name: str, task: Task, where: str) -> tuple[str, ...]:
    value = _required(row, name, list, where)
    if not all(isinstance(label, str) for label in value):
        raise _error(where, name, f"expected a list of strings, got {value!r}")
    try:
        return tuple(canonical_order(value, task))
    except ValueError as exc:
        raise _error(where, name, str(exc)) from None


def _strategy(value: str) -> str:
    name = value.strip().lower()
    return _STRATEGY_ALIASES.get(name, name)


@dataclass
class _Group:
    truths: list[Answer]
    predictions: list[Answer]
    sample_types: list[str]
    ids: dict[str, int]


def _read_jsonl(path: Path, text: str, task: Task | None) -> list[ScoredRun]:
    groups: dict[tuple[str, str, str, str, int], _Group] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
        task_name = _required(row, "task", str, where)
        try:
            row_task = Task(task_name)
        except ValueError:
            raise _error(where, "task", f"expected one of {[t.value for t in Task]}") from None
        k = _required(row, "k", int, where)
        if k < 0:
            raise _error(where, "k", f"must not be negative, got {k}")
        strategy = _strategy(_required(row, "strategy", str, where))
        sample_type = _required(row, "sample_type", str, where)
        truth = _labels(row, "truth", row_task, where)
        prediction: Answer
        if row.get("raw_answer") is not None:
            prediction = _required(row, "raw_answer", str, where)
        elif "prediction" in row:
            prediction = _labels(row, "prediction", row_task, where)
        else:
            raise _error(where, "prediction", "missing (give 'prediction' or 'raw_answer')")
        model = _optional_str(row, "model", where) or ""
        adapter = _optional_str(row, "adapter", where) or ""
        key = (row_task.value, model, adapter, strategy, k)
        group = groups.setdefault(key, _Group([], [], [], {}))
        if "id" in row:
            item_id = row["id"]
            if not isinstance(item_id, str | int) or isinstance(item_id, bool):
                raise _error(where, "id", f"expected a string or integer, got {item_id!r}")
            if str(item_id) in group.ids:
                raise _error(
                    where, "id", f"{item_id!r} repeats line {group.ids[str(item_id)]} of this run"
                )
            group.ids[str(item_id)] = lineno
        group.truths.append(truth)
        group.predictions.append(prediction)
        group.sample_types.append(sample_type)
    runs = [
        ScoredRun(
            source=str(path),
            task=Task(task_value),
            model=model or None,
            adapter=adapter or None,
            strategy=strategy,
            k=k,
            truths=tuple(group.truths),
            predictions=tuple(group.predictions),
            sample_types=tuple(group.sample_types),
            ids=tuple(group.ids) if len(group.ids) == len(group.truths) else None,
        )
        for (task_value, model, adapter, strategy, k), group in sorted(groups.items())
    ]
    if not runs:
        raise ValueError(f"{path}: no results")
    if task is not None:
        runs = [run for run in runs if run.task is task]
        if not runs:
            raise ValueError(f"{path}: no {task.value} results")
    return runs


def _texts(shot: Mapping[str, Any], name: str, where: str) -> list[str]:
    value = shot.get(name)
    if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
        raise _error(where, name, "expected a list of strings")
    return value


def _read_published(path: Path, data: Mapping[str, Any], task: Task | None) -> list[ScoredRun]:
    config = data.get("config")
    model_path = config.get("model_path") if isinstance(config, dict) else None
    model = model_path if isinstance(model_path, str) else None
    cells: list[tuple[str, int, list[str], list[str], tuple[str, ...] | None]] = []
    for key, strategy in _STRATEGY_ALIASES.items():
        if key not in data:
            continue
        block = data[key]
        if not isinstance(block, dict):
            raise ValueError(f"{path}: {key!r}: expected an object of '<k>-shot' results")
        for shot_key, shot in block.items():
            where = f"{path}: {key}/{shot_key}"
            match = _SHOT_KEY.fullmatch(shot_key)
            if match is None:
                raise ValueError(f"{where}: expected a key like '3-shot'")
            if not isinstance(shot, dict):
                raise ValueError(f"{where}: expected an object")
            truths = _texts(shot, "ground_truths", where)
            predictions = _texts(shot, "raw_predictions", where)
            if len(truths) != len(predictions):
                raise ValueError(
                    f"{where}: {len(truths)} ground_truths but {len(predictions)} raw_predictions"
                )
            if not truths:
                raise ValueError(f"{where}: no items")
            types = shot.get("sample_types")
            sample_types = (
                tuple(types)
                if isinstance(types, list)
                and len(types) == len(truths)
                and all(isinstance(t, str) for t in types)
                else None
            )
            cells.append((strategy, int(match.group(1)), truths, predictions, sample_types))
    if not cells:
        raise ValueError(f"{path}: neither 'similar' nor 'random' results")
    resolved = task or _infer_task(path, [text for cell in cells for text in cell[2]])
    return [
        ScoredRun(
            source=str(path),
            task=resolved,
            model=model,
            adapter=None,
            strategy=strategy,
            k=k,
            truths=tuple(truths),
            predictions=tuple(predictions),
            sample_types=sample_types,
        )
        for strategy, k, truths, predictions, sample_types in sorted(
            cells, key=lambda cell: (cell[0], cell[1])
        )
    ]


def _infer_task(path: Path, truths: Sequence[str]) -> Task:
    bracketed = [re.search(r"<answer>\s*\[", text) is not None for text in truths]
    if all(bracketed):
        return Task.DETECTION
    if not any(bracketed):
        return Task.RECOMMENDATION
    raise ValueError(f"{path}: cannot tell the task from the ground truths; give it explicitly")


def our_labels(run: ScoredRun) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]], int]:
    """Truth and predicted labels in the fixed vocabulary, and how many predictions did
    not parse cleanly (no answer block, or fragments matching no label). A truth that does
    not parse cleanly is an error in the data and raises ``ValueError``."""
    from ptychobench.parsing import parse_answer

    truths: list[tuple[str, ...]] = []
    for i, answer in enumerate(run.truths):
        if isinstance(answer, str):
            parsed = parse_answer(answer, run.task, mode="robust")
            if not parsed.ok:
                raise ValueError(
                    f"{run.source}: {run.strategy} {run.k}-shot item {i}: "
                    f"ground truth {answer!r} does not parse"
                )
            truths.append(parsed.labels)
        else:
            truths.append(answer)
    predictions: list[tuple[str, ...]] = []
    failures = 0
    for answer in run.predictions:
        if isinstance(answer, str):
            parsed = parse_answer(answer, run.task, mode="robust")
            failures += not parsed.ok
            predictions.append(parsed.labels)
        else:
            predictions.append(answer)
    return truths, predictions, failures


def parity_texts(run: ScoredRun) -> tuple[list[str], list[str]]:
    """Truths and predictions as answer texts, label lists rendered in the paper's
    format (``<answer>[a, b]</answer>`` / ``<answer>G, K</answer>``)."""
    from ptychobench.prompts import format_answer

    def text(answer: Answer) -> str:
        return answer if isinstance(answer, str) else format_answer(answer, run.task)

    return [text(a) for a in run.truths], [text(a) for a in run.predictions]


@dataclass(frozen=True)
class RunEvaluation:
    """Both scorings of one run, each with a bootstrap interval of its micro-F1.

    The two intervals use the same seed, hence the same resamples of the items. The
    parity interval is computed over the run's whole parity label set; micro-F1 does not
    depend on labels absent from a resample, so this equals rebuilding the label set per
    resample as the published code would.
    """

    run: ScoredRun
    ours: Scores
    ours_micro_f1: BootstrapResult
    parse_failures: int
    parity: Scores
    parity_micro_f1: BootstrapResult

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping."""
        run = self.run
        return {
            "source": run.source,
            "task": run.task.value,
            "model": run.model,
            "adapter": run.adapter,
            "strategy": run.strategy,
            "k": run.k,
            "n_items": run.n_items,
            "parse_failures": self.parse_failures,
            "ours": {**self.ours.to_dict(), "micro_f1_bootstrap": self.ours_micro_f1.to_dict()},
            "parity": {
                **self.parity.to_dict(),
                "labels": list(self.parity.vocab),
                "micro_f1_bootstrap": self.parity_micro_f1.to_dict(),
            },
        }


def evaluate_run(
    run: ScoredRun, *, n_resamples: int = 10_000, seed: int = 0, confidence: float = 0.95
) -> RunEvaluation:
    """Our scoring and the parity scoring of a run, each with a bootstrap CI of micro-F1."""
    vocab = vocabulary(run.task)
    truths, predictions, failures = our_labels(run)
    y_true, y_pred = label_matrices(truths, predictions, vocab)
    true_texts, pred_texts = parity_texts(run)
    p_true, p_pred, labels = parity_matrices(
        true_texts, pred_texts, require_brackets=run.task is Task.DETECTION
    )
    ours = pooled(
        y_true,
        y_pred,
        vocab,
        run.sample_types,
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
    )
    parity = pooled(
        p_true,
        p_pred,
        labels,
        run.sample_types,
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
    )
    return RunEvaluation(
        run=run,
        ours=ours.scores,
        ours_micro_f1=ours.micro_f1,
        parse_failures=failures,
        parity=parity.scores,
        parity_micro_f1=parity.micro_f1,
    )
