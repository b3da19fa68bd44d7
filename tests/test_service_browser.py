"""The web page of emofuse serve in headless Chromium (Debian's ``chromium``, driven by Playwright with
``executable_path``): upload a shipped sample clip and read the predicted label from the page; upload a
file that is not audio and read the error message; at a phone's width, nothing overflows sideways.

Screenshots go to ``$EMOFUSE_SCREENSHOTS`` when set (docs/images/ holds the committed ones), else to the
test's temporary folder. Skipped, with the reason, only when no Chromium binary (or Playwright) is found."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from service_support import live_server  # noqa: E402

from emofuse.inference.predictor import Predictor, sample_clips  # noqa: E402

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_binary() -> str | None:
    given = os.environ.get("EMOFUSE_CHROMIUM")
    if given:
        return given if Path(given).is_file() else None
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


@pytest.fixture(scope="module")
def page():
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary found (looked for " + ", ".join(BROWSERS) + " and $EMOFUSE_CHROMIUM); "
                    "install Debian's chromium package")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
    server = live_server()
    with sync_api.sync_playwright() as play:
        browser = play.chromium.launch(executable_path=binary, args=["--no-sandbox", "--disable-gpu"])
        tab = browser.new_page(viewport={"width": 390, "height": 900})  # a phone's width
        tab.set_default_timeout(30_000)
        tab.goto(server.url + "/")
        tab.wait_for_function("document.getElementById('model-summary').textContent.startsWith('Model')")
        yield tab
        browser.close()


def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("EMOFUSE_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def fits_width(tab) -> bool:
    return tab.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_page_predicts_a_sample_clip(page, tmp_path):
    clip = sample_clips()[0]
    page.set_input_files("#file", str(clip))
    page.wait_for_selector("#result:not([hidden])")
    shown = page.inner_text("#label").strip().lower()
    assert shown == Predictor().predict_file(clip).label
    rows = page.locator("#probs .name").all_inner_texts()
    assert len(rows) == 8 and page.locator("#weights .name").all_inner_texts()[0].lower() == "audio"
    assert page.is_hidden("#error") and fits_width(page)
    assert page.is_visible("#record-mic") and page.is_visible("#record-cam")  # the shipped set-up reads faces
    page.screenshot(path=str(shots(tmp_path) / "service_prediction.png"), full_page=True)


def test_page_shows_a_readable_error_for_a_file_that_is_not_audio(page, tmp_path):
    page.set_input_files("#file", files=[{"name": "notes.wav", "mimeType": "audio/wav",
                                          "buffer": b"These are meeting notes, not a recording.\n" * 20}])
    page.wait_for_selector("#error:not([hidden])")
    message = page.inner_text("#error")
    assert "415" in message and "notes.wav" in message and "not a recognised audio or video file" in message
    assert page.is_hidden("#result") and fits_width(page)
    page.screenshot(path=str(shots(tmp_path) / "service_error.png"), full_page=True)


def test_api_docs_render_without_any_outside_request(page):
    server = live_server()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith(server.url) else None)
    page.goto(server.url + "/docs")
    page.wait_for_selector(".opblock")
    assert "/v1/predict" in page.locator(".opblock-summary-path").all_inner_texts()
    assert outside == []
