"""A benchmark run, described in YAML::

    name: default
    dataset: data/ptychobench-sim
    split: test
    tasks: [detection, recommendation]
    models:
      detection:
        - {name: classifier, backend: classifier}
      recommendation:
        - {name: base, adapter: base}
        - {name: sft, adapter: smollm2-135m-agent}
    strategies: [rfs, ssfs]
    k: [0, 1, 3, 5, 7]
    seeds: [0, 1, 2]
    limit: null        # the first N test samples of each task (null: all)
    concurrency: 4
    comparisons: [[sft, base]]
    feedback: false    # post each item's truth as expert feedback (drives live F1)
    paper_parity: false  # also score as the published code did

``closed_loop`` is a third task, for a simulated release (PtychoBench-Sim: its
``samples.jsonl`` keeps each sample's seeds): on every faulted sample of the
recommendation ``split``, each recommendation model (``models.recommendation``, with the
same strategies, k and seeds as the recommendation task) is asked, and its letters are
applied to the simulated setup and reconstructed (:mod:`ptychobench.closed_loop`), beside
the baseline arms none, random, oracle and rule. A dataset without simulation records
is refused.

``dataset`` is anything ``ptychobench.data.open_dataset`` opens: a release directory or
a Label Studio export (split as the paper did, 80/20 by sample type, seed 0).

The configuration hash covers what changes the answers (dataset, split, tasks, models,
strategies, k, seeds, limit); a run with the same hash resumes the stored one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from ptychobench.data import Sample, open_dataset
from ptychobench.labels import Task
from ptychowire.base import K_MAX, RequestModel, Seed, Strategy
from ptychowire.diagnosis import Backend
from services.common.errors import InvalidInput

if TYPE_CHECKING:
    from ptychobench.closed_loop import LoopSample, Release

NAME_PATTERN = r"^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$"
"""A slug: letters and digits, single dots, dashes or underscores between them (never
``.``, ``..`` nor a ``/``: run names become folder names under the reports directory)."""
NO_STRATEGY = "none"
"""The strategy of items that take no examples (k = 0, the classifier)."""
CLOSED_LOOP: Final = "closed_loop"
"""The task whose items are letters applied to simulated samples and reconstructed."""
BenchTask = Task | Literal["closed_loop"]


def task_name(task: BenchTask) -> str:
    return str(task)  # a Task is a StrEnum: its value


class BenchConfigError(InvalidInput, ValueError):
    """The configuration cannot be read or makes no run; the message says why (a 422
    when it came over HTTP)."""


class ModelSpec(RequestModel):
    """One model configuration of a task: the adapter (or base model) on the engine, or
    for detection the classifier backend."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN)
    adapter: str | None = Field(default=None, max_length=200, pattern=NAME_PATTERN)
    """None: the service's default model."""
    backend: Backend | None = None
    """Detection only: the VLM or the classifier (None: the service's default)."""

    @property
    def examples(self) -> bool:
        """Whether this model takes few-shot examples (the classifier does not)."""
        return self.backend != "classifier"


def _default_models() -> dict[Task, list[ModelSpec]]:
    return {
        Task.DETECTION: [ModelSpec(name="classifier", backend="classifier")],
        Task.RECOMMENDATION: [
            ModelSpec(name="base", adapter="base"),
            ModelSpec(name="sft", adapter="smollm2-135m-agent"),
        ],
    }


