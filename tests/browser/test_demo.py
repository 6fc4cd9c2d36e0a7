"""Chapter 9's live model: the exported early-exit graph runs in headless Chromium with onnxruntime-web
(WASM, one thread) and answers every gallery image as Python's ONNX Runtime did. Nothing heavy loads
before the reader picks or draws an image; the model is warmed up before the first time is shown; the
page shows the threshold, and for an image that went on, the exit-1 score that sent it on; a thumbnail
does not tell its class before the model answers; a drawing, a blank image and a white one are
answered as Python answers them; and the page says so plainly where WebAssembly is missing.

Needs ``make book`` first (``make browser`` does both) and Debian's ``chromium``.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import re
import statistics

import numpy as np
from conftest import HTML, PHONE, ROOT, open_page

PAGE = "notebooks/09_serving.html"
DEMO = ROOT / "book" / "_static" / "demo"
RECORDED = json.loads((DEMO / "gallery.json").read_text())
CLASSES = RECORDED["classes"]
# What the page must not fetch before the reader asks: the runtime and the model (about 14 MB).
HEAVY = ("/_static/ort/ort-wasm", "/_static/demo/early_exit.onnx")
RUNTIME_SCRIPT = "/_static/ort/ort.wasm.min.js"
OUTPUT = "#early-exit-demo .demo-output"  # a gallery image's answer
DRAWN = "#early-exit-demo .demo-draw-output"  # a drawing's answer, beside the pad
# Everything the page has fetched since it opened.
RESOURCES_JS = "performance.getEntriesByType('resource').map(e => e.name)"
TIME = re.compile(r"time in this browser:\s*([0-9.]+) ms")


def pixels_of(item: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(item["pixels"]), dtype="<f4").reshape(1, 1, 28, 28)


def uniform(intensity: float) -> np.ndarray:
    """An image of one grey level (0: blank, 1: white), normalised as the training images were."""
    return np.full((1, 1, 28, 28), (intensity - RECORDED["mean"]) / RECORDED["std"], dtype=np.float32)


@functools.cache
def python_graph():
    """Python's ONNX Runtime on the page's graph, with the exit-1 score added to its outputs as the page
    adds it (the input of the exit decision's ``Greater``), and the threshold read from the graph."""
    import onnx
    import onnxruntime
    from onnx import numpy_helper

    model = onnx.load(str(DEMO / "early_exit.onnx"))
    scalars = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer if int(np.prod(t.dims)) == 1}
    (decision,) = [n for n in model.graph.node if n.op_type in ("Greater", "GreaterOrEqual")
                   and n.input[1] in scalars]
    score, threshold = decision.input[0], float(scalars[decision.input[1]])
    model.graph.output.append(onnx.helper.make_tensor_value_info(score, onnx.TensorProto.FLOAT, None))
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def answer(pixels: np.ndarray) -> dict:
        logits, exit_number, exit1 = session.run(["logits", "exit_number", score], {"images": pixels})
        return {"prediction": int(logits[0].argmax()), "exit": int(exit_number[0]), "exit1": float(exit1[0])}

    return answer, threshold


def shown(page, where: str = OUTPUT) -> str:
    return page.locator(where).first.inner_text()


def pick(page, index: int) -> str:
    """Click gallery image ``index`` and return what the page then says about it."""
    before = shown(page)
    page.locator("#early-exit-demo .demo-gallery button").nth(index).click()
    page.wait_for_function(f"(t => {{ const now = document.querySelector({OUTPUT!r}).innerText;"
                           f" return now !== t && now.includes('ms'); }})({before!r})", timeout=60_000)
    return shown(page)


def wait_for_gallery(page) -> None:
    page.wait_for_function("document.querySelectorAll('#early-exit-demo .demo-gallery button').length === 24"
                           " && document.querySelector('#early-exit-demo canvas.demo-pad') !== null", timeout=10_000)


def test_the_model_in_the_browser_answers_as_python_onnx_runtime_did(browser, server):
    assert (HTML / "_static" / "ort" / "ort-wasm-simd-threaded.wasm").is_file(), "run `make book` (it fetches ORT-web)"
    with open_page(browser, server, PAGE) as (page, _, errors):
        page.wait_for_function("window.earlyExitDemo !== undefined", timeout=10_000)
        answers = page.evaluate("window.earlyExitDemo.runAll()")
        assert errors == [], f"errors, or requests off the site: {errors}"
        status = page.locator("#early-exit-demo .demo-status")
        assert status.get_attribute("data-kind") == "ready", status.inner_text()
    expected = RECORDED["images"]
    answer, _ = python_graph()
    assert len(answers) == len(expected) == 24
    for got, want in zip(answers, expected):
        assert got["prediction"] == want["prediction"] and got["exit"] == want["exit_number"], want["index"]
        worst = max(abs(a - b) for a, b in zip(got["logits"], want["logits"]))
        assert worst <= RECORDED["logits_tolerance"], (want["index"], worst)
        assert 0 < got["confidence"] <= 1 and math.isfinite(got["milliseconds"])
        assert abs(got["exit1Confidence"] - answer(pixels_of(want))["exit1"]) <= 1e-4, want["index"]
    assert {a["exit"] for a in answers} == {1, 2}  # the gallery shows both exits


