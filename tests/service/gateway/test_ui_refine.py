"""The review page's refinements (``/ui/refine``) over httpx: the list, a job's rounds
with their evidence, and an expert's confirm/reject through the same service call as
``POST /v1/refine/{id}/rounds/{n}/review``. The job is written into the gateway's
store directly (a real loop is tests/service/gateway/test_refine.py): the point here is
the page, not Pty-chi."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import pytest
from PIL import Image

from gateway.refine.store import RefineStore, Round

pytestmark = pytest.mark.anyio
Stack = Any  # conftest.Stack
JOB = "c0ffee" * 5 + "00"


def _png(shade: int) -> tuple[str, bytes]:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), shade).save(buffer, format="PNG")
    data = buffer.getvalue()
    return hashlib.sha256(data).hexdigest(), data


def _finished_job(stack: Stack) -> str:
    """A job of two rounds (1 accepted, 2 unchanged), its images in the gateway's store."""
    refine = stack.app.state.refine
    store: RefineStore = refine.store
    before, after = _png(40), _png(200)
    for sha, data in (before, after):
        refine.gateway.store.save_image(sha, data, "PNG", 8, 8)
    store.add(
        JOB,
        api_key_id=None,
        sample_type="Supercrystal",
        instrument="APS-2IDE-XFM",
        request={"sample_type": "Supercrystal", "instrument": "APS-2IDE-XFM"},
        experiment_path="/nowhere/experiment.h5",
        experiment_sha256="0" * 64,
        max_rounds=3,
    )
    store.start(JOB)
    first = Round(
        job_id=JOB,
        number=1,
        outcome="accepted",
        adapter="oracle",
        letters=["K", "L"],
        applied=["K"],
        skipped={"L": "no implementation"},
        options_before={"num_epochs": 3},
        options_after={"num_epochs": 60},
        options_diff={"num_epochs": [3, 60]},
        preprocess_before=[],
        preprocess_after=[],
        artifacts_before=["Blurring", "Low contrast"],
        artifacts_after=["Low contrast"],
        metrics_before={"sharpness": 0.2, "phase_contrast": 0.1},
        metrics_after={"sharpness": 0.5, "phase_contrast": 0.3},
        loss_before=1.0,
        loss_after=0.5,
        verdict={
            "accepted": True,
            "targeted": ["Blurring", "Low contrast"],
            "loss_change": -0.5,
            "loss_ok": True,
            "metric_gain": 1.0,
            "checks": [
                {
                    "label": "Blurring",
                    "metric": "sharpness",
                    "before": 0.2,
                    "after": 0.5,
                    "gain": 0.375,
                    "gone": True,
                    "ok": True,
                },
                {
                    "label": "Low contrast",
                    "metric": "phase_contrast",
                    "before": 0.1,
                    "after": 0.3,
                    "gain": 2.0,
                    "gone": False,
                    "ok": True,
                },
            ],
            "reasons": ["every targeted artifact shrank"],
        },
        image_before_sha256=before[0],
        image_after_sha256=after[0],
        diagnose_before_id="d1" * 16,
        recommend_id="e1" * 16,
        diagnose_after_id="f1" * 16,
        provenance={
            "agent": {"adapter": "oracle", "k": 0, "strategy": "ssfs"},
            "diagnosis": {"backend": "classifier", "adapter": "truth"},
        },
        seconds=1.5,
    )
    store.add_round(first, {})
    second = Round(
        job_id=JOB,
        number=2,
        outcome="unchanged",
        adapter="oracle",
        letters=["L"],
        applied=[],
        skipped={"L": "no implementation"},
        options_before={"num_epochs": 60},
        options_diff={},
        preprocess_before=[],
        artifacts_before=["Low contrast"],
        metrics_before={"sharpness": 0.5},
        loss_before=0.5,
        provenance={},
        seconds=0.1,
        image_before_sha256=after[0],
    )
    store.add_round(second, {})
    store.finish(JOB, "done", "unchanged")
    return JOB


