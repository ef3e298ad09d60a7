"""`ptychoagent run --dataset DIR`: the stack settings and sweep configurations it builds
(the stack itself starts vLLM, far too heavy here), and the one-line refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.bench.config import BenchConfigError, load_config, plan
from ptychoagent.cli import app
from ptychoagent.cli.run import prepare_run
from ptychoagent.stack import StackSettings
from ptychobench.data import Dataset, open_dataset, read_release, write_release
from ptychobench.labels import Task

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "deploy" / "bench" / "default.yaml"
FULL = ROOT / "deploy" / "bench" / "full.yaml"
CLOSED_LOOP = ROOT / "deploy" / "bench" / "closed-loop.yaml"


def test_without_a_dataset_the_stack_and_sweeps_are_the_committed_ones() -> None:
    settings, configs = prepare_run([DEFAULT])
    assert settings == StackSettings()
    assert configs == [load_config(DEFAULT)]


@pytest.mark.parametrize("kind", ["release", "labelstudio"])
def test_a_users_dataset_is_the_pool_and_every_sweeps_dataset(
    handmade: Callable[..., Path], kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    theirs = handmade("theirs", kind=kind)
    monkeypatch.chdir(theirs.parent)
    settings, configs = prepare_run([DEFAULT, FULL], Path("theirs"))
    assert settings.dataset == theirs  # absolute: the stack resolves against its root
    assert settings.path(settings.dataset) == theirs
    for config, path in zip(configs, (DEFAULT, FULL), strict=True):
        committed = load_config(path)
        assert config.dataset == str(theirs)
        assert config.hash() != committed.hash()  # a new run, not the stored one resumed
        assert config.name == f"{committed.name}-theirs"  # its own report directory
        assert config.model_dump(exclude={"dataset", "name"}) == committed.model_dump(
            exclude={"dataset", "name"}
        )
    # the sweep scores the dataset's test split (the first `limit` samples of it)
    items = plan(configs[0])
    for task in Task:
        test = open_dataset(theirs).samples(task, "test")[: configs[0].limit]
        assert {i.sample.id for i in items if i.task is task} == {s.id for s in test}


def test_a_dataset_without_the_split_a_sweep_needs_is_refused(
    handmade: Callable[..., Path], tmp_path: Path
) -> None:
    full = read_release(handmade("theirs"))
    train_only = Dataset(
        detection={"train": full.samples("detection", "train")},
        recommendation={"train": full.samples("recommendation", "train")},
    )
    write_release(train_only, tmp_path / "train-only")
    with pytest.raises(BenchConfigError, match="no detection samples in split 'test'"):
        prepare_run([DEFAULT], tmp_path / "train-only")
    test_only = Dataset(
        detection={"test": full.samples("detection", "test")},
        recommendation={"test": full.samples("recommendation", "test")},
    )
    write_release(test_only, tmp_path / "test-only")
    with pytest.raises(BenchConfigError, match=r"split 'train' .* needs 'test' and 'train'"):
        prepare_run([DEFAULT], tmp_path / "test-only")


def test_the_closed_loop_sweep_needs_a_simulated_release(
    handmade: Callable[..., Path],
) -> None:
    with pytest.raises(BenchConfigError, match="closed_loop task needs a simulated release"):
        prepare_run([CLOSED_LOOP], handmade("theirs"))
    _, (config,) = prepare_run([CLOSED_LOOP], ROOT / "data" / "ptychobench-sim")
    assert config.tasks == ("closed_loop",)


def _broken(tmp_path: Path, handmade: Callable[..., Path]) -> Path:
    root = handmade("broken")
    split = root / "annotations" / "artifact_detection_split" / "test.json"
    records = json.loads(split.read_text())
    records[0]["messages"][1]["content"][0]["text"] = "<answer>[Sparkles]</answer>"
    split.write_text(json.dumps(records))
    return root


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such file or directory"),
        ("unreadable", "test.json: record 0"),
        ("no-split", "no detection samples in split 'test'"),
    ],
)
def test_the_command_refuses_with_one_line_before_starting_anything(
    handmade: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    message: str,
) -> None:
    import ptychoagent.stack

    def no_stack(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stack must not start")

    monkeypatch.setattr(ptychoagent.stack, "Stack", no_stack)
    if case == "missing":
        path = tmp_path / "nowhere"
    elif case == "unreadable":
        path = _broken(tmp_path, handmade)
    else:
        full = read_release(handmade("theirs"))
        path = tmp_path / "train-only"
        write_release(Dataset(detection={"train": full.samples("detection", "train")}), path)
    result = CliRunner().invoke(app, ["run", "--config", str(DEFAULT), "--dataset", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: cannot use {path} as the dataset") or (
        case == "no-split" and lines[0].startswith(f"error: {path} has no")
    )
    assert message in lines[0]
    assert "Traceback" not in result.output
