"""Every page as a phone (390 px) and a desktop browser (1280 px) show it: nothing sticks out of the
screen (a table too wide for the column scrolls inside its own box, with a cue that it does), no
page can be scrolled sideways, no error occurs, and no request leaves the site, formulas included.

Screenshots of a few pages at both widths are left in _build/screenshots for a look by eye.
Needs ``make book`` first (``make browser`` does both) and Debian's ``chromium``.
"""

from __future__ import annotations

import pytest
from conftest import DESKTOP, HTML, PAGES, PHONE, ROOT

WIDTHS = [PHONE, DESKTOP]
# The chapters with formulas in their prose (dollar math): typeset by MathJax served from the book.
WITH_FORMULAS = ["notebooks/01_forum_model.html", "notebooks/04_joint_loss.html", "notebooks/05_thresholds.html",
                 "notebooks/08_deployment.html", "notebooks/10_many_exits.html", "notebooks/11_token_exits.html"]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_no_page_is_wider_than_the_screen(page_facts, path, width):
    overflow = page_facts(path, width)["overflow"]
    assert overflow["out"] == [], f"{path} at {width} px: sticking out of the screen: {overflow['out']}"
    assert overflow["page"] <= overflow["viewport"], \
        f"{path} at {width} px is {overflow['page']} px wide: it scrolls sideways"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_a_table_wider_than_its_column_says_that_it_scrolls(page_facts, path, width):
    uncued = page_facts(path, width)["uncued_tables"]
    assert uncued == [], f"{path} at {width} px: tables that scroll without a cue (first cells): {uncued}"


@pytest.mark.parametrize("path", PAGES)
def test_on_a_phone_no_page_meets_an_error_or_asks_another_site(page_facts, path):
    """At 1280 px test_site checks the same (every console error and outside request fails)."""
    assert page_facts(path, PHONE)["errors"] == []


def test_the_summary_shows_its_wide_tables_in_scrolling_boxes_on_a_phone(page_facts):
    """The page that once grew to 1,626 px at 390 px (and 1,898 px at 1280 px): its tables scroll."""
    facts = page_facts("book/summary.html", PHONE)
    assert facts["overflow"]["page"] <= PHONE and facts["uncued_tables"] == []


@pytest.mark.parametrize("path", WITH_FORMULAS)
def test_formulas_are_typeset_by_the_books_own_mathjax(page_facts, server, path):
    facts = page_facts(path)
    assert facts["formulas"] >= 1, f"{path}: no formula found (has the prose changed? update WITH_FORMULAS)"
    assert facts["typeset"] == facts["formulas"], f"{path}: {facts['formulas'] - facts['typeset']} formulas left as TeX"
    assert facts["mathjax"] and all(src.startswith(server) for src in facts["mathjax"]), facts["mathjax"]
    assert facts["errors"] == []


def test_every_page_with_a_formula_is_listed(page_facts):
    assert [p for p in PAGES if page_facts(p)["formulas"]] == WITH_FORMULAS


def test_mathjax_and_its_fonts_are_part_of_the_built_book():
    mathjax = HTML / "_static" / "mathjax"
    assert (mathjax / "tex-mml-chtml.js").is_file(), "run `make book` (`make web-deps` fetches MathJax)"
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("*.woff")), "MathJax's fonts are missing"
    assert "cdn.jsdelivr.net" not in (HTML / "notebooks" / "04_joint_loss.html").read_text()


def test_screenshots_were_taken_at_both_widths(page_facts):
    """For a look by eye: the summary's first table and the introduction at 390 px, and more."""
    for path in ("book/intro.html", "book/summary.html", "notebooks/08_deployment.html"):
        page_facts(path, PHONE)
    shots = ROOT / "_build" / "screenshots"
    assert (shots / "summary-390px.png").is_file() and (shots / "intro-390px.png").is_file()