async def test_the_list_and_a_job_show_each_rounds_evidence(stack: Stack) -> None:
    job = _finished_job(stack)
    client = stack.gateway
    await stack.ui_login("feedback")
    listed = await client.get("/ui/refine")
    assert listed.status_code == 200, listed.text
    assert f'href="/ui/refine/{job}"' in listed.text
    assert "Supercrystal" in listed.text
    assert "APS-2IDE-XFM" in listed.text
    assert '<td class="rounds">2 / 3</td>' in listed.text
    assert '<td class="accepted">1</td>' in listed.text
    assert 'href="/ui/refine" aria-current="page"' in listed.text
    # the other pages link to it
    assert 'href="/ui/refine"' in (await client.get("/ui/live-f1")).text

    page = await client.get(f"/ui/refine/{job}")
    assert page.status_code == 200, page.text
    text = page.text
    for which in ("before", "after"):
        assert f'src="/ui/refine/{job}/rounds/1/{which}.png"' in text
    assert "applied" in text
    assert "skipped</span>: no implementation" in text
    assert "num_epochs: 3 → 60" in text
    assert "-50.0 %" in text  # the loss change
    assert "every targeted artifact shrank" in text
    assert f'href="/ui/predictions/{"e1" * 16}"' in text
    assert f'href="/ui/predictions/{"f1" * 16}"' in text
    assert f'action="/ui/refine/{job}/rounds/1/review"' in text
    assert f'action="/ui/refine/{job}/rounds/2/review"' not in text  # nothing to review
    image = await client.get(f"/ui/refine/{job}/rounds/1/after.png")
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/png"
    assert (await client.get(f"/ui/refine/{'ab' * 16}")).status_code == 404


async def test_a_review_is_stored_counted_and_shown(stack: Stack) -> None:
    job = _finished_job(stack)
    client = stack.gateway
    csrf = await stack.ui_login("feedback")
    saved = await client.post(
        f"/ui/refine/{job}/rounds/1/review",
        data={"verdict": "reject", "comment": "halo got worse", "csrf_token": csrf},
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/ui/refine/{job}?reviewed=1#round-1"
    page = await client.get(f"/ui/refine/{job}?reviewed=1")
    assert 'id="reviewed-1"' in page.text
    assert "<strong>reject</strong> — feedback-key" in page.text
    assert "halo got worse" in page.text
    rounds = await client.get(f"/v1/refine/{job}/rounds", headers=stack.auth("feedback"))
    (review,) = rounds.json()[0]["reviews"]
    assert review["verdict"] == "reject"
    assert review["expert"] == "feedback-key"
    metrics = (await client.get("/metrics")).text
    assert 'outcome="accepted",verdict="reject"} 1.0' in metrics
    # a verdict that is neither, and a round that changed nothing, are refused
    odd = await client.post(
        f"/ui/refine/{job}/rounds/1/review", data={"verdict": "maybe", "csrf_token": csrf}
    )
    assert odd.status_code == 422
    nothing = await client.post(
        f"/ui/refine/{job}/rounds/2/review", data={"verdict": "confirm", "csrf_token": csrf}
    )
    assert nothing.status_code == 422
    assert "nothing to review" in nothing.text


async def test_a_key_without_the_review_scope_reads_but_cannot_review(stack: Stack) -> None:
    job = _finished_job(stack)
    client = stack.gateway
    csrf = await stack.ui_login("predict")
    page = await client.get(f"/ui/refine/{job}")
    assert page.status_code == 200
    assert "Read-only" in page.text
    assert "<fieldset disabled>" in page.text
    refused = await client.post(
        f"/ui/refine/{job}/rounds/1/review", data={"verdict": "confirm", "csrf_token": csrf}
    )
    assert refused.status_code == 403
    assert "no &#39;feedback&#39; scope" in refused.text
    forged = await client.post(f"/ui/refine/{job}/rounds/1/review", data={"verdict": "confirm"})
    assert forged.status_code == 403  # no CSRF token
    rounds = await client.get(f"/v1/refine/{job}/rounds", headers=stack.auth("predict"))
    assert rounds.json()[0]["reviews"] == []


async def test_the_refine_pages_need_a_session(stack: Stack) -> None:
    for path in ("/ui/refine", f"/ui/refine/{JOB}", f"/ui/refine/{JOB}/rounds/1/before.png"):
        answer = await stack.gateway.get(path)
        assert answer.status_code in (303, 307), (path, answer.status_code)
        assert answer.headers["location"].startswith("/ui/login")
