"""The Colab install cell of the notebooks, as Colab would run it.

Every chapter starts with the same cell, guarded by ``COLAB_RELEASE_TAG`` (set only on Colab),
that fetches the book and installs its package. :func:`commands` runs that cell's code (as IPython
turns it into Python) with Colab's variable set and a stand-in for IPython that records each shell
command and ``%pip`` line, variables expanded, instead of running it. ``tests/test_launch.py``
checks what it records; ``.ci/check-colab-install`` runs its pip command against this checkout in a
fresh virtual environment.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from unittest import mock

import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
GUARD = "COLAB_RELEASE_TAG"


def repository_url() -> str:
    """``repository.url`` of ``_config.yml``: the one setting every launch, repository and issue link follows."""
    return yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"].rstrip("/")


def colab_cells() -> dict[str, str]:
    """Each notebook's cells that mention the Colab guard, by notebook name (one expected per notebook)."""
    found: dict[str, list[str]] = {}
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        found[path.name] = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"
                            and GUARD in "".join(c["source"])]
    return {name: cells[0] if len(cells) == 1 else "\n# ---\n".join(cells) for name, cells in found.items()}


class _Recorder:
    """Stands in for ``get_ipython()``: records shell commands and line magics, expanding ``{expr}``
    and ``$name`` in the caller's namespace as IPython does."""

    def __init__(self, namespace: dict) -> None:
        self.namespace, self.calls = namespace, []

    def _expand(self, text: str) -> str:
        text = re.sub(r"(?<!\$)\$([A-Za-z_]\w*)", r"{\1}", text)
        return eval("f" + repr(text), self.namespace)  # noqa: S307 - the book's own cell

    def system(self, command: str) -> None:
        self.calls.append(("shell", self._expand(command)))

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1) -> None:
        self.calls.append((name, self._expand(line)))

    def getoutput(self, command: str, *args, **kwargs) -> list[str]:
        self.system(command)
        return []


def commands(source: str) -> list[tuple[str, str]]:
    """What the cell does on Colab: ``("shell", command)`` and ``(magic, line)``, in order."""
    from IPython.core.inputtransformer2 import TransformerManager

    code = TransformerManager().transform_cell(source)
    namespace: dict = {"__name__": "__colab_cell__"}
    recorder = _Recorder(namespace)
    namespace["get_ipython"] = lambda: recorder
    fake_environ = dict(os.environ, **{GUARD: "release-stand-in"})
    with mock.patch.dict(os.environ, fake_environ, clear=True):
        exec(compile(code, "<colab cell>", "exec"), namespace)  # noqa: S102 - the book's own cell
    return recorder.calls


def pip_installs(calls: list[tuple[str, str]]) -> list[list[str]]:
    """The arguments of each ``%pip install`` (or ``!pip install``), options included."""
    found = []
    for kind, line in calls:
        words = shlex.split(line)
        if kind == "shell" and words[:2] in (["pip", "install"], ["pip3", "install"]):
            words = words[1:]
        elif kind == "shell" and words[1:4] == ["-m", "pip", "install"] and "python" in words[0]:
            words = words[3:]
        elif kind != "pip":
            continue
        if words[:1] == ["install"]:
            found.append(words[1:])
    return found


def targets(arguments: list[str]) -> list[str]:
    """The requirements of one ``pip install`` (its arguments less its options)."""
    return [a for a in arguments if not a.startswith("-")]


def clones(calls: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(url, folder)`` of each ``git clone`` in the cell."""
    found = []
    for kind, line in calls:
        words = shlex.split(line) if kind == "shell" else []
        if words[:2] == ["git", "clone"]:
            rest = [w for w in words[2:] if not w.startswith("-") and not w.isdigit()]
            url = rest[0]
            folder = rest[1] if len(rest) > 1 else url.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1]
            found.append((url, folder))
    return found


def extras_of(target: str) -> set[str]:
    """The extras a pip target asks for: ``name[a,b] @ url`` or ``path[a,b]``."""
    match = re.search(r"\[([^\]]*)\]", target.split("@", 1)[0] if " @ " in target else target)
    return {e.strip() for e in match.group(1).split(",")} if match else set()


def on_this_checkout(target: str, calls: list[tuple[str, str]], checkout: Path) -> str:
    """The pip target with the repository it fetches replaced by ``checkout``: a clone's folder by the
    checkout's path, a ``git+`` URL of the repository (and its ``@ref``) by a ``file://`` URL of it."""
    for _url, folder in clones(calls):
        if target.startswith(folder):
            return str(checkout) + target[len(folder):]
    pattern = r"git\+" + re.escape(repository_url()) + r"(\.git)?(@[\w./-]+)?"
    return re.sub(pattern, checkout.as_uri(), target)
