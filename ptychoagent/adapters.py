"""The adapter registry: which LoRA adapters exist, for which base model and task, trained
on what, and how well they score; and loading them into (and out of) a running engine.

The registry is one JSON file kept with the project's trained models
(``artifacts/registry.json`` by default), written atomically under a lock so concurrent
writers do not lose entries. It lists every trained model, each with its ``kind``
(``adapter``, ``classifier``, ``vlm``); this module reads and writes the adapters and
keeps the other entries as they are. A registry in the older adapters-only format
(``{"adapters": [...]}``, what ``adapters/registry.json`` held) is still read, and is
written in the new format on the next change. An entry's path is stored relative to the
registry's project root when it lies inside it, so a checkout can move.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ptychobench.labels import Task

if TYPE_CHECKING:
    from services.common.backend import BlockingBackend

DEFAULT_REGISTRY = Path("artifacts/registry.json")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
ADAPTER_KIND = "adapter"
"""The ``kind`` of an adapter's entry in the registry (the others: classifier, vlm)."""


class AdapterError(RuntimeError):
    """An adapter is unknown, unservable or was refused by the engine; says which and why."""


class AdapterEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    base: str
    task: Task
    path: str
    rank: int
    data_hash: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created: str


def describe(path: str | Path) -> dict[str, Any]:
    """What an adapter directory holds: its peft config and, when it was trained here,
    the training record's data hash and base model."""
    path = Path(path)
    config_file = path / "adapter_config.json"
    if not config_file.exists():
        raise AdapterError(f"{path} is not a LoRA adapter (no adapter_config.json)")
    if not (path / "adapter_model.safetensors").exists():
        raise AdapterError(f"{path} has no adapter_model.safetensors")
    config = json.loads(config_file.read_text())
    info: dict[str, Any] = {
        "rank": int(config.get("r", 0)),
        "target_modules": sorted(config.get("target_modules") or []),
        "modules_to_save": config.get("modules_to_save"),
        "base": Path(str(config.get("base_model_name_or_path", ""))).name,
    }
    record = path / "training.json"
    if record.exists():
        training = json.loads(record.read_text())
        info["data_hash"] = training["data"]["hash"]
        info["base"] = Path(training["config"]["base"]).name
        info["task"] = training["config"]["task"]
        recorded = {
            "validation_answer_loss": training.get("best_validation_loss"),
            "validation_letter_f1": training.get("best_validation_letter_f1"),
        }
        if any(value is not None for value in recorded.values()):
            info["metrics"] = {k: v for k, v in recorded.items() if v is not None}
    return info


def check_servable(name: str, path: str | Path, max_rank: int) -> None:
    """Refuse, naming the adapter, what vLLM could not serve."""
    try:
        info = describe(path)
    except AdapterError as error:
        raise AdapterError(f"adapter {name!r}: {error}") from None
    if info["modules_to_save"]:
        raise AdapterError(
            f"adapter {name!r} has modules_to_save {info['modules_to_save']}; vLLM serves "
            "LoRA weights only"
        )
    if info["rank"] > max_rank:
        raise AdapterError(
            f"adapter {name!r} has rank {info['rank']}, above the engine's max_lora_rank {max_rank}"
        )


