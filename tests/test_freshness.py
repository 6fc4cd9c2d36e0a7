"""The freshness stamp: one hash of the package's code that ignores prose, is the same on every
supported Python, and tells a stale notebook from a fresh one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from earlyexit import freshness
from earlyexit.freshness import code_hash, normalised_source, notebook_code_hash, staleness, stamp

FIXTURE = Path(__file__).resolve().parent / "data" / "hash_fixture"
# Computed once and written down: Python 3.10, 3.11, 3.12 and 3.13 all gave this value. A
# Python whose answer differs would call every committed notebook stale: this test fails first.
FIXTURE_HASH = "f36419a1c0ac"


def test_the_hash_of_a_fixed_fixture_is_the_same_on_every_python():
    assert code_hash(FIXTURE) == FIXTURE_HASH


def test_prose_is_removed_and_code_is_kept():
    text = normalised_source((FIXTURE / "module.py").read_text())
    for prose in ("A fixture for", "A class docstring", "ünïcödé", "A method docstring", "Only a", "# comment",
                  "a comment after code", "on its own line", "# trailing"):
        assert prose not in text, prose
    assert "f\"side {side:.2f} # not a comment, {'nested'}\"" in text  # a '#' inside a string stays
    assert '"\\"\\"\\"not a docstring\\"\\"\\""' in text  # a string that is not a docstring stays
    assert "\n\n" not in text and all(line == line.rstrip() for line in text.splitlines())


def test_editing_docstrings_and_comments_keeps_the_hash_but_editing_code_does_not(tmp_path):
    package = tmp_path / "pkg"
    shutil.copytree(freshness.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    before = code_hash(package)
    module = package / "exits.py"
    text = module.read_text()
    module.write_text(text.replace('"""Highest class probability', '"""The highest class probability')
                      .replace("# ", "#  ", 1).replace("\n\n\n", "\n\n\n\n", 1))
    assert code_hash(package) == before
    module.write_text(text.replace("return scores.float() > threshold", "return scores.float() >= threshold"))
    assert code_hash(package) != before
    module.write_text(text)
    (package / "forum_output.txt").write_text("other data")
    assert code_hash(package) != before  # data files count byte for byte


def test_a_stamp_makes_a_notebook_fresh_until_its_code_or_the_package_changes(tmp_path, monkeypatch):
    notebook = {"cells": [{"cell_type": "code", "source": ["x = 1"], "metadata": {}, "outputs": []},
                          {"cell_type": "markdown", "source": ["text"], "metadata": {}}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "chapter.ipynb"
    path.write_text(json.dumps(notebook))
    assert staleness(json.loads(path.read_text())) == "it carries no execution stamp"
    stamp([path])
    stamped = json.loads(path.read_text())
    assert staleness(stamped) is None and freshness.main(["check", str(path)]) == 0
    stamped["cells"][1]["source"] = ["other text"]  # prose: still fresh
    assert staleness(stamped) is None
    stamped["cells"][0]["source"] = ["x = 2"]
    assert staleness(stamped) == "its code cells changed after it was executed"
    assert notebook_code_hash(stamped) != notebook_code_hash(notebook)
    monkeypatch.setattr(freshness, "code_hash", lambda: "something else")
    assert staleness(json.loads(path.read_text())) == "the package changed after it was executed"
    assert freshness.main(["check", str(path)]) == 1 and freshness.main(["stamp"]) == 2


@pytest.mark.parametrize("text, problem", [
    ("", "is empty"),
    ('{"cells": [', "is not valid JSON"),
    ("[]", "must hold a JSON object"),
    ('{"metadata": {}}', "cannot be read: it is not a notebook"),
    ('{"cells": [{"source": "x = 1"}], "metadata": {}}', "cannot be read: cell 0 needs a .cell_type."),
])
def test_a_damaged_notebook_is_refused_with_its_name(tmp_path, text, problem):
    path = tmp_path / "chapter.ipynb"
    path.write_text(text)
    for command in ("check", "stamp"):
        with pytest.raises(ValueError, match=rf"chapter\.ipynb: this notebook {problem}"):
            freshness.main([command, str(path)])
    assert path.read_text() == text  # a damaged notebook is never rewritten
