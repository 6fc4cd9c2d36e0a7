"""Tables and number formats."""

import pytest

from earlyexit.report import format_mean_sd, table


def test_table_renders_markdown_and_escaped_html():
    t = table(["a", "b"], [[1, "**x**"], [2, "<y>"]])
    assert t._repr_markdown_().splitlines() == ["| a | b |", "|---|---|", "| 1 | **x** |", "| 2 | <y> |"]
    assert "<td><strong>x</strong></td>" in t._repr_html_() and "<td>&lt;y&gt;</td>" in t._repr_html_()
    with pytest.raises(ValueError, match="2 cells"):
        table(["a", "b"], [[1]])


def test_number_formats():
    assert format_mean_sd([0.90, 0.92]) == "91.00 ± 1.41"
    assert format_mean_sd([0.5], digits=1) == "50.0 ± 0.0"


def test_a_scale_must_be_a_number_and_a_row_a_sequence_of_cells():
    with pytest.raises(ValueError, match="scale must be a finite number"):
        format_mean_sd([0.5, 0.6], scale=float("nan"))  # it showed "nan ± nan"
    with pytest.raises(ValueError, match="digits must be an int >= 0"):
        format_mean_sd([0.5, 0.6], digits=-1)
    with pytest.raises(TypeError, match=r"rows\[0\] must be a sequence of cells, got str"):
        table(["a", "b"], ["xy"])  # a string was split into one cell per character
