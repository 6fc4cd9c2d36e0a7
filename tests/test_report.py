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
