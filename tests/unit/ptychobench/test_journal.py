"""The journal a benchmark keeps its rows in: a killed run resumes without losing or
repeating rows, and another configuration is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ptychobench.journal import Journal, JournalConfigError


def key(row: dict[str, Any]) -> tuple[str, str]:
    return (row["id"], row["arm"])


def lines(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / "rows.jsonl").read_text().splitlines()]


def test_rows_are_kept_and_given_back(tmp_path: Path) -> None:
    with Journal(tmp_path, {"seed": 0}, key) as journal:
        journal.append({"id": "a", "arm": "none", "gain": 0.0})
        journal.append({"id": "a", "arm": "oracle", "gain": 0.9})
    with Journal(tmp_path, {"seed": 0}, key) as again:
        assert set(again.rows) == {("a", "none"), ("a", "oracle")}
        assert again.rows["a", "oracle"]["gain"] == 0.9
        again.append({"id": "b", "arm": "none", "gain": 0.0})
    assert [key(r) for r in lines(tmp_path)] == [("a", "none"), ("a", "oracle"), ("b", "none")]


def test_a_line_cut_short_by_a_crash_is_dropped_and_not_glued_to(tmp_path: Path) -> None:
    with Journal(tmp_path, {"seed": 0}, key) as journal:
        journal.append({"id": "a", "arm": "none"})
    with (tmp_path / "rows.jsonl").open("a") as handle:
        handle.write('{"id": "b", "arm": "no')  # killed mid-write
    with Journal(tmp_path, {"seed": 0}, key) as again:
        assert set(again.rows) == {("a", "none")}
        assert again.dropped == 1
        again.append({"id": "b", "arm": "none"})
    assert [key(r) for r in lines(tmp_path)] == [("a", "none"), ("b", "none")]


def test_a_bad_line_in_the_middle_is_an_error_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "arm": "x"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(ValueError, match=r"rows.jsonl:2 is not a JSON row"):
        Journal(tmp_path, {}, key).open()


def test_error_rows_are_tried_again_and_never_kept_twice(tmp_path: Path) -> None:
    with Journal(tmp_path, {"seed": 0}, key) as journal:
        journal.append({"id": "a", "arm": "sft", "error": "503 engine down"})
        assert ("a", "sft") in journal.rows  # this session does not retry it
    with Journal(tmp_path, {"seed": 0}, key) as again:
        assert again.rows == {}
        again.append({"id": "a", "arm": "sft", "gain": 0.5})
    assert lines(tmp_path) == [{"id": "a", "arm": "sft", "gain": 0.5}]


def test_another_configuration_is_refused_naming_what_differs(tmp_path: Path) -> None:
    with Journal(tmp_path, {"seed": 0, "limit": 2}, key) as journal:
        journal.append({"id": "a", "arm": "none"})
    with pytest.raises(JournalConfigError, match=r"another configuration.*differ in limit"):
        Journal(tmp_path, {"seed": 0, "limit": 4}, key).open()
    assert len(lines(tmp_path)) == 1  # nothing touched
    with Journal(tmp_path, {"seed": 0, "limit": 4}, key, restart=True) as fresh:
        assert fresh.rows == {}
    stored = json.loads((tmp_path / "run.json").read_text())
    assert stored["config"] == {"seed": 0, "limit": 4}


def test_the_record_is_stored_but_not_hashed(tmp_path: Path) -> None:
    with Journal(tmp_path, {"seed": 0}, key, record={"git_revision": "abc"}):
        pass
    with Journal(tmp_path, {"seed": 0}, key, record={"git_revision": "def"}) as again:
        assert again.rows == {}
    assert json.loads((tmp_path / "run.json").read_text())["git_revision"] == "def"
