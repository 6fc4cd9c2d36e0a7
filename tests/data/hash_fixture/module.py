"""A fixture for the freshness hash: docstrings, comments and code that Python versions tokenise differently."""

import math  # a comment after code


class Shape:
    """A class docstring
    over two lines, with a "quote" and an ünïcödé character."""

    sides: int = 4  # comment

    def area(self, side: float) -> float:
        '''A method docstring in single quotes.'''
        label = f"side {side:.2f} # not a comment, {'nested'}"
        return side * side if label else math.nan


def no_docstring(x):
    # a comment on its own line

    return "\"\"\"not a docstring\"\"\"", x  # trailing
