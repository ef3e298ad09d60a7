"""The typed client's refine calls (sync and async) and `ptychoagent refine`, against
the gateway served over real HTTP (uvicorn in a thread) in front of a served real
reconstructor (Pty-chi on the CPU) and the fake diagnosis and agent of the conftest.
The agent proposes Q (transposed patterns): the round is rejected and the job ends
after two 3-epoch reconstructions, which keeps these tests short."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ptychoagent.cli import app
from ptychoagent.client import AsyncClient, Client, GatewayError

pytestmark = pytest.mark.skipif(find_spec("ptychi") is None, reason="ptychi is not installed")
RefineApps = Any  # conftest.RefineApps
Fakes = Any  # conftest.Fakes
SAMPLE = {"sample_type": "Supercrystal", "instrument": "APS-2IDE-XFM"}


@pytest.fixture
def served(
    refine_apps: RefineApps, fakes: Fakes, serve: Callable[..., Any]
) -> Iterator[tuple[str, str]]:
    """The gateway's URL and a predict+feedback key; the agent answers Q."""
    fakes.letters = ["Q"]
    with (
        serve(refine_apps.reconstructor) as reconstructor,
        serve(refine_apps.gateway(reconstructor)) as url,
    ):
        yield url, refine_apps.key()


@pytest.fixture
def experiment(tmp_path: Path, experiment_bytes: bytes) -> Path:
    path = tmp_path / "experiment.h5"
    path.write_bytes(experiment_bytes)
    return path


@pytest.mark.slow
def test_the_sync_client_runs_a_refinement_and_reads_its_images(
    served: tuple[str, str], experiment: Path
) -> None:
    url, key = served
    with Client(url, key) as client:
        job = client.refine(experiment, **SAMPLE, max_rounds=1, description="test")
        assert job.state in ("queued", "running")
        assert job.links["review_page"] == f"/ui/refine/{job.id}"
        seen: list[str] = []
        done = client.wait_refine(job.id, poll_s=0.1, timeout_s=300, on_progress=seen.append)
        assert seen
        assert done.state == "done", done
        assert done.outcome == "rejected"
        (only,) = done.rounds
        assert only.letters == ["Q"]
        assert only.outcome == "rejected"
        after = client.refine_image(job.id, 1, "after")
        assert hashlib.sha256(after).hexdigest() == only.image_after_sha256
        assert client.refine_job(job.id) == done
        with pytest.raises(GatewayError) as finished:
            client.cancel_refine(job.id)
        assert finished.value.status == 409
        with pytest.raises(GatewayError) as missing:
            client.refine_job("ab" * 16)
        assert missing.value.status == 404
        with pytest.raises(ValueError, match="cannot read the experiment"):
            client.refine(experiment.with_name("absent.h5"), **SAMPLE)


@pytest.mark.anyio
async def test_the_async_client_submits_cancels_and_waits(
    served: tuple[str, str], experiment_bytes: bytes
) -> None:
    url, key = served
    async with AsyncClient(url, key) as client:
        job = await client.refine(experiment_bytes, **SAMPLE, max_rounds=3)
        stopping = await client.cancel_refine(job.id)
        assert stopping.id == job.id
        assert stopping.cancel_requested or stopping.state == "cancelled"
        done = await client.wait_refine(job.id, poll_s=0.1, timeout_s=300)
        assert done.state == "cancelled", done
        assert (await client.refine_job(job.id)).state == "cancelled"
        with pytest.raises(GatewayError) as refused:
            await client.refine(b"not an hdf5 file" * 10, **SAMPLE)
        assert refused.value.status == 422


@pytest.mark.slow
def test_the_cli_writes_each_rounds_images_and_the_record(
    served: tuple[str, str], experiment: Path, tmp_path: Path
) -> None:
    url, key = served
    out = tmp_path / "out"
    args = ["refine", str(experiment), "--sample-type", SAMPLE["sample_type"]]
    args += ["--instrument", SAMPLE["instrument"], "--rounds", "1", "--out", str(out)]
    result = CliRunner().invoke(
        app, [*args, "--poll-s", "0.1"], env={"PTYCHO_GATEWAY_URL": url, "PTYCHO_API_KEY": key}
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "refine.json",
        "round1-after.png",
        "round1-before.png",
    ]
    record = json.loads((out / "refine.json").read_text())
    assert record["state"] == "done"
    (only,) = record["rounds"]
    for which in ("before", "after"):
        data = (out / f"round1-{which}.png").read_bytes()
        assert data.startswith(b"\x89PNG")
        assert hashlib.sha256(data).hexdigest() == only[f"image_{which}_sha256"]
    assert "round 1: rejected; letters Q" in result.output


def test_the_cli_fails_in_one_line_without_the_file_or_the_gateway(
    tmp_path: Path, free_tcp_port: Callable[[], int], experiment_bytes: bytes
) -> None:
    base = ["--sample-type", SAMPLE["sample_type"], "--instrument", SAMPLE["instrument"]]
    env = {"PTYCHO_GATEWAY_URL": f"http://127.0.0.1:{free_tcp_port()}", "PTYCHO_API_KEY": "x"}
    missing = CliRunner().invoke(app, ["refine", str(tmp_path / "absent.h5"), *base], env=env)
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines() == [
        f"error: {tmp_path / 'absent.h5'}: no such experiment file"
    ]
    path = tmp_path / "experiment.h5"
    path.write_bytes(experiment_bytes)
    down = CliRunner().invoke(app, ["refine", str(path), *base], env=env)
    assert down.exit_code == 1
    (line,) = [x for x in down.output.strip().splitlines() if x.startswith("error:")]
    assert "No answer" in line
    assert env["PTYCHO_GATEWAY_URL"] in line
