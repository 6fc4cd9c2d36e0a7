"""The built book, opened in headless Chromium: every page of the table of contents loads with
its title and images, no JavaScript error occurs, code fits its column, figures carry
captions, glued numbers are filled in, and internal links resolve.

Needs ``make book`` first (``make browser`` does both) and Debian's ``chromium``.
"""

from __future__ import annotations

from urllib.parse import urldefrag

import pytest
from conftest import CHAPTERS, PAGES, SCREENSHOTS, open_page


def test_toc_has_every_chapter():
    assert len(CHAPTERS) == 12 and PAGES[0] == "book/intro.html" and len(PAGES) == 16


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
                                 ".filter(s => !s.textContent.trim()).length")  # textContent: answers are folded
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
