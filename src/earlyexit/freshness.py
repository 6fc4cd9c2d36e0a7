"""Are the committed notebooks' outputs from the current code? One stamp per notebook says.

``make notebooks`` executes every notebook, then stamps it::

    python -m earlyexit.freshness stamp notebooks/*.ipynb

The stamp, in the notebook's metadata, holds two hashes: of the package's code and of the
notebook's own code cells. ``tests/test_notebooks.py`` recomputes both and fails when
either changed after the notebook was executed. That test is the only staleness check.

The package hash ignores docstrings, comments and blank lines, so that editing prose alone
keeps it. It is computed from the source text, with the positions ``ast`` and
``tokenize`` give for docstrings and comments, not from ``ast.dump``, whose output
changes between Python versions: every supported Python gives the same hash
(``tests/test_freshness.py`` pins it for a fixed fixture).
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import sys
import tokenize
from pathlib import Path

from .checks import damaged_file, read_json_file

PACKAGE_DIR = Path(__file__).resolve().parent
STAMP_KEY = "earlyexit"


def _docstring_spans(tree: ast.AST) -> list[tuple[int, int, int, int]]:
    """(first line, first byte, last line, end byte) of every docstring: 1-based lines, UTF-8 byte columns."""
    spans = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            doc = body[0]
            spans.append((doc.lineno, doc.col_offset, doc.end_lineno, doc.end_col_offset))
    return spans


def normalised_source(text: str) -> str:
    """Python source without its docstrings, comments, trailing spaces and blank lines."""
    text_lines = text.splitlines()
    lines = [line.encode() for line in text_lines]
    cut: dict[int, list[tuple[int, int]]] = {}  # 0-based line -> byte ranges to remove

    def remove(first: int, start: int, last: int, end: int) -> None:
        for row in range(first - 1, last):
            low = start if row == first - 1 else 0
            high = end if row == last - 1 else len(lines[row])
            cut.setdefault(row, []).append((low, high))

    for span in _docstring_spans(ast.parse(text)):
        remove(*span)
    for token in tokenize.generate_tokens(io.StringIO(text).readline):
        if token.type == tokenize.COMMENT:  # columns in characters: convert to bytes
            row, column = token.start
            start = len(text_lines[row - 1][:column].encode())
            remove(row, start, row, start + len(token.string.encode()))
    kept = []
    for row, line in enumerate(lines):
        for low, high in sorted(cut.get(row, []), reverse=True):
            line = line[:low] + line[high:]
        line = line.decode().rstrip()
        if line.strip():
            kept.append(line)
    return "\n".join(kept) + "\n"


def code_hash(package_dir: Path = PACKAGE_DIR) -> str:
    """A short hash of the package's code: its modules without prose, and its data files as they are."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(normalised_source(path.read_text()).encode() if path.suffix == ".py" else path.read_bytes())
    return digest.hexdigest()[:12]


def notebook_problem(notebook: object) -> str | None:
    """What keeps ``notebook`` (a parsed .ipynb) from being read as a notebook, or None: it must be an
    object with a "metadata" object and a "cells" list, each cell with a "cell_type" and a "source"
    (text, or a list of lines)."""
    if not isinstance(notebook, dict) or not isinstance(notebook.get("cells"), list) \
            or not isinstance(notebook.get("metadata", {}), dict):
        return 'it is not a notebook (an object with a "cells" list and a "metadata" object)'
    for i, cell in enumerate(notebook["cells"]):
        source = cell.get("source") if isinstance(cell, dict) else None
        lines = [source] if isinstance(source, str) else source if isinstance(source, list) else [None]
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str) \
                or not all(isinstance(line, str) for line in lines):
            return f'cell {i} needs a "cell_type" and a "source" (text or a list of lines)'
    return None


def read_notebook(path: Path) -> dict:
    """The notebook in ``path``; a ValueError names the file when it is damaged or not a notebook."""
    notebook = read_json_file(path, "notebook")
    problem = notebook_problem(notebook)
    if problem:
        raise damaged_file(path, "notebook", f"cannot be read: {problem}")
    return notebook


def _checked(notebook: object) -> dict:
    problem = notebook_problem(notebook)
    if problem:
        raise ValueError(f"notebook: {problem}")
    return notebook


def notebook_code_hash(notebook: dict) -> str:
    """A short hash of a notebook's code cells (their source, in order)."""
    _checked(notebook)
    digest = hashlib.sha256()
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            digest.update("".join(cell["source"]).encode() + b"\0")
    return digest.hexdigest()[:12]


def stamp(paths: list[Path]) -> None:
    """Write the package's and each notebook's code hash into the notebooks' metadata (after executing them)."""
    package = code_hash()
    for path in paths:
        notebook = read_notebook(path)
        hashes = {"package_code": package, "notebook_code": notebook_code_hash(notebook)}
        notebook.setdefault("metadata", {})[STAMP_KEY] = hashes
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")


def staleness(notebook: dict) -> str | None:
    """Why ``notebook``'s outputs may not come from the current code, or None when its stamp matches."""
    recorded = _checked(notebook).get("metadata", {}).get(STAMP_KEY)
    if recorded and not isinstance(recorded, dict):
        return "its execution stamp is not an object"
    if not recorded:
        return "it carries no execution stamp"
    if recorded.get("package_code") != code_hash():
        return "the package changed after it was executed"
    if recorded.get("notebook_code") != notebook_code_hash(notebook):
        return "its code cells changed after it was executed"
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m earlyexit.freshness stamp NOTEBOOK...`` stamps; ``check NOTEBOOK...`` reports stale ones."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] not in ("stamp", "check"):
        print("usage: python -m earlyexit.freshness {stamp|check} NOTEBOOK...", file=sys.stderr)
        return 2
    paths = [Path(p) for p in args[1:]]
    if args[0] == "stamp":
        stamp(paths)
        return 0
    stale = [(p, staleness(read_notebook(p))) for p in paths]
    for path, why in stale:
        if why:
            print(f"{path}: {why}; re-execute it with `make notebooks`", file=sys.stderr)
    return 1 if any(why for _, why in stale) else 0


if __name__ == "__main__":
    raise SystemExit(main())
