"""Tables for the notebooks: shown as HTML or Markdown in Jupyter and in the book, and gluable
across pages (MyST-NB pastes HTML, not Markdown, into another document)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence


BOLD = re.compile(r"[*][*](.+?)[*][*]")


class Table:
    """A small table with both a Markdown and an HTML representation."""

    def __init__(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        if any(len(row) != len(headers) for row in rows):
            raise ValueError(f"every row needs {len(headers)} cells")
        self.headers = [str(h) for h in headers]
        self.rows = [[str(cell) for cell in row] for row in rows]

    def _repr_markdown_(self) -> str:
        lines = ["| " + " | ".join(self.headers) + " |", "|" + "---|" * len(self.headers)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in self.rows])

    def _repr_html_(self) -> str:
        def cell(text: str, tag: str) -> str:
            content = BOLD.sub(r"<strong>\1</strong>", html.escape(text))
            return f"<{tag}>{content}</{tag}>"

        head = "".join(cell(h, "th") for h in self.headers)
        body = "".join("<tr>" + "".join(cell(c, "td") for c in row) + "</tr>" for row in self.rows)
        return f'<table class="table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def __repr__(self) -> str:
        return self._repr_markdown_()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """A table of already formatted cells (format numbers before passing them)."""
    return Table(headers, rows)


def mean_spread(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> str:
    """``"mean ± std"`` of a few runs (scaled, e.g. to percent)."""
    from .metrics import mean_and_spread

    mean, spread = mean_and_spread([v * scale for v in values])
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"
