"""Getting around the book: on a phone (390 px) the chapter list and the page's contents open from
their buttons, and take the reader where they point; at desktop width (1280 px) the menu button
folds the chapter list away and brings it back.

Both broke together once (sphinx-book-theme 1.3.0 with pydata-sphinx-theme 0.17.1 bound the
buttons' handler to a hidden copy of the menu button; see the pins in requirements.txt).

Needs ``make book`` first (``make browser`` does both) and Debian's ``chromium``.
"""

from __future__ import annotations

from conftest import DESKTOP, PHONE, open_page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

PAGE = "notebooks/05_thresholds.html"

# Where an element is and whether it shows: its box, and its visibility.
SHOWN_JS = """selector => {
  const e = document.querySelector(selector);
  const box = e.getBoundingClientRect();
  return {left: box.left, right: box.right, width: box.width,
          visible: getComputedStyle(e).visibility === 'visible' && getComputedStyle(e).display !== 'none'};
}"""


def in_view(page, selector: str, width: int) -> bool:
    where = page.evaluate(SHOWN_JS, selector)
    return where["visible"] and where["width"] > 100 and where["left"] >= -1 and where["right"] <= width + 1


def wait_in_view(page, selector: str, width: int, shown: bool = True) -> None:
    try:
        page.wait_for_function(
            f"""() => {{ const where = ({SHOWN_JS})({selector!r});
                const seen = where.visible && where.width > 100 && where.left >= -1 && where.right <= {width} + 1;
                return seen === {str(shown).lower()}; }}""", timeout=5_000)
    except PlaywrightTimeout:
        where = page.evaluate(SHOWN_JS, selector)
        raise AssertionError(f"{selector} did not {'open' if shown else 'close'} at {width} px within 5 s "
                             f"(now {where})") from None


def test_on_a_phone_the_chapter_list_opens_from_its_button_and_leads_to_a_chapter(browser, server):
    with open_page(browser, server, PAGE, PHONE) as (page, _, errors):
        assert not in_view(page, ".bd-sidebar-primary", PHONE), "the chapter list should start closed on a phone"
        buttons = page.locator(".primary-toggle:visible")
        assert buttons.count() == 1, "one visible menu button"
        buttons.click()
        wait_in_view(page, ".bd-sidebar-primary", PHONE)
        page.keyboard.press("Escape")
        wait_in_view(page, ".bd-sidebar-primary", PHONE, shown=False)
        buttons.click()
        wait_in_view(page, ".bd-sidebar-primary", PHONE)
        link = page.locator(".bd-sidebar-primary a[href*='06_comparison']").first
        assert link.is_visible()
        link.click()
        page.wait_for_url("**/notebooks/06_comparison.html*")
        assert errors == [], errors


def test_on_a_phone_the_page_contents_open_from_their_button_and_lead_to_a_section(browser, server):
    with open_page(browser, server, PAGE, PHONE) as (page, _, errors):
        assert not in_view(page, ".bd-sidebar-secondary", PHONE)
        buttons = page.locator(".secondary-toggle:visible")
        assert buttons.count() == 1, "one visible contents button"
        buttons.click()
        wait_in_view(page, ".bd-sidebar-secondary", PHONE)
        sections = page.locator(".bd-sidebar-secondary nav a[href^='#']")
        assert sections.count() >= 3, "the contents list the page's sections"
        target = sections.nth(1)
        anchor = target.get_attribute("href")
        assert target.is_visible()
        target.click()
        page.wait_for_function(f"location.hash === {anchor!r}")
        assert errors == [], errors


def test_at_desktop_width_the_menu_button_folds_the_chapter_list_away_and_back(browser, server):
    with open_page(browser, server, PAGE, DESKTOP) as (page, _, errors):
        assert in_view(page, ".bd-sidebar-primary", DESKTOP), "the chapter list shows at desktop width"
        article = page.evaluate("document.querySelector('main').getBoundingClientRect().left")
        buttons = page.locator(".primary-toggle:visible")
        assert buttons.count() == 1
        buttons.click()
        wait_in_view(page, ".bd-sidebar-primary", DESKTOP, shown=False)
        page.wait_for_function(f"document.querySelector('main').getBoundingClientRect().left < {article} - 100")
        buttons.click()
        wait_in_view(page, ".bd-sidebar-primary", DESKTOP)
        assert errors == [], errors
