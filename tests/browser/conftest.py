"""What the browser tests share: where the built book is, a local server for it, headless Chromium,
and pages opened with every request off this host blocked."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

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


@pytest.fixture(scope="session")
def server():
    if not (HTML / "index.html").is_file():
        pytest.fail("no built book in _build/html: run `make book` first")
    with serve_directory(HTML) as url:
        yield url


@pytest.fixture(scope="session")
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


# What the site tests look at on every page, read in one visit (each visit of a chapter costs
# about a second): the heading, title, broken images, JavaScript errors, blocks wider than the
# column, figures without captions, captions, empty glued numbers and the links.
PAGE_FACTS_JS = """() => {
  const shown = p => p.offsetParent !== null;
  return {
    heading: (document.querySelector('main h1') || {innerText: ''}).innerText,
    broken: Array.from(document.images).filter(i => i.src.startsWith(location.origin) && i.naturalWidth === 0)
      .map(i => i.src),
    loaded_images: Array.from(document.querySelectorAll('main img')).filter(i => i.naturalWidth > 0).length,
    too_wide: Array.from(document.querySelectorAll('main pre'))
      .filter(p => shown(p) && p.scrollWidth > p.clientWidth + 1)
      .map(p => p.innerText.split('\\n').sort((a, b) => b.length - a.length)[0].slice(0, 90)),
    uncaptioned: Array.from(document.querySelectorAll('main .cell_output img'))
      .filter(i => !i.closest('details') && !i.closest('.tag_hide-cell') && !i.closest('figure')).map(i => i.src),
    captions: Array.from(document.querySelectorAll('main figure figcaption')).map(c => c.innerText.trim()),
    // textContent, not innerText: answers to exercises are folded away
    unfilled: Array.from(document.querySelectorAll('main .pasted-text')).filter(s => !s.textContent.trim()).length,
    links: Array.from(document.querySelectorAll('a[href]')).map(e => e.href),
  };
}"""
# Pages photographed for a look by eye (_build/screenshots): the element scrolled to, or None.
SCREENSHOT_AT = {"book/intro.html": None, "notebooks/06_comparison.html": "main figure"}


@pytest.fixture(scope="session")
def page_facts(browser, server):
    """``page_facts(path)``: what :data:`PAGE_FACTS_JS` reads on the page, with its HTTP status,
    title and JavaScript errors; each page is visited once per session."""
    seen: dict[str, dict] = {}

    def facts(path: str) -> dict:
        if path not in seen:
            with open_page(browser, server, path) as (page, response, errors):
                page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=10_000)
                found = page.evaluate(PAGE_FACTS_JS)
                found.update(status=response.status if response else None, title=page.title(), errors=list(errors))
                if path in SCREENSHOT_AT:
                    if SCREENSHOT_AT[path]:
                        page.evaluate(f"document.querySelector({SCREENSHOT_AT[path]!r}).scrollIntoView()")
                    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(SCREENSHOTS / Path(path).with_suffix(".png").name))
            seen[path] = found
        return seen[path]

    return facts