def test_nothing_heavy_loads_before_the_reader_picks_or_draws_an_image(browser, server):
    with open_page(browser, server, PAGE) as (page, _, errors):
        wait_for_gallery(page)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)
        requested = page.evaluate(RESOURCES_JS)
        heavy = [url for url in requested if any(part in url for part in HEAVY)]
        assert heavy == [], f"fetched before the reader asked: {heavy}"
        assert not page.evaluate("window.earlyExitDemo.loaded")
        assert "loads" in page.locator("#early-exit-demo .demo-status").inner_text()
        # the runtime's own script too (50 kB): demo.js loads it when needed, the page's markup must not
        assert not any(RUNTIME_SCRIPT in url for url in requested), \
            "Chapter 9's markup still loads ort.wasm.min.js: remove its <script> tag (demo.js loads it when needed)"
        pick(page, 0)
        requested = page.evaluate(RESOURCES_JS)
        assert all(any(part in url for url in requested) for part in (*HEAVY, RUNTIME_SCRIPT)), requested
        assert page.evaluate("window.earlyExitDemo.loaded")
        assert errors == [], errors


def test_a_thumbnail_tells_its_class_only_after_the_models_answer(browser, server):
    with open_page(browser, server, PAGE) as (page, _, errors):
        wait_for_gallery(page)
        buttons = page.locator("#early-exit-demo .demo-gallery button")
        for i in range(buttons.count()):
            label = " ".join(filter(None, [buttons.nth(i).get_attribute("title"),
                                           buttons.nth(i).get_attribute("aria-label")]))
            assert not any(name in label for name in CLASSES), f"thumbnail {i} tells its class: {label!r}"
        item = RECORDED["images"][2]
        text = pick(page, 2)
        assert CLASSES[item["prediction"]] in text and f"exit {item['exit_number']}" in text
        assert "confidence" in text and "time in this browser" in text
        assert CLASSES[item["label"]] in buttons.nth(2).get_attribute("title")
        assert errors == []


def test_the_first_time_shown_is_not_the_warm_up(browser, server):
    with open_page(browser, server, PAGE) as (page, _, errors):
        wait_for_gallery(page)
        first = float(TIME.search(pick(page, 0)).group(1))
        warm_up = page.evaluate("window.earlyExitDemo.warmupMilliseconds")
        later = [float(TIME.search(pick(page, i)).group(1)) for i in (1, 2, 3, 0)]
        assert warm_up is not None, "the model was not warmed up"
        assert first < warm_up, f"the first time shown ({first} ms) is the warm-up's ({warm_up} ms)"
        assert first <= 3 * max(later) + 1.0, f"the first time shown ({first} ms) against later ones {later}"
        assert statistics.median(later) < warm_up
        assert errors == []


def test_the_threshold_and_the_exit1_score_that_sent_an_image_on_are_shown(browser, server):
    answer, threshold = python_graph()
    deep = next(i for i, item in enumerate(RECORDED["images"]) if item["exit_number"] == 2)
    early = next(i for i, item in enumerate(RECORDED["images"]) if item["exit_number"] == 1)
    with open_page(browser, server, PAGE) as (page, _, errors):
        wait_for_gallery(page)
        text = pick(page, deep)
        assert f"{threshold:.3f}" in page.locator("#early-exit-demo .demo-status").inner_text()
        assert abs(page.evaluate("window.earlyExitDemo.threshold") - threshold) < 1e-6
        item, python = RECORDED["images"][deep], answer(pixels_of(RECORDED["images"][deep]))
        assert python["exit1"] <= threshold  # that is why it went on
        assert f"exit-1 confidence (max softmax): {python['exit1']:.3f}, not above the threshold {threshold:.3f}" \
            in text, text
        assert "exit 2" in text and CLASSES[item["prediction"]] in text and "exit-2 confidence" in text
        text = pick(page, early)
        python = answer(pixels_of(RECORDED["images"][early]))
        assert f"{python['exit1']:.3f}, above the threshold {threshold:.3f}" in text and "exit 1" in text, text
        assert errors == []


def test_a_drawing_a_blank_image_and_a_white_one_are_answered_as_python_answers_them(browser, server):
    answer, _ = python_graph()
    with open_page(browser, server, PAGE, PHONE) as (page, _, errors):
        wait_for_gallery(page)
        pad = page.locator("#early-exit-demo canvas.demo-pad")
        pad.scroll_into_view_if_needed()
        box = pad.bounding_box()
        page.mouse.move(box["x"] + 0.3 * box["width"], box["y"] + 0.2 * box["height"])
        page.mouse.down()
        for x, y in ((0.7, 0.2), (0.7, 0.8), (0.3, 0.8), (0.3, 0.2)):  # a square outline: a "bag"?
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
        page.mouse.up()
        page.wait_for_function(f"document.querySelector({DRAWN!r}).innerText.includes('your drawing')",
                               timeout=60_000)
        drawn = page.evaluate("""() => { const c = document.querySelector('#early-exit-demo .demo-seen');
            const d = c.getContext('2d').getImageData(0, 0, 28, 28).data;
            let lit = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 0) lit++; return [c.width, lit]; }""")
        assert drawn[0] == 28 and 20 < drawn[1] < 784, f"the 28 x 28 image the model saw: {drawn}"
        for button, intensity in (("Clear", 0.0), ("Fill white", 1.0)):
            before = shown(page, DRAWN)
            page.get_by_role("button", name=button).click()
            page.wait_for_function(f"(t => document.querySelector({DRAWN!r}).innerText !== t)({before!r})")
            text = shown(page, DRAWN)
            python = answer(uniform(intensity))
            assert f"predicted: {CLASSES[python['prediction']]}" in text and f"exit {python['exit']}" in text, \
                (button, python, text)
            assert f"{python['exit1']:.3f}" in text, (button, python, text)
        assert errors == []


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
