"""Chapter 9's live model: the exported early-exit graph runs in headless Chromium with onnxruntime-web
(WASM, one thread) and answers every gallery image as Python's ONNX Runtime did, and the page says
so plainly where WebAssembly is missing.

Needs ``make book`` first (``make browser`` does both) and Debian's ``chromium``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from conftest import HTML, open_page

PAGE = "notebooks/09_serving.html"
RECORDED = json.loads((Path(__file__).resolve().parents[2] / "book" / "_static" / "demo" / "gallery.json").read_text())


def test_the_model_in_the_browser_answers_as_python_onnx_runtime_did(browser, server):
    assert (HTML / "_static" / "ort" / "ort-wasm-simd-threaded.wasm").is_file(), "run `make book` (it fetches ORT-web)"
    with open_page(browser, server, PAGE) as (page, _, errors):
        page.wait_for_function("window.earlyExitDemo !== undefined", timeout=10_000)
        answers = page.evaluate("window.earlyExitDemo.runAll()")
        assert errors == [], f"JavaScript errors: {errors}"
        status = page.locator("#early-exit-demo .demo-status")
        assert status.get_attribute("data-kind") == "ready", status.inner_text()
    expected = RECORDED["images"]
    assert len(answers) == len(expected) == 24
    for got, want in zip(answers, expected):
        assert got["prediction"] == want["prediction"] and got["exit"] == want["exit_number"], want["index"]
        worst = max(abs(a - b) for a, b in zip(got["logits"], want["logits"]))
        assert worst <= RECORDED["logits_tolerance"], (want["index"], worst)
        assert 0 < got["confidence"] <= 1 and math.isfinite(got["milliseconds"])
    assert {a["exit"] for a in answers} == {1, 2}  # the gallery shows both exits


def test_picking_an_image_shows_its_class_exit_confidence_and_time(browser, server):
    with open_page(browser, server, PAGE) as (page, _, _):
        page.wait_for_function("window.earlyExitDemo !== undefined", timeout=10_000)
        page.evaluate("window.earlyExitDemo.ready")
        page.locator("#early-exit-demo .demo-gallery button").nth(2).click()
        page.wait_for_function("document.querySelector('#early-exit-demo .demo-output').innerText.includes('ms')")
        text = page.locator("#early-exit-demo .demo-output").inner_text()
        item = RECORDED["images"][2]
        assert RECORDED["classes"][item["prediction"]] in text and f"exit {item['exit_number']}" in text
        assert "confidence" in text and "time in this browser" in text


def test_without_webassembly_the_page_says_so_and_stays_readable(browser, server):
    context = browser.new_context()
    context.add_init_script("delete window.WebAssembly;")
    page = context.new_page()
    try:
        page.goto(server + PAGE, wait_until="load")
        page.wait_for_function("document.querySelector('#early-exit-demo .demo-status').dataset.kind === 'error'",
                               timeout=10_000)
        message = page.locator("#early-exit-demo .demo-status").inner_text()
        assert "cannot run here" in message and "WebAssembly" in message
        assert page.locator("main h1").first.inner_text()  # the chapter itself still reads
    finally:
        context.close()
