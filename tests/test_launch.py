"""Where readers run the notebooks besides this machine: Colab and Binder, and the one setting that
names the repository for both (and for every repository and issue link of the book).

* Colab: every chapter starts with the same install cell; run as Colab would run it (with a
  stand-in that records its commands, :mod:`colab_cell`), it installs the book's package with the
  ``[export]`` extra that Chapters 8 and 9 need (onnx, onnxruntime), from ``repository.url``.
  ``.ci/check-colab-install`` runs that pip command for real, in a fresh virtual environment
  against this checkout (about 40 s and PyPI: too slow and too online for the unit tests).
* Binder: ``binder/`` installs the same versions as ``requirements.txt``, torch and torchvision as
  CPU-only wheels, then the package itself with its extra, on a Python the package supports.
* ``repository.url`` in ``_config.yml`` is the only other place the address is written, and the
  README says to change both.
"""

from __future__ import annotations

import os
import re
import tomllib

import pytest
from colab_cell import ROOT, clones, colab_cells, commands, extras_of, pip_installs, repository_url, targets
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

BINDER = ROOT / "binder"
EXTRA = "export"


def pins(path) -> dict[str, str]:
    """``name: version`` of each ``name==version`` line of a requirements file."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{path.name}: {line} is not pinned"
            found[requirement.name.lower()] = spec.version
    return found


def the_cell() -> str:
    cells = colab_cells()
    assert cells and all(cells.values()), f"notebooks without a Colab cell: {[n for n, c in cells.items() if not c]}"
    assert len(set(cells.values())) == 1, "the chapters' Colab cells differ"
    return next(iter(cells.values()))


def test_every_chapter_has_the_same_colab_cell_guarded_by_colabs_variable():
    cell = the_cell()
    assert 'if "COLAB_RELEASE_TAG" in os.environ:' in cell
    calls = commands(cell)
    assert calls, "the cell does nothing on Colab"


def test_the_colab_cell_installs_the_package_with_the_export_extra():
    calls = commands(the_cell())
    installs = pip_installs(calls)
    assert len(installs) == 1, f"one pip install expected, got {installs}"
    (target,) = targets(installs[0])
    assert EXTRA in extras_of(target), (
        f"the Colab cell installs {target!r}: without [{EXTRA}], Chapters 8 and 9 (onnx, onnxruntime) fail on Colab. "
        "Note that pip takes extras with a VCS URL only as 'earlyexit[export] @ git+https://...'.")


def test_the_colab_cell_fetches_the_book_from_repository_url():
    calls = commands(the_cell())
    url = repository_url()
    fetched = [u for u, _ in clones(calls)] + [t for args in pip_installs(calls) for t in targets(args) if "://" in t]
    assert fetched, "the cell fetches nothing from the repository"
    for address in fetched:
        assert url in address, f"the Colab cell fetches {address!r}, not repository.url of _config.yml ({url})"


def test_only_the_config_and_the_colab_cells_name_the_repository():
    """Moving the repository means changing repository.url and the Colab cells, as the README says."""
    owner_and_name = re.sub(r"^https://github\.com/", "", repository_url())
    named = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not d.endswith(".egg-info")
                   and d not in ("_build", "data", "node_modules", "__pycache__")]
        for name in files:
            if name.endswith((".md", ".yml", ".yaml", ".toml", ".txt", ".py", ".js", ".cfg", ".ipynb")) \
                    or name in ("Makefile", "postBuild"):
                path = os.path.join(folder, name)
                with open(path, errors="ignore") as handle:
                    if owner_and_name in handle.read():
                        named.append(os.path.relpath(path, ROOT))
    allowed = {"_config.yml"} | {f"notebooks/{n}" for n in colab_cells()}
    assert set(named) <= allowed, f"the repository's address is also written in {sorted(set(named) - allowed)}"
    readme = (ROOT / "README.md").read_text()
    assert "repository.url" in readme and "Colab" in readme


def test_binder_installs_the_books_versions_with_cpu_only_torch():
    book, binder = pins(ROOT / "requirements.txt"), pins(BINDER / "requirements.txt")
    text = (BINDER / "requirements.txt").read_text()
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in text
    for name in ("torch", "torchvision"):
        assert binder[name] == f"{book[name]}+cpu", f"binder pins {name} {binder[name]}, the book {book[name]}"
    for name, version in binder.items():
        if name not in ("torch", "torchvision"):
            assert book.get(name) == version, f"binder pins {name}=={version}, requirements.txt {book.get(name)}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = [Requirement(r).name.lower() for r in project["dependencies"]]
    needed += [Requirement(r).name.lower() for r in project["optional-dependencies"][EXTRA]]
    assert sorted(set(needed) - set(binder)) == [], "binder/requirements.txt misses some of the package's needs"


def test_binder_installs_the_package_with_its_extra_on_a_python_it_supports():
    post_build = BINDER / "postBuild"
    text = post_build.read_text()
    assert text.startswith("#!/bin/bash") and "set -e" in text and os.access(post_build, os.X_OK)
    assert re.search(r'pip install[^\n]* -e "?\.\[export\]"?', text), "postBuild must install the package, -e .[export]"
    (runtime,) = (BINDER / "runtime.txt").read_text().split()
    python = Version(runtime.removeprefix("python-"))
    supported = SpecifierSet(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"])
    assert python in supported, f"Binder's Python {python} is not one the package supports ({supported})"


@pytest.mark.parametrize("name", ["requirements.txt", "requirements-dev.txt", "pyproject.toml", ".ci/run", "Makefile"])
def test_ci_installs_as_before_binder_is_its_own_folder(name):
    """Binder's folder is read by Binder only: nothing CI or `make` runs refers to it."""
    assert "binder/" not in (ROOT / name).read_text()
