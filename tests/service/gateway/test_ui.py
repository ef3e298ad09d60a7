"""The expert review page (``/ui``): session, CSRF and scope checks over httpx, and an
expert's whole review in a real browser (Debian's chromium, driven by Playwright) against
the gateway served over real HTTP in front of the real diagnosis service.

The browser tests fail, not skip, when chromium or Playwright is missing: ``make tools``
installs them. ``PTYCHO_UI_SCREENSHOTS=docs/ui`` writes the screenshots there."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import gateway.ui
from gateway.feedback import Feedback
from gateway.keys import KeyStore
from gateway.predictions import Prediction
from gateway.store import PredictionStore
from gateway.ui.session import safe_next
from gateway.ui.views import DETECTION_KEYS, swaps, toggles
from ptychobench.data import read_release
from ptychobench.labels import ARTIFACT_LABELS
from services.common.database import make_engine

DATASET = Path(__file__).resolve().parents[3] / "data" / "ptychobench-sim"
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = os.environ.get("PTYCHO_UI_SCREENSHOTS")  # read before the env is cleared
Stack = Any  # conftest.Stack
Apps = Any  # conftest.Apps
BENCH_RUN = {
    "name": "ui-smoke",
    "dataset": str(DATASET),
    "tasks": ["detection"],
    "models": {"detection": [{"name": "classifier", "backend": "classifier"}]},
    "limit": 2,
    "concurrency": 2,
}


def _sample(index: int) -> Any:
    return read_release(DATASET).samples("detection", "test")[index]


def _diagnosis(index: int) -> dict[str, Any]:
    """The multipart body of ``POST /v1/diagnose`` for a test sample."""
    sample = _sample(index)
    options = {"sample": {"sample_type": sample.sample_type, "instrument": sample.instrument}}
    return {
        "files": {"image": ("r.png", sample.image.read_bytes(), "image/png")},
        "data": {"request": json.dumps(options)},
    }


def _cookie(response: httpx.Response, name: str) -> str:
    found = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    (line,) = [v for v in found if v.startswith(f"{name}=")]
    return line


# ------------------------------------------------------------------ pure parts


def _prediction(task: str, labels: list[str], **extra: Any) -> Prediction:
    return Prediction(
        kind="recommend" if task == "recommendation" else "diagnose",
        task=task,
        sample_type="Siemens star",
        instrument="Velociprobe",
        labels=labels,
        raw_answer=", ".join(labels),
        backend="llm",
        adapter="smollm2-135m-agent",
        service_url="http://agent",
        seed=0,
        k=3,
        strategy="ssfs",
        latency_s=0.5,
        backend_latency_s=0.4,
        request={"sample": {"sample_type": "Siemens star", "artifacts": []}},
        **extra,
    )


def _review(labels: list[str]) -> Feedback:
    return Feedback(1, "p", labels, "expert", "", False, datetime.now(UTC))


def test_swaps_count_false_labels_against_missed_ones() -> None:
    reviewed = [
        (_prediction("detection", ["Halo artifacts"]), _review(["Blurring"])),
        (
            _prediction("detection", ["Halo artifacts", "Blurring"]),
            _review(["Blurring", "Phase ramp"]),
        ),
        (_prediction("detection", ["Halo artifacts"]), _review(["Halo artifacts"])),
        (_prediction("recommendation", ["A", "K"]), _review(["K", "N"])),
    ]
    found = [(s.task, s.predicted, s.missed, s.count) for s in swaps(reviewed)]
    assert found == [
        ("detection", "Halo artifacts", "Blurring", 1),
        ("detection", "Halo artifacts", "Phase ramp", 1),
        ("recommendation", "A", "N", 1),
    ]
    reviewed.append((_prediction("detection", ["Halo artifacts"]), _review(["Blurring"])))
    assert swaps(reviewed, top=1)[0].count == 2


def test_the_package_exports() -> None:
    assert sorted(gateway.ui.__all__) == ["STATIC_PATH", "build_ui_router", "static_files"]


def test_after_login_only_paths_of_the_page_are_followed() -> None:
    for kept in ("/ui", "/ui/live-f1?window=7d", "/ui?unreviewed=true"):
        assert safe_next(kept) == kept
    for target in (None, "", "//evil.example/ui", "https://evil.example/ui", "/uix", "/ui\\x"):
        assert safe_next(target) == "/ui"


def test_toggles_have_one_shortcut_per_label() -> None:
    detection = toggles("detection", ["Blurring"])
    assert [t.key for t in detection] == list(DETECTION_KEYS)
    assert [t.label for t in detection if t.checked] == ["Blurring"]
    letters = toggles("recommendation", ["K"])
    assert len(letters) == 24
    assert (letters[0].key, letters[-1].key) == ("a", "x")
    assert [t.label for t in letters if t.checked] == ["K"]


# ------------------------------------------------------------------ httpx: no browser


async def _predict(stack: Stack, index: int = 0) -> str:
    response = await stack.gateway.post(
        "/v1/diagnose", **_diagnosis(index), headers=stack.auth("predict")
    )
    assert response.status_code == 200, response.text
    return str(response.json()["prediction_id"])


@pytest.mark.anyio
async def test_pages_need_a_session_and_the_login_sets_strict_cookies(stack: Stack) -> None:
    prediction = await _predict(stack)
    client = stack.gateway
    for path in ("/ui", f"/ui/predictions/{prediction}", "/ui/live-f1", "/ui/benchmarks"):
        refused = await client.get(path)
        assert refused.status_code == 303
        assert refused.headers["location"].startswith("/ui/login?next=/ui")
    image = await client.get(f"/ui/predictions/{prediction}/image")
    assert image.status_code == 303
    form = await client.get("/ui/login")
    assert form.status_code == 200
    assert "default-src 'self'" in form.headers["content-security-policy"]
    csrf_cookie = _cookie(form, "ptycho_ui_csrf")
    assert "HttpOnly" in csrf_cookie
    assert "SameSite=strict" in csrf_cookie
    assert "Path=/ui" in csrf_cookie
    assert "Secure" not in csrf_cookie
    csrf = client.cookies["ptycho_ui_csrf"]
    wrong = await client.post("/ui/login", data={"api_key": "pk_nope", "csrf_token": csrf})
    assert wrong.status_code == 401
    assert "malformed" in wrong.text
    signed = await client.post(
        "/ui/login",
        data={"api_key": stack.keys["predict"], "csrf_token": csrf, "next": "//evil.example/"},
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == "/ui"  # never off this site
    key_cookie = _cookie(signed, "ptycho_ui_key")
    for part in ("HttpOnly", "SameSite=strict", "Path=/ui"):
        assert part in key_cookie
    assert "Max-Age" not in key_cookie
    assert "expires" not in key_cookie.lower()
    listed = await client.get("/ui")
    assert listed.status_code == 200
    assert prediction in listed.text
    shown = await client.get(f"/ui/predictions/{prediction}/image")
    assert shown.headers["content-type"] == "image/png"
    assert (await client.get("/ui/static/ui.js")).status_code == 200
    missing = await client.get("/ui/predictions/0000")
    assert missing.status_code == 404
    assert "no prediction" in missing.text


@pytest.mark.anyio
async def test_the_secure_flag_is_set_over_https(stack: Stack) -> None:
    transport = httpx.ASGITransport(app=stack.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://gateway") as client:
        form = await client.get("/ui/login")
        assert "Secure" in _cookie(form, "ptycho_ui_csrf")
        signed = await client.post(
            "/ui/login",
            data={
                "api_key": stack.keys["feedback"],
                "csrf_token": client.cookies["ptycho_ui_csrf"],
            },
        )
        assert "Secure" in _cookie(signed, "ptycho_ui_key")


@pytest.mark.anyio
async def test_form_posts_without_the_csrf_token_are_refused(stack: Stack) -> None:
    prediction = await _predict(stack)
    client = stack.gateway
    await client.get("/ui/login")
    no_token = await client.post("/ui/login", data={"api_key": stack.keys["feedback"]})
    assert no_token.status_code == 403
    assert "CSRF" in no_token.json()["detail"]
    forged = await client.post(
        "/ui/login", data={"api_key": stack.keys["feedback"], "csrf_token": "guess"}
    )
    assert forged.status_code == 403
    csrf = await stack.ui_login("feedback")
    labels = {"labels": ["Halo artifacts"]}
    for token in (None, "guess"):
        data = labels if token is None else {**labels, "csrf_token": token}
        refused = await client.post(f"/ui/predictions/{prediction}", data=data)
        assert refused.status_code == 403
    assert (await client.post("/ui/logout", data={})).status_code == 403
    record = await client.get(f"/v1/predictions/{prediction}", headers=stack.auth("feedback"))
    assert record.json()["feedback"] == []
    saved = await client.post(
        f"/ui/predictions/{prediction}", data={**labels, "csrf_token": csrf, "comment": "halo"}
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/ui/predictions/{prediction}?saved=1"
    record = await client.get(f"/v1/predictions/{prediction}", headers=stack.auth("feedback"))
    (review,) = record.json()["feedback"]
    assert (review["labels"], review["expert"], review["comment"]) == (
        ["Halo artifacts"],
        "feedback-key",
        "halo",
    )
    empty = await client.post(f"/ui/predictions/{prediction}", data={"csrf_token": csrf})
    assert empty.status_code == 422
    assert "No obvious artifacts" in empty.text
    out = await client.post("/ui/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    assert (await client.get("/ui")).status_code == 303


@pytest.mark.anyio
async def test_a_key_without_feedback_scope_reads_but_cannot_save(stack: Stack) -> None:
    prediction = await _predict(stack)
    client = stack.gateway
    csrf = await stack.ui_login("predict")
    page = await client.get(f"/ui/predictions/{prediction}")
    assert "Read-only" in page.text
    assert "<fieldset disabled>" in page.text
    refused = await client.post(
        f"/ui/predictions/{prediction}", data={"labels": ["Halo artifacts"], "csrf_token": csrf}
    )
    assert refused.status_code == 403
    assert "no &#39;feedback&#39; scope" in refused.text
    record = await client.get(f"/v1/predictions/{prediction}", headers=stack.auth("predict"))
    assert record.json()["feedback"] == []


@pytest.mark.anyio
async def test_a_recommendation_is_reviewed_with_letters(stack: Stack, apps: Apps) -> None:
    stored = _prediction("recommendation", ["G", "K"])
    PredictionStore(make_engine(apps.database)).add([stored])
    client = stack.gateway
    csrf = await stack.ui_login("feedback")
    listed = await client.get("/ui")
    assert "Increase the number of iterations" in listed.text
    assert "probe_position_options.optimizable" in listed.text  # Pty-chi's change for G
    page = await client.get(f"/ui/predictions/{stored.id}")
    assert page.text.count('name="labels"') == 24
    assert 'data-key="x"' in page.text
    assert "A recommendation has no image" in page.text
    saved = await client.post(
        f"/ui/predictions/{stored.id}", data={"labels": ["K", "N"], "csrf_token": csrf}
    )
    assert saved.status_code == 303
    live = await client.get("/ui/live-f1?window=24h")
    assert "recommendation · smollm2-135m-agent" in live.text
    assert "<td>G</td><td>N</td><td>1</td>" in live.text.replace("\n", "").replace(" ", "")


@pytest.mark.anyio
async def test_a_revoked_key_is_sent_back_to_login(stack: Stack, apps: Apps) -> None:
    client = stack.gateway
    await stack.ui_login("admin")
    assert (await client.get("/ui/benchmarks")).status_code == 200
    KeyStore(make_engine(apps.database)).revoke("admin-key")
    refused = await client.get("/ui/benchmarks")
    assert refused.status_code == 303
    assert refused.headers["location"] == "/ui/login?next=/ui/benchmarks&expired=1"
    assert "ptycho_ui_key=;" in _cookie(refused, "ptycho_ui_key")


# ------------------------------------------------------------------ in a real browser


def _browser_tools() -> Any:
    """Playwright's sync API, or a failure that says how to get the tools."""
    if shutil.which("chromium") is None or not Path(CHROMIUM).exists():
        pytest.fail(f"chromium is missing ({CHROMIUM}): run `make tools`", pytrace=False)
    try:
        from playwright import sync_api
    except ImportError:
        pytest.fail("the playwright package is missing: run `make tools`", pytrace=False)
    return sync_api


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = _browser_tools()
    # generous waits: a shared 2-core machine can take seconds to render a page that a
    # laptop shows at once (the default 5 s failed once here under load)
    sync_api.expect.set_options(timeout=30_000)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def served(apps: Apps, serve: Callable[..., Any]) -> Iterator[tuple[str, dict[str, str]]]:
    """The gateway over HTTP with three diagnoses made; its URL and a key per scope."""
    with serve(apps.gateway) as url:
        keys = apps.keys()
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {keys['predict']}"}
        ) as c:
            for index in range(3):
                assert c.post("/v1/diagnose", **_diagnosis(index)).status_code == 200
        yield url, keys


