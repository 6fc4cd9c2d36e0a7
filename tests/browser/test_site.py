"""The built book, opened in headless Chromium: every page of the table of contents loads with
its title and images, no JavaScript error occurs, code fits its column, figures carry
captions, glued numbers are filled in, and internal links resolve.

Needs ``make book`` first (``make browser`` does both) and Debian's ``chromium``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest
import yaml

from helpers import serve_directory

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
# Debian's package (`chromium`), Ubuntu's name for it, or any Chromium named by $CHROMIUM.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# Chromium's own background traffic is pointless here (no internet) and slows every start.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def toc_pages() -> list[str]:
    """Every file of _toc.yml, as the path of its HTML page."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [f"{Path(f).with_suffix('')}.html" for f in files]


PAGES = toc_pages()
CHAPTERS = [p for p in PAGES if p.startswith("notebooks/")]


@pytest.fixture(scope="module")
def server():
    if not (HTML / "index.html").is_file():
        pytest.fail("no built book in _build/html: run `make book` first")
    with serve_directory(HTML) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM or not Path(CHROMIUM).exists():
        pytest.fail("no Chromium found (looked for $CHROMIUM, chromium and chromium-browser on the PATH): "
                    "install Debian's chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def open_page(browser, server, path):
    """Open one page with every request off this host blocked; yield it, its response and the JS errors seen."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}")
            if msg.type == "error" and "Failed to load resource" not in msg.text else None)
    origin = urlparse(server).netloc
    page.route("**/*", lambda route: route.continue_() if urlparse(route.request.url).netloc == origin
               else route.abort())
    try:
        yield page, page.goto(server + path, wait_until="load"), errors
    finally:
        page.close()


def test_toc_has_every_chapter():
    assert len(CHAPTERS) == 9 and PAGES[0] == "book/intro.html" and len(PAGES) == 13


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_with_title_images_and_no_js_errors(browser, server, path):
    with open_page(browser, server, path) as (page, response, errors):
        assert response is not None and response.status == 200
        heading = page.locator("main h1").first.inner_text().strip().rstrip("#").strip()
        assert heading and heading in page.title(), f"title {page.title()!r} does not name the page ({heading!r})"
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=10_000)
        broken = page.evaluate("Array.from(document.images).filter(i => i.src.startsWith(location.origin)"
                               " && i.naturalWidth === 0).map(i => i.src)")
        assert broken == [], f"images that did not load: {broken}"
        assert errors == [], f"JavaScript errors: {errors}"
        if path == "book/intro.html":
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "intro.png"))


@pytest.mark.parametrize("path", PAGES)
def test_code_and_output_blocks_fit_their_column(browser, server, path):
    """No reader has to scroll sideways: every code block and printed output fits at 1280 px."""
    with open_page(browser, server, path) as (page, _, _):
        too_wide = page.evaluate("""Array.from(document.querySelectorAll('main pre'))
            .filter(p => p.offsetParent !== null && p.scrollWidth > p.clientWidth + 1)
            .map(p => p.innerText.split('\\n').sort((a, b) => b.length - a.length)[0].slice(0, 90))""")
        assert too_wide == [], f"{path}: blocks wider than the column, longest lines: {too_wide}"


@pytest.mark.parametrize("path", CHAPTERS)
def test_every_figure_has_a_caption_and_glued_numbers_are_filled_in(browser, server, path):
    with open_page(browser, server, path) as (page, _, _):
        uncaptioned = page.evaluate("""Array.from(document.querySelectorAll('main .cell_output img'))
            .filter(i => !i.closest('details') && !i.closest('.tag_hide-cell') && !i.closest('figure'))
            .map(i => i.src)""")
        assert uncaptioned == [], f"{path}: figures without a caption: {uncaptioned}"
        captions = page.evaluate("Array.from(document.querySelectorAll('main figure figcaption'))"
                                 ".map(c => c.innerText.trim())")
        assert all(len(c.split()) >= 12 for c in captions)
        unfilled = page.evaluate("Array.from(document.querySelectorAll('main .pasted-text'))"
                                 ".filter(s => !s.innerText.trim()).length")
        assert unfilled == 0


def test_chapter_figures_render(browser, server):
    with open_page(browser, server, "notebooks/06_comparison.html") as (page, _, _):
        figures = page.evaluate("Array.from(document.querySelectorAll('main img')).filter(i => i.naturalWidth > 0)"
                                ".length")
        assert figures >= 4
        page.evaluate("document.querySelectorAll('main figure')[0].scrollIntoView()")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "06_comparison.png"))


def test_internal_links_resolve(browser, server):
    page = browser.new_page()
    seen: set[str] = set()
    broken: list[str] = []
    try:
        for path in PAGES:
            page.goto(server + path, wait_until="domcontentloaded")
            links = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
            for link in links:
                url = urldefrag(link).url
                if not url.startswith(server) or url in seen:
                    continue
                seen.add(url)
                if page.request.get(url).status != 200:
                    broken.append(f"{path} -> {url}")
    finally:
        page.close()
    assert broken == []
    assert sum(1 for url in seen if "/notebooks/" in url) >= 9  # the chapters link to each other
