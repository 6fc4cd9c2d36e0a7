"""What the browser tests share: where the built book is, a local server for it, headless Chromium,
and pages opened with every request off this host blocked and reported as an error: the book must
work offline (its MathJax and onnxruntime-web are served from the book itself), and a page that
asks another site for anything fails its test."""

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


# The widths the book is read at: a desktop browser, and a phone (an iPhone 12 to 15 is 390 px wide).
DESKTOP, PHONE = 1280, 390


def watch(page, server) -> list[str]:
    """Every error the page meets, as it happens: uncaught exceptions, console errors (none ignored),
    responses of 400 and over, and any request off this host, which is blocked and counted an error."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("response", lambda response: errors.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400 else None)
    origin = urlparse(server).netloc

    def route(route):
        if urlparse(route.request.url).netloc == origin:
            route.continue_()
        else:
            errors.append(f"request off the site: {route.request.url}")
            route.abort()

    page.route("**/*", route)
    return errors


@contextlib.contextmanager
def open_page(browser, server, path, width: int = DESKTOP):
    """Open one page at ``width`` px with every request off this host blocked; yield it, its response
    and the errors seen (see :func:`watch`)."""
    page = browser.new_page(viewport={"width": width, "height": 900 if width >= DESKTOP else 844})
    errors = watch(page, server)
    try:
        yield page, page.goto(server + path, wait_until="load"), errors
    finally:
        page.close()


# Resolves when MathJax has typeset the page (at once where the page has no formula).
MATH_DONE_JS = "() => !window.MathJax || !MathJax.startup || !MathJax.startup.promise || MathJax.startup.promise"

# Elements that stick out of the viewport without a scrolling box of their own that fits in it:
# on a page with none, nothing is cut off and the page cannot be scrolled sideways.
OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const clippedInView = e => {
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      const style = getComputedStyle(p);
      if (style.overflowX !== 'visible' && style.overflowX !== 'clip' && p.getBoundingClientRect().right <= width + 1
          && p.getBoundingClientRect().left >= -1) return true;
    }
    return false;
  };
  const out = [];
  for (const e of document.querySelectorAll('body *')) {
    const box = e.getBoundingClientRect();
    if (!box.width || !box.height || (box.right <= width + 1 && box.left >= -1)) continue;
    if (getComputedStyle(e).visibility === 'hidden' || e.closest('dialog:not([open]), .bd-sidebar-primary, '
        + '.bd-sidebar-secondary, [aria-hidden="true"]')) continue;  // off-screen by design (closed sidebars)
    if (clippedInView(e)) continue;
    out.push(`${e.tagName.toLowerCase()}${e.className && typeof e.className === 'string' ? '.'
      + e.className.trim().split(/\\s+/).join('.') : ''} from ${Math.round(box.left)} to ${Math.round(box.right)} px: `
      + (e.innerText || '').trim().slice(0, 50).replace(/\\s+/g, ' '));
    if (out.length >= 5) break;
  }
  return {page: document.documentElement.scrollWidth, viewport: width, out};
}"""


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
    // the header's launch (Binder, Colab), repository and issue buttons
    launch: Array.from(document.querySelectorAll('.article-header-buttons a[href]')).map(e => e.href)
      .filter(h => /github\\.com|mybinder\\.org|colab\\.research/.test(h)),
    // formulas: every one typeset by MathJax, which came from this site
    formulas: document.querySelectorAll('main .math').length,
    typeset: document.querySelectorAll('main .math mjx-container').length,
    mathjax: Array.from(document.scripts).map(s => s.src).filter(s => /mathjax/i.test(s)),
    // tables wider than their box, without the cue that they scroll (wide-tables.js)
    uncued_tables: Array.from(document.querySelectorAll('main table')).filter(t => {
      const box = t.parentElement;
      return shown(t) && box.scrollWidth > box.clientWidth + 1 && !t.closest('.wide-table.scrolls');
    }).map(t => (t.querySelector('th, td') || {innerText: ''}).innerText.trim().slice(0, 40)),
  };
}"""
# Pages photographed for a look by eye (_build/screenshots): at which width, and the element
# scrolled to (None: the top of the page).
SCREENSHOT_AT = {("book/intro.html", DESKTOP): None, ("notebooks/06_comparison.html", DESKTOP): "main figure",
                 ("book/intro.html", PHONE): None, ("book/summary.html", PHONE): ".wide-table",
                 ("notebooks/08_deployment.html", PHONE): ".wide-table",
                 ("notebooks/04_joint_loss.html", PHONE): "main p mjx-container"}


def screenshot_name(path: str, width: int) -> str:
    return Path(path).stem + ("" if width == DESKTOP else f"-{width}px") + ".png"


@pytest.fixture(scope="session")
def page_facts(browser, server):
    """``page_facts(path, width=DESKTOP)``: what :data:`PAGE_FACTS_JS` reads on the page once its
    images are in and its formulas typeset, what sticks out of the viewport (:data:`OVERFLOW_JS`),
    its HTTP status, title and errors; each page is visited once per session and width."""
    seen: dict[tuple[str, int], dict] = {}

    def facts(path: str, width: int = DESKTOP) -> dict:
        if (path, width) not in seen:
            with open_page(browser, server, path, width) as (page, response, errors):
                page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=10_000)
                page.evaluate(MATH_DONE_JS)
                found = page.evaluate(PAGE_FACTS_JS)
                found.update(overflow=page.evaluate(OVERFLOW_JS), status=response.status if response else None,
                             title=page.title(), errors=list(errors))
                if (path, width) in SCREENSHOT_AT:
                    if SCREENSHOT_AT[path, width]:
                        page.evaluate(f"document.querySelector({SCREENSHOT_AT[path, width]!r}).scrollIntoView()")
                    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(SCREENSHOTS / screenshot_name(path, width)))
            seen[path, width] = found
        return seen[path, width]

    return facts
