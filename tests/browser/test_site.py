"""The built book, opened in headless Chromium: every page of the table of contents loads with
its title and images, no JavaScript error occurs, code fits its column, figures carry
captions, glued numbers are filled in, and internal links resolve.

Needs ``make book`` first (``make browser`` does both) and Debian's ``chromium``.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urldefrag

import pytest
from conftest import CHAPTERS, PAGES


def test_toc_has_every_chapter():
    assert len(CHAPTERS) == 12 and PAGES[0] == "book/intro.html" and len(PAGES) == 16


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_with_title_images_and_no_js_errors(page_facts, path):
    facts = page_facts(path)
    assert facts["status"] == 200
    heading = facts["heading"].strip().rstrip("#").strip()
    assert heading and heading in facts["title"], f"title {facts['title']!r} does not name the page ({heading!r})"
    assert facts["broken"] == [], f"images that did not load: {facts['broken']}"
    assert facts["errors"] == [], f"JavaScript errors: {facts['errors']}"


@pytest.mark.parametrize("path", PAGES)
def test_code_and_output_blocks_fit_their_column(page_facts, path):
    """No reader has to scroll sideways: every code block and printed output fits at 1280 px."""
    too_wide = page_facts(path)["too_wide"]
    assert too_wide == [], f"{path}: blocks wider than the column, longest lines: {too_wide}"


@pytest.mark.parametrize("path", CHAPTERS)
def test_every_figure_has_a_caption_and_glued_numbers_are_filled_in(page_facts, path):
    facts = page_facts(path)
    assert facts["uncaptioned"] == [], f"{path}: figures without a caption: {facts['uncaptioned']}"
    assert all(len(c.split()) >= 12 for c in facts["captions"])
    assert facts["unfilled"] == 0


def test_chapter_figures_render(page_facts):
    assert page_facts("notebooks/06_comparison.html")["loaded_images"] >= 4


def test_internal_links_resolve(page_facts, server):
    seen: set[str] = set()
    broken: list[str] = []
    for path in PAGES:
        for link in page_facts(path)["links"]:
            url = urldefrag(link).url
            if not url.startswith(server) or url in seen:
                continue
            seen.add(url)
            try:
                urllib.request.urlopen(url, timeout=10).close()
            except urllib.error.URLError as error:  # HTTPError (404, ...) included
                broken.append(f"{path} -> {url} ({error})")
    assert broken == []
    assert sum(1 for url in seen if "/notebooks/" in url) >= 9  # the chapters link to each other
