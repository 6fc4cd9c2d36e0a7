"""Tables and number formats for the notebooks.

A :class:`Table` shows as HTML in Jupyter and in the book, and can be glued to another page
(MyST-NB pastes HTML, not Markdown, across pages); it also has a Markdown form for text.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

from .checks import check_int, check_number
from .stats import mean_and_sd

BOLD = re.compile(r"[*][*](.+?)[*][*]")


class Table:
    """A small table of already formatted cells, with an HTML and a Markdown representation."""

    def __init__(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        for name, value in (("headers", headers), *((f"rows[{i}]", row) for i, row in enumerate(rows))):
            if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):  # a string is not split into cells
                raise TypeError(f"{name} must be a sequence of cells, got {type(value).__name__}")
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


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    """A :class:`Table` (format numbers before passing them; ``**text**`` is shown bold)."""
    return Table(headers, rows)


def format_mean_sd(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> str:
    """``"mean ± sd"`` of a few runs, scaled (by default to percent)."""
    scale, digits = check_number("scale", scale, -math.inf), check_int("digits", digits, 0)
    mean, sd = mean_and_sd([v * scale for v in values])
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


class Source:
    """Python source shown as a highlighted code block (in Jupyter and in the book), not as printed text."""

    def __init__(self, code: str) -> None:
        self.code = code

    def _repr_markdown_(self) -> str:
        return f"```python\n{self.code.rstrip()}\n```"

    def __repr__(self) -> str:
        return self.code


def source(obj: object) -> Source:
    """The source of a function or class from the package, to show in a chapter."""
    import inspect
    import textwrap

    return Source(textwrap.dedent(inspect.getsource(obj)))
