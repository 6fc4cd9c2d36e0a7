"""The built book, opened in headless Chromium: every page of the table of contents loads with
its title and images, no JavaScript error occurs and no request leaves the site, code fits its
column, figures carry captions, glued numbers are filled in, internal links resolve, and the
pages carry the book's icon.

Needs ``make book`` first (``make browser`` does both) and Debian's ``chromium``.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urldefrag

import pytest
import yaml
from conftest import CHAPTERS, HTML, PAGES, ROOT, open_page


def test_toc_has_every_chapter():
    assert len(CHAPTERS) == 12 and PAGES[0] == "book/intro.html" and len(PAGES) == 16


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_with_title_images_and_no_js_errors(page_facts, path):
    facts = page_facts(path)
    assert facts["status"] == 200
    heading = facts["heading"].strip().rstrip("#").strip()
    assert heading and heading in facts["title"], f"title {facts['title']!r} does not name the page ({heading!r})"
    assert facts["broken"] == [], f"images that did not load: {facts['broken']}"
    assert facts["errors"] == [], f"errors, or requests off the site: {facts['errors']}"


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


def test_every_page_carries_the_books_icon(browser, server):
    with open_page(browser, server, "book/intro.html") as (page, _, errors):
        icon = page.evaluate("document.querySelector('link[rel~=icon]').href")
        assert icon.startswith(server) and icon.endswith(".svg")
        assert page.request.get(icon).status == 200 and errors == []
    for path in PAGES:
        assert 'rel="icon"' in (HTML / path).read_text(), path


def test_the_api_page_shows_no_path_of_the_machine_that_built_it():
    """Defaults are shown as written (autodoc_preserve_defaults), e.g. code_hash(package_dir=...)."""
    text = (HTML / "book" / "api.html").read_text()
    assert str(ROOT) not in text and "/site-packages/" not in text
    assert "package_dir" in text


def test_launch_repository_and_issue_buttons_all_follow_repository_url(page_facts):
    """One setting (repository.url, with repository.branch, in _config.yml) names the repository for
    every Binder, Colab, repository and issue button; the README says so."""
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
    url, branch = repository["url"].rstrip("/"), repository.get("branch", "main")
    owner_and_name = url.removeprefix("https://github.com/")
    prefixes = (url + "/", f"https://mybinder.org/v2/gh/{owner_and_name}/{branch}?",
                f"https://colab.research.google.com/github/{owner_and_name}/blob/{branch}/")
    for path in PAGES:
        launch = page_facts(path)["launch"]
        assert any(link.startswith(url) for link in launch), f"{path}: no repository or issue button"
        assert [link for link in launch if not (link == url or link.startswith(prefixes))] == [], path
        if path in CHAPTERS:
            notebook = path.replace(".html", ".ipynb")
            assert any(link.startswith(prefixes[1]) and notebook in link for link in launch), f"{path}: Binder"
            assert any(link == prefixes[2] + notebook for link in launch), f"{path}: Colab"
