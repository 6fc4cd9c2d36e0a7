"""Tables for the notebooks: Markdown that renders in Jupyter and in the book, and can be glued."""

from __future__ import annotations

from collections.abc import Sequence

from IPython.display import Markdown


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Markdown:
    """A Markdown table; cells are shown with ``str``, so format numbers before passing them."""
    if any(len(row) != len(headers) for row in rows):
        raise ValueError(f"every row needs {len(headers)} cells")
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return Markdown("\n".join(lines))


def mean_spread(values: Sequence[float], scale: float = 100.0, digits: int = 2) -> str:
    """``"mean ± std"`` of a few runs (scaled, e.g. to percent)."""
    from .metrics import mean_and_spread

    mean, spread = mean_and_spread([v * scale for v in values])
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"
