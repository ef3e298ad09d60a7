"""A benchmark's rows kept on disk as they are made, so a killed run resumes.

A journal is a folder: ``run.json`` (the configuration and its hash, written once) and
``rows.jsonl`` (one JSON row a line, each flushed and fsync'd when it is appended).
Opened again with the same configuration, it gives back the rows already made, and the
caller skips them; with another configuration it refuses (:class:`JournalConfigError`)
instead of mixing two runs' rows. A last line cut short by a crash is dropped, as are
rows marked as errors (so a rerun tries them again); either way the file is rewritten
without them before anything is appended, so no key is ever there twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Hashable, Mapping
from pathlib import Path
from typing import Any

from ptychobench.report.io import write_atomic

Row = dict[str, Any]


class JournalConfigError(ValueError):
    """The folder holds a run of another configuration; the message says how they differ."""


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 of the configuration as canonical JSON."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def _fsync_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file, fsync'd, renamed)."""
    write_atomic(path, text.encode())


class Journal:
    """``with Journal(folder, config, key) as journal:`` — ``journal.rows`` are the rows
    kept so far (by key), :meth:`append` keeps one more. ``key`` gives a row's identity
    (e.g. sample id and arm); ``record`` is stored beside the configuration but not
    hashed (what describes the run without changing its rows: git revision, URLs)."""

    def __init__(
        self,
        folder: Path,
        config: Mapping[str, Any],
        key: Callable[[Row], Hashable],
        *,
        record: Mapping[str, Any] | None = None,
        restart: bool = False,
    ) -> None:
        self.folder = folder
        self.config = dict(config)
        self.hash = config_hash(self.config)
        self.key = key
        self.record = dict(record or {})
        self.restart = restart
        self.rows: dict[Hashable, Row] = {}
        self.dropped = 0
        """Rows read but not kept: an error row (tried again) or a line cut short."""
        self._handle: Any = None

    @property
    def rows_path(self) -> Path:
        return self.folder / "rows.jsonl"

    @property
    def run_path(self) -> Path:
        return self.folder / "run.json"

    def __enter__(self) -> Journal:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.restart:
            self.rows_path.unlink(missing_ok=True)
            self.run_path.unlink(missing_ok=True)
        if self.run_path.exists():
            stored = json.loads(self.run_path.read_text())
            if stored.get("config_hash") != self.hash:
                old = stored.get("config", {})
                differ = sorted(
                    k for k in set(old) | set(self.config) if old.get(k) != self.config.get(k)
                )
                raise JournalConfigError(
                    f"{self.folder} holds a run of another configuration (hash "
                    f"{str(stored.get('config_hash'))[:12]}, this one {self.hash[:12]}; "
                    f"they differ in {', '.join(differ) or 'nothing shown'}): choose "
                    "another output folder, or start it over"
                )
        record = {"config": self.config, "config_hash": self.hash, **self.record}
        _fsync_write(self.run_path, json.dumps(record, indent=2) + "\n")
        self._read()
        self._handle = self.rows_path.open("a")

    def _read(self) -> None:
        if not self.rows_path.exists():
            return
        text = self.rows_path.read_text()
        lines = text.split("\n")
        kept: list[str] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                if number == len(lines):  # the last line, cut short by a crash
                    self.dropped += 1
                    continue
                raise ValueError(f"{self.rows_path}:{number} is not a JSON row") from None
            if row.get("error") is not None:
                self.dropped += 1
                continue
            key = self.key(row)
            if key in self.rows:
                continue  # never written twice by this class; keep the first
            self.rows[key] = row
            kept.append(line)
        if self.dropped or len(kept) != sum(1 for line in lines if line.strip()):
            _fsync_write(self.rows_path, "".join(line + "\n" for line in kept))

    def append(self, row: Row) -> None:
        """Keep ``row`` (on disk before this returns). An error row is written, so the
        run's report counts it, but it is tried again when the journal is next opened."""
        if self._handle is None:
            raise RuntimeError("the journal is not open")
        self._handle.write(json.dumps(row) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self.rows[self.key(row)] = row

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


__all__ = ["Journal", "JournalConfigError", "config_hash"]