class Registry:
    """The registry file and the operations on it."""

    def __init__(self, path: str | Path = DEFAULT_REGISTRY) -> None:
        self.path = Path(path)
        self.root = self.path.resolve().parent.parent

    def entries(self) -> list[AdapterEntry]:
        adapters, _ = self._read()
        return adapters

    def _read(self) -> tuple[list[AdapterEntry], list[dict[str, Any]]]:
        """The adapters' entries, and every other entry as it is written."""
        if not self.path.exists():
            return [], []
        raw = json.loads(self.path.read_text())
        if "artifacts" not in raw:  # the adapters-only format
            return [AdapterEntry.model_validate(item) for item in raw.get("adapters", [])], []
        adapters, others = [], []
        for item in raw["artifacts"]:
            if item.get("kind") == ADAPTER_KIND:
                fields = {key: value for key, value in item.items() if key != "kind"}
                adapters.append(AdapterEntry.model_validate(fields))
            else:
                others.append(item)
        return adapters, others

    def get(self, name: str) -> AdapterEntry:
        for entry in self.entries():
            if entry.name == name:
                return entry
        known = ", ".join(e.name for e in self.entries()) or "none"
        raise AdapterError(f"no adapter named {name!r} in {self.path} (registered: {known})")

    def resolve(self, entry: AdapterEntry) -> Path:
        path = Path(entry.path)
        return path if path.is_absolute() else self.root / path

    def add(
        self,
        name: str,
        path: str | Path,
        task: Task | str | None = None,
        base: str | None = None,
        metrics: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> AdapterEntry:
        """Register an adapter directory (its rank, base and data hash read from it)."""
        info = describe(path)
        task_value = task if task is not None else info.get("task")
        if task_value is None:
            raise AdapterError(f"say which task adapter {name!r} is for (--task)")
        entry = AdapterEntry(
            name=name,
            base=base or info["base"],
            task=Task(task_value),
            path=self._relative(Path(path)),
            rank=info["rank"],
            data_hash=info.get("data_hash"),
            metrics=metrics if metrics is not None else info.get("metrics", {}),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with self._locked() as entries:
            existing = [e for e in entries if e.name == name]
            if existing and not replace:
                raise AdapterError(f"an adapter named {name!r} is already registered")
            _put(entries, entry, [e.name for e in entries].index(name) if existing else None)
        return entry

    def remove(self, name: str) -> AdapterEntry:
        with self._locked() as entries:
            found = [e for e in entries if e.name == name]
            if not found:
                raise AdapterError(f"no adapter named {name!r} in {self.path}")
            entries[:] = [e for e in entries if e.name != name]
        return found[0]

    def set_metrics(self, name: str, metrics: dict[str, Any]) -> AdapterEntry:
        """Merge ``metrics`` into an entry's metrics."""
        with self._locked() as entries:
            for index, entry in enumerate(entries):
                if entry.name == name:
                    updated = entry.model_copy(update={"metrics": {**entry.metrics, **metrics}})
                    entries[index] = updated
                    return updated
        raise AdapterError(f"no adapter named {name!r} in {self.path}")

    def put_artifact(self, kind: str, name: str, path: str | Path, **fields: Any) -> dict[str, Any]:
        """Add or replace an entry that is not an adapter (a classifier, a VLM base):
        ``kind``, ``name``, ``path`` (relative to the project when inside it) and
        ``fields`` as they are."""
        if kind == ADAPTER_KIND:
            raise AdapterError("adapters are registered with add(), which reads their files")
        given = {"kind": kind, "name": name, **fields, "path": self._relative(Path(path))}
        first = ("kind", "name", "base", "task", "path")
        item = {key: given[key] for key in first if key in given} | given
        with self._locked_all() as (_, others):
            names = [o.get("name") for o in others]
            _put(others, item, names.index(name) if name in names else None)
        return item

    def _relative(self, path: Path) -> str:
        resolved = path.resolve()
        try:
            return str(resolved.relative_to(self.root))
        except ValueError:
            return str(resolved)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[list[AdapterEntry]]:
        with self._locked_all() as (entries, _):
            yield entries

    @contextlib.contextmanager
    def _locked_all(self) -> Iterator[tuple[list[AdapterEntry], list[dict[str, Any]]]]:
        """The adapters and the other entries, to change in place; written back at the end,
        under a lock (one writer at a time)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries, others = self._read()
            yield entries, others
            adapters = [{"kind": ADAPTER_KIND, **e.model_dump(mode="json")} for e in entries]
            body = {"artifacts": [*adapters, *others]}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(body, indent=2) + "\n")
            os.replace(tmp, self.path)


def _put(items: list[Any], item: Any, at: int | None) -> None:
    """``item`` in place of the entry at ``at`` (a replaced entry keeps its place), or last."""
    if at is None:
        items.append(item)
    else:
        items[at] = item


def _engine(base_url: str, call: Callable[[BlockingBackend], None]) -> None:
    """``call`` on the project's engine client (60 s, no retries); its errors as
    :class:`AdapterError`."""
    from services.common.backend import BlockingBackend
    from services.common.errors import BackendError, BackendRejected, BackendUnavailable
    from services.common.settings import BackendSettings

    settings = BackendSettings(base_url=base_url, timeout_s=60.0, max_retries=0)
    with BlockingBackend(settings) as engine:
        try:
            call(engine)
        except BackendRejected as error:  # "… refused the request: <the engine's message>"
            raise AdapterError(str(error)) from None
        except BackendUnavailable as error:
            raise AdapterError(f"no engine answers: {error}") from None
        except BackendError as error:  # it answered 500: it refused to, for this adapter
            raise AdapterError(f"the engine refused the request: {error}") from None


def load(base_url: str, name: str, path: str | Path) -> None:
    """Load an adapter into a running engine under ``name``."""
    _engine(base_url, lambda engine: engine.load_adapter(name, str(Path(path).resolve())))


def unload(base_url: str, name: str) -> None:
    """Remove an adapter from a running engine."""
    _engine(base_url, lambda engine: engine.unload_adapter(name))
