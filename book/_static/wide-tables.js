// Wide tables scroll inside their own box, with a cue that they do.
//
// A table printed by a notebook (or glued from one into another page) is often wider than the
// column, above all on a phone. custom.css gives every such table a box of its own that scrolls
// sideways (so the page itself never grows wider than the screen); this script marks the boxes
// that really overflow, so that the reader sees it: a line above the table says how many columns
// it has, a shade at the right (and, once scrolled, the left) edge shows that more is there,
// and the box can be scrolled with the keyboard (it takes the focus). Cells of words (a verdict
// with its interval) may wrap, so that a table scrolls only when its numbers need the room.
(function () {
  "use strict";
  const BOXES = "main div.output.text_html, main .pst-scrollable-table-container, main .table-wrapper";

  function columns(box) {
    const row = box.querySelector("tr");
    return row ? Array.from(row.children).reduce((n, cell) => n + (cell.colSpan || 1), 0) : 0;
  }

  function mark(box) {
    if (!box.querySelector("table")) return;
    let frame = box.parentElement;
    if (!frame.classList.contains("wide-table")) {  // a frame for the shades, around the scrolling box
      // Numbers stay on one line (custom.css); a cell of words (a verdict) may wrap instead.
      box.querySelectorAll("td").forEach((cell) => {
        if (cell.textContent.trim().length > 24 && /\s/.test(cell.textContent.trim())) cell.classList.add("words");
      });
      frame = document.createElement("div");
      frame.className = "wide-table";
      box.replaceWith(frame);
      frame.appendChild(box);
      box.addEventListener("scroll", () => shade(frame, box), { passive: true });
    }
    const wide = box.scrollWidth > box.clientWidth + 1;
    frame.classList.toggle("scrolls", wide);
    let cue = frame.querySelector(":scope > .wide-table-cue");
    if (wide && !cue) {
      cue = document.createElement("div");
      cue.className = "wide-table-cue";
      cue.setAttribute("aria-hidden", "true");
      frame.insertBefore(cue, box);
    }
    if (cue) cue.textContent = wide ? `${columns(box)} columns: scroll sideways in the table to see them all \u2192` : "";
    if (wide) {
      box.tabIndex = 0;
      box.setAttribute("role", "region");
      box.setAttribute("aria-label", `table of ${columns(box)} columns, scrolls sideways`);
    } else {
      box.removeAttribute("tabindex");
    }
    shade(frame, box);
  }

  function shade(frame, box) {
    const room = box.scrollWidth - box.clientWidth;
    frame.classList.toggle("more-left", room > 1 && box.scrollLeft > 1);
    frame.classList.toggle("more-right", room > 1 && box.scrollLeft < room - 1);
  }

  function markAll() {
    document.querySelectorAll(BOXES).forEach(mark);
  }

  let pending = null;
  function later() {
    if (pending) cancelAnimationFrame(pending);
    pending = requestAnimationFrame(() => { pending = null; markAll(); });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", markAll);
  else markAll();
  window.addEventListener("load", later);  // fonts and images change widths
  window.addEventListener("resize", later);
  // Opening a folded cell, or the sidebar collapsing, changes the column's width too.
  if (typeof ResizeObserver === "function") {
    const watch = () => {
      const main = document.querySelector("main");
      if (main) new ResizeObserver(later).observe(main);
    };
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", watch);
    else watch();
  }
})();