def _shoot(page: Any, name: str, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(into / f"{name}.png"), full_page=True)


def _sign_in(page: Any, url: str, token: str) -> None:
    page.goto(f"{url}/ui")
    assert "/ui/login" in page.url
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in").click()


@pytest.mark.slow
def test_an_expert_reviews_a_prediction_and_live_f1_follows(
    served: tuple[str, dict[str, str]], browser: Any, tmp_path: Path
) -> None:
    url, keys = served
    shots = Path(SCREENSHOTS).resolve() if SCREENSHOTS else tmp_path
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    expect = _browser_tools().expect

    _sign_in(page, url, "pk_000000000000_" + "x" * 43)
    expect(page.get_by_role("alert")).to_contain_text("no API key with id")
    _sign_in(page, url, keys["feedback"])
    expect(page.get_by_role("heading", name="Recent predictions")).to_be_visible()
    rows = page.locator("tr[data-prediction]")
    expect(rows).to_have_count(3)
    expect(rows.first.locator("img.thumb")).to_be_visible()
    assert rows.first.locator("img.thumb").evaluate("img => img.naturalWidth") > 0
    _shoot(page, "list", shots)

    page.get_by_role("link", name="Live F1").click()
    expect(page.get_by_text("No reviews in this window.")).to_be_visible()

    page.go_back()
    first = rows.first.get_attribute("data-prediction")
    rows.first.get_by_role("link").click()
    expect(page.get_by_role("heading", name="True labels")).to_be_visible()
    page.wait_for_load_state("load")  # ui.js (deferred) holds the shortcuts
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys['feedback']}"}) as c:
        predicted = [t["label"] for t in c.get(f"/v1/predictions/{first}").json()["labels"]]
    dropped = predicted[0]
    added = next(label for label in ARTIFACT_LABELS[:-1] if label not in predicted)
    for label in ARTIFACT_LABELS:
        box = page.get_by_role("checkbox", name=label)
        assert box.is_checked() == (label in predicted)
    page.get_by_role("button", name="Zoom in").click()
    expect(page.locator("#zoom-level")).to_have_text("150 %")
    _shoot(page, "review", shots)

    page.keyboard.press(DETECTION_KEYS[ARTIFACT_LABELS.index(added)])  # the shortcut
    page.get_by_role("checkbox", name=dropped).click()  # and a click
    expect(page.get_by_role("checkbox", name=added)).to_be_checked()
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Enter")  # saves
    expect(page.locator("#saved")).to_contain_text("reviewed by feedback-key")
    truth = [label for label in ARTIFACT_LABELS if label in {*predicted, added} - {dropped}]
    for label in ARTIFACT_LABELS:
        assert page.get_by_role("checkbox", name=label).is_checked() == (label in truth)

    page.get_by_role("link", name="Recent predictions").click()
    reviewed = page.locator(f'tr[data-prediction="{first}"] td.reviewed')
    expect(reviewed).to_contain_text("Reviewed by feedback-key")

    page.get_by_role("link", name="Live F1").click()
    expect(page.get_by_text("1 reviewed prediction,")).to_be_visible()
    score = page.locator("[data-f1^='detection/'] strong")
    expect(score).to_have_text("0.000")  # the only review says the prediction was wrong

    page.get_by_role("link", name="Recent predictions").click()
    second = rows.nth(1).get_attribute("data-prediction")
    rows.nth(1).get_by_role("link").click()
    expect(page.get_by_role("heading", name="True labels")).to_be_visible()
    page.wait_for_load_state("load")  # Enter on the list page would save nothing
    page.keyboard.press("Enter")  # the prediction was right: save it as it is
    expect(page.locator("#saved")).to_be_visible()
    page.get_by_role("link", name="Live F1").click()
    expect(page.get_by_text("2 reviewed predictions,")).to_be_visible()
    assert float(score.inner_text()) > 0
    assert second != first
    swaps = page.get_by_role("table", name="Predicted but false")
    expect(swaps.locator("tbody tr").first).to_contain_text(dropped)
    expect(swaps.locator("tbody tr").first).to_contain_text(added)
    _shoot(page, "live-f1", shots)

    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys['admin']}"}) as c:
        run_id = c.post("/v1/benchmarks", json=BENCH_RUN).json()["id"]
        for _ in range(1200):
            run = c.get(f"/v1/benchmarks/{run_id}").json()
            if run["status"] != "running" and run["report"]:
                break
            time.sleep(0.05)
    assert run["status"] == "finished", run
    page.get_by_role("link", name="Benchmark runs").click()
    expect(page.get_by_role("link", name="ui-smoke")).to_be_visible()
    _shoot(page, "benchmarks", shots)
    page.get_by_role("link", name="ui-smoke").click()
    expect(page.get_by_role("heading", name="Benchmark report: ui-smoke")).to_be_visible()
    plot = page.get_by_role("img", name="Micro-F1 against k")
    expect(plot).to_be_visible()
    assert plot.evaluate("img => img.naturalWidth") > 0
    _shoot(page, "benchmark-report", shots)

    page.set_viewport_size({"width": 800, "height": 1000})  # a tablet
    page.goto(f"{url}/ui/predictions/{first}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 800
    _shoot(page, "review-tablet", shots)
    page.close()


@pytest.mark.slow
def test_read_only_and_revoked_keys_in_the_browser(
    served: tuple[str, dict[str, str]], browser: Any, apps: Apps
) -> None:
    url, keys = served
    expect = _browser_tools().expect
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(60_000)
    _sign_in(page, url, keys["predict"])
    page.locator("tr[data-prediction] a").first.click()
    expect(page.locator("#read-only")).to_contain_text("has no feedback scope")
    box = page.get_by_role("checkbox", name="Halo artifacts")
    before = box.is_checked()
    expect(box).to_be_disabled()
    expect(page.get_by_role("button", name="Save review")).to_be_disabled()
    page.keyboard.press(DETECTION_KEYS[1])
    assert box.is_checked() == before
    KeyStore(make_engine(apps.database)).revoke("predict-key")
    page.reload()
    assert "/ui/login" in page.url
    expect(page.get_by_role("status")).to_contain_text("no longer accepted")
    page.close()