class BenchConfig(RequestModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(default="default", min_length=1, max_length=100, pattern=NAME_PATTERN)
    dataset: str = "data/ptychobench-sim"
    split: str = "test"
    tasks: tuple[BenchTask, ...] = (Task.DETECTION, Task.RECOMMENDATION)
    models: dict[Task, list[ModelSpec]] = Field(default_factory=_default_models)
    strategies: tuple[Strategy, ...] = (Strategy.RFS, Strategy.SSFS)
    k: tuple[int, ...] = (0, 1, 3, 5, 7)
    seeds: tuple[Seed, ...] = (0,)
    limit: int | None = Field(default=None, ge=1)
    concurrency: int = Field(default=4, ge=1, le=256)
    comparisons: tuple[tuple[str, str], ...] = (("sft", "base"),)
    """Pairs (A, B) of model names compared by a paired bootstrap, A − B."""
    feedback: bool = False
    paper_parity: bool = False
    """Also score every cell as the published code did (its answer regex on the raw
    text, the label set of what occurs, the null label dropped), beside our scoring."""

    @field_validator("k")
    @classmethod
    def _ks(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(k < 0 or k > K_MAX for k in value):
            raise ValueError(f"k values must be between 0 and {K_MAX}, at least one")
        return tuple(sorted(set(value)))

    @field_validator("seeds", "strategies", "tasks")
    @classmethod
    def _not_empty(cls, value: tuple[Any, ...]) -> tuple[Any, ...]:
        if not value:
            raise ValueError("needs at least one value")
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _models_for_every_task(self) -> BenchConfig:
        from ptychobench.closed_loop import BASELINE_ARMS

        for task in self.tasks:
            name = task_name(task)
            models = self.models.get(Task.RECOMMENDATION if task == CLOSED_LOOP else task, [])
            if not models:
                where = "recommendation" if task == CLOSED_LOOP else name
                raise ValueError(f"no models for the {name} task (models.{where})")
            names = [m.name for m in models]
            if len(set(names)) != len(names):
                raise ValueError(f"models.{name} repeats a name: {names}")
            if task is Task.RECOMMENDATION and any(m.backend is not None for m in models):
                raise ValueError("models.recommendation: backend is for detection only")
            if task == CLOSED_LOOP and set(names) & set(BASELINE_ARMS):
                raise ValueError(
                    f"models.recommendation: {sorted(set(names) & set(BASELINE_ARMS))} "
                    f"name(s) a closed-loop baseline arm ({', '.join(BASELINE_ARMS)})"
                )
        return self

    def task_models(self, task: BenchTask) -> list[ModelSpec]:
        """The task's models (the closed loop asks the recommendation models)."""
        return self.models[Task.RECOMMENDATION if task == CLOSED_LOOP else task]

    def hash(self) -> str:
        """What the answers depend on (not concurrency, nor feedback, nor the name)."""
        keep = self.model_dump(
            mode="json", exclude={"name", "concurrency", "feedback", "paper_parity"}
        )
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()


def load_config(path: str | Path) -> BenchConfig:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise BenchConfigError(f"no benchmark configuration at {path}") from None
    except yaml.YAMLError as error:
        raise BenchConfigError(f"{path} is not valid YAML: {error}") from None
    return parse_config(raw, str(path))


def parse_config(raw: Any, where: str = "the configuration") -> BenchConfig:
    try:
        return BenchConfig.model_validate(raw)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in error.errors()
        )
        raise BenchConfigError(f"{where}: {problems}") from None


@dataclass(frozen=True)
class Item:
    """One request of a run."""

    task: BenchTask
    model: ModelSpec
    strategy: str
    k: int
    seed: int
    sample: Sample
    loop: LoopSample | None = None
    """Closed loop: the sample's simulator record."""
    release: Release | None = None
    """Closed loop: the release (how to rebuild and score its samples)."""
    baseline: bool = False
    """Closed loop: ``model.name`` is a baseline arm, not a model to ask."""

    @property
    def truth(self) -> tuple[str, ...]:
        """The sample's true labels for this item's task (the closed loop's: the letters
        of its injected faults)."""
        return self.sample.artifacts if self.task is Task.DETECTION else self.sample.options

    @property
    def key(self) -> str:
        return (
            f"{task_name(self.task)}/{self.model.name}/{self.strategy}/k{self.k}/s{self.seed}/"
            f"{self.sample.id}"
        )


def allowed_dataset(dataset: str, roots: Iterable[str], base: Path) -> Path:
    """The dataset's folder, resolved (``..`` and links followed), when it lies under one
    of ``roots``; relative paths count from ``base``. ``BenchConfigError`` otherwise: a
    run started over HTTP must not read whatever path its caller names."""
    allowed = [(base / root).resolve() for root in roots]
    path = (base / dataset).resolve()
    if not any(path.is_relative_to(root) for root in allowed):
        shown = ", ".join(str(root) for root in allowed) or "none"
        raise BenchConfigError(
            f"dataset {dataset!r} is not under an allowed dataset root ({shown}; "
            "GATEWAY_BENCH_DATASET_ROOTS)"
        )
    return path


def plan(config: BenchConfig, root: Path | None = None) -> list[Item]:
    """Every item of the run, in an order that lets the engine's prefix cache work:
    one model, seed and strategy at a time, samples of a type together, k ascending (the
    k-shot examples are the first k of the larger sets, so prompts share their start).

    k = 0 takes no examples, and greedy decoding makes seeds irrelevant there: it is sent
    once per model and sample (strategy ``none``), and reported under every strategy.
    """
    dataset_path = Path(config.dataset)
    if root is not None and not dataset_path.is_absolute():
        dataset_path = root / dataset_path
    try:
        dataset = open_dataset(dataset_path)
    except (OSError, ValueError) as error:
        raise BenchConfigError(f"cannot read the dataset {dataset_path}: {error}") from error
    items: list[Item] = []
    for task in config.tasks:
        if task == CLOSED_LOOP:
            items += _closed_loop_items(config, dataset_path)
            continue
        assert isinstance(task, Task)
        if config.split not in dataset.splits(task):
            raise BenchConfigError(f"{dataset_path} has no {task.value} split {config.split!r}")
        samples = list(dataset.samples(task, config.split))[: config.limit]
        samples.sort(key=lambda s: (s.sample_type, s.id))
        for model in config.task_models(task):
            items += _model_items(config, task, model, [(s, None) for s in samples], None)
    return items


def _model_items(
    config: BenchConfig,
    task: BenchTask,
    model: ModelSpec,
    samples: list[tuple[Sample, LoopSample | None]],
    release: Release | None,
) -> list[Item]:
    """One model's items: k = 0 once (strategy ``none``), then each seed × strategy ×
    sample × k > 0 (see :func:`plan`)."""
    items: list[Item] = []
    if 0 in config.k or not model.examples:
        items += [
            Item(task, model, NO_STRATEGY, 0, config.seeds[0], s, loop, release)
            for s, loop in samples
        ]
    if not model.examples:
        return items
    for seed in config.seeds:
        for strategy in config.strategies:
            for sample, loop in samples:
                items += [
                    Item(task, model, strategy, k, seed, sample, loop, release)
                    for k in config.k
                    if k > 0
                ]
    return items


def open_closed_loop(dataset_path: Path, config: BenchConfig) -> Release:
    """The faulted samples the closed loop runs on; ``BenchConfigError`` for a dataset
    without simulation records."""
    from ptychobench.closed_loop import NotSimulatedError, open_release

    try:
        return open_release(dataset_path, config.split, config.limit)
    except NotSimulatedError as error:
        raise BenchConfigError(f"the closed_loop task needs a simulated release: {error}") from None


def _closed_loop_items(config: BenchConfig, dataset_path: Path) -> list[Item]:
    """The baseline arms (once per sample), then each recommendation model's items."""
    from ptychobench.closed_loop import BASELINE_ARMS

    release = open_closed_loop(dataset_path, config)
    samples = sorted(release.samples, key=lambda s: (s.sample.sample_type, s.id))
    items = [
        Item(
            CLOSED_LOOP,
            ModelSpec(name=arm),
            NO_STRATEGY,
            0,
            config.seeds[0],
            loop.sample,
            loop,
            release,
            baseline=True,
        )
        for arm in BASELINE_ARMS
        for loop in samples
    ]
    pairs: list[tuple[Sample, LoopSample | None]] = [(s.sample, s) for s in samples]
    for model in config.task_models(CLOSED_LOOP):
        items += _model_items(config, CLOSED_LOOP, model, pairs, release)
    return items
