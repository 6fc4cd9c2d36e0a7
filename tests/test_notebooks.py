"""The committed notebooks: executed top to bottom with the current code, every number in their
prose glued from their outputs, every figure captioned, every chapter ending with a summary
and exercises whose code solutions run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from earlyexit.freshness import staleness
from earlyexit.results import load
from helpers import glued_texts

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RESULTS = ROOT / "notebooks" / "results"  # the tests' fixtures point repo_root() elsewhere
NOTEBOOK_DIR = ROOT / "notebooks"
# a measured number: a ratio, a share, points or a time (a setting such as "stop 0.8" is not)
MEASURED = re.compile(r"\d\.\d+x|\d%|\d (points|µs|ms|s)\b")
PAGES = sorted((ROOT / "book").glob("*.md"))
CHAPTERS = ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12"]


def load_notebook(path: Path) -> dict:
    return json.loads(path.read_text())


def code_cells(notebook: dict) -> list[dict]:
    return [c for c in notebook["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def markdown(notebook: dict) -> str:
    return "\n\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")


def test_every_chapter_is_a_notebook():
    assert [p.name[:2] for p in NOTEBOOKS] == CHAPTERS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_was_executed_top_to_bottom_in_one_kernel(path):
    counts = [c["execution_count"] for c in code_cells(load_notebook(path))]
    assert None not in counts, f"{path.name}: {counts.count(None)} code cells were never executed"
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: cells were not run in order in a fresh kernel"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_errors_only_where_marked_and_every_marked_cell_errs(path):
    for cell in code_cells(load_notebook(path)):
        marked = "raises-exception" in cell.get("metadata", {}).get("tags", [])
        errored = any(o["output_type"] == "error" for o in cell["outputs"])
        assert marked == errored, f"{path.name}: cell {cell['execution_count']} marked={marked} errored={errored}"


STALE = "re-execute the notebooks with `make notebooks` and commit them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_come_from_the_current_package_and_notebook_code(path):
    why = staleness(load_notebook(path))
    assert why is None, f"{path.name}: {why}: {STALE}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_key_results_are_recorded_with_their_reasons(path):
    recorded = load(path.stem, RESULTS)
    assert recorded, f"no notebooks/results/{path.stem}.json: {STALE}"
    for key, entry in recorded.items():
        assert entry.why.strip(), f"{path.stem}: {key} has a tolerance without a reason"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_progress_bars_or_warnings_in_committed_outputs(path):
    for cell in code_cells(load_notebook(path)):
        streams = [o for o in cell["outputs"] if o["output_type"] == "stream" and o["name"] == "stderr"]
        assert not streams, f"{path.name}: cell {cell['execution_count']} wrote to stderr: {streams[0]['text'][:200]!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_a_caption_saying_what_to_see(path):
    for cell in code_cells(load_notebook(path)):
        figures = [o for o in cell["outputs"] if "image/png" in o.get("data", {})]
        if figures and "hide-cell" not in cell["metadata"].get("tags", []):
            caption = cell["metadata"].get("mystnb", {}).get("figure", {}).get("caption", "")
            assert len(caption.split()) >= 12, f"{path.name}: cell {cell['execution_count']} shows a figure " \
                                               "without a caption of at least a sentence"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_chapter_ends_with_a_summary_and_exercises_with_checked_solutions(path):
    notebook = load_notebook(path)
    text = markdown(notebook)
    assert "## Summary" in text and "## Exercises" in text, f"{path.name}: no Summary or Exercises section"
    summary = text.split("## Summary", 1)[1].split("## Exercises", 1)[0]
    takeaways = re.findall(r"^\* ", summary, flags=re.M)
    assert 3 <= len(takeaways) <= 6, f"{path.name}: {len(takeaways)} takeaways in the summary (3 to 6)"
    exercises = text.split("## Exercises", 1)[1]
    numbered = re.findall(r"^\d+\. \*\*", exercises, flags=re.M)
    assert len(numbered) >= 3, f"{path.name}: fewer than three exercises"
    kinds = " ".join(re.findall(r"^\d+\. \*\*(.+?)\*\*", exercises, flags=re.M)).lower()
    assert "why" in kinds and "predict" in kinds and "code" in kinds, f"{path.name}: exercise kinds are {kinds!r}"
    assert ":class: dropdown" in exercises, f"{path.name}: the conceptual answer is not given in a dropdown"
    solutions = [c for c in code_cells(notebook) if "hide-cell" in c["metadata"].get("tags", [])
                 and "".join(c["source"]).lstrip().startswith("# Solution")]
    assert len(solutions) >= 2, f"{path.name}: fewer than two code solutions"
    for cell in solutions:
        source = "".join(cell["source"])
        assert "assert" in source, f"{path.name}: a solution that checks nothing"
        position = notebook["cells"].index(cell)
        assert all(c["cell_type"] != "markdown" or "##" not in "".join(c["source"])
                   for c in notebook["cells"][position:]), f"{path.name}: solutions must follow the exercises"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_and_printed_lines_fit_the_books_column(path):
    for cell in code_cells(load_notebook(path)):
        for line in "".join(cell["source"]).splitlines():
            assert len(line) <= 79, f"{path.name}: code line of {len(line)} characters: {line!r}"
        for output in cell["outputs"]:
            data = output.get("data", {})
            if output["output_type"] == "stream":
                lines = "".join(output["text"]).splitlines()
            elif output["output_type"] == "execute_result" and data.keys() <= {"text/plain"}:
                lines = "".join(data["text/plain"]).splitlines()  # a cell's last value, shown as text
            else:  # source shown as a code block (tables render as HTML and wrap)
                shown = "".join(data.get("text/markdown", ""))
                lines = shown.splitlines() if shown.startswith("```") else []
            for line in lines:
                assert len(line) <= 80, f"{path.name}: output line of {len(line)} characters: {line!r}"


# Typed numbers are allowed only for constants: settings, requirements and targets the book
# chooses, sizes fixed by the architecture or the data, and the forum's own threshold.
ALLOWED = [
    (r"\b\d+ x \d+(?: x \d+)*", "tensor sizes"),
    (r"\b[01]\.0\b", "thresholds at the extremes"),
    (r"\(0\.3, 1\)|weight of 0\.3", "the unequal exit weights of Chapter 4"),
    (r"\b(?:torch|Python) \d+\.\d+(?:(?:,| or| and) \d+\.\d+)*", "versions"),
    (r"\b1x\b", "no speedup"),
    (r"\b0\.5\b", "the forum's threshold; a sigmoid of 0"),
    (r"\b0\.9\b", "the training gate; a stated confidence"),
    (r"\b0\.2 points?\b", "the accuracy requirement of Chapter 5"),
    (r"\b25%", "the book's FLOPs budget"),
    (r"\b50%(\s+\(exploratory\)| of the FLOPs)", "Chapter 6's second budget"),
    (r"\b5% (chance|divided)", "the level the Holm family shares"),
    (r"\b(2\.0|1\.5|1\.8)x\b", "speed targets"),
    (r"\b(90% of the time|about 90%)", "what a calibrated 0.9 means"),
    (r"\b5e-3\b", "the learning rate"),
    (r"\b90% of resamples\b", "the interval reported"),
    (r"\b95%", "the confidence level of every interval"),
    (r"\b99%", "the agreement Chapter 11's exit rule must keep"),
    (r"\b1 ms\b", "the p99 target of Chapter 9"),
    (r"up to 3x|\b2\.16x|\b1\.82x", "the literature's speedups, labelled as theirs (Chapter 11)"),
]
NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*) ?(%|x\b|µs|ms|s\b|seconds?\b|minutes?\b|hours?\b)"
                    r"|(?<![\w.])\d+\.\d+(?![\w.])")


def prose_numbers(text: str) -> list[str]:
    """Numbers in prose that look like results (decimals, percentages, speedups, times), outside
    glue, code, math, links, citations and directives."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)  # directives and code blocks
    text = re.sub(r"\$\$.*?\$\$|\$[^$]+\$", " ", text, flags=re.S)  # math
    text = re.sub(r"\{[\w:]+\}`[^`]*`", " ", text)  # roles: glue, cite, ...
    text = re.sub(r"`[^`]*`", " ", text)  # code spans
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    for pattern, _ in ALLOWED:
        text = re.sub(pattern, " ", text)
    return [m.group(0) for m in NUMBER.finditer(text)]


def test_the_scanner_finds_typed_results_and_spares_glue_and_constants():
    assert prose_numbers("accuracy 91.2% and 1.85x faster in 12 ms") == ["91.2%", "1.85x", "12 ms"]
    assert prose_numbers("accuracy {glue:text}`acc` with `x = 0.73` and $0.018$") == []
    assert prose_numbers("the forum's 0.5, the gate of 0.9, within 0.2 points, 25% of the FLOPs") == []
    assert prose_numbers("28x28 images, 16 x 14 x 14 features, 10,000 test images, 3 seeds") == []
    assert prose_numbers("exit 2 {glue:text}`acc` %, threshold 1.0, torch 2.14") == []


@pytest.mark.parametrize("path", NOTEBOOKS + PAGES, ids=lambda p: p.name)
def test_no_result_numbers_are_typed_into_the_prose(path):
    text = markdown(load_notebook(path)) if path.suffix == ".ipynb" else path.read_text()
    found = prose_numbers(text)
    assert not found, f"{path.name}: typed numbers {found}: glue them from an output, or add a constant to ALLOWED"


@pytest.mark.parametrize("path", NOTEBOOKS + PAGES, ids=lambda p: p.name)
def test_every_glued_key_in_the_prose_exists(path):
    if path.suffix == ".ipynb":
        notebook = load_notebook(path)
        text, own = markdown(notebook), path.stem
    else:
        text, own = path.read_text(), None
    for reference in re.findall(r"\{glue:text\}`([^`]+)`", text):
        document, _, key = reference.rpartition("::")
        chapter = Path(document).stem if document else own
        assert chapter, f"{path.name}: {reference} names no notebook"
        kept, key = load(chapter, RESULTS), key.split(":")[0]
        if key in kept:
            continue
        # Not kept: then a name or words that follow a kept verdict ("ORT two stages", "block 3
        # adds no accuracy ..."), glued by that chapter, and never a measured number.
        texts = glued_texts(load_notebook(NOTEBOOK_DIR / f"{chapter}.ipynb"))
        assert key in texts, f"{path.name}: {reference} is neither kept nor glued by {chapter}"
        said = texts[key]
        for pattern, _ in ALLOWED:  # the book's own constants, e.g. a 2.0x target
            said = re.sub(pattern, " ", said)
        assert not MEASURED.search(said), \
            f"{path.name}: {reference} glues a measured number ({texts[key]!r}) without keeping it"


# --- what nbval compares verbatim -------------------------------------------------------------

VERBATIM = "nbval-check-output"
# a number that training or timing could decide: a decimal or a percentage
DECIDED = re.compile(r"\d+(\.\d+)?\s?%|\d+\.\d+")
PACKAGE_SOURCE = "\n".join(p.read_text() for p in sorted((ROOT / "src" / "earlyexit").glob("*.py")))


def printed(cell: dict) -> str:
    """Everything a cell printed: streams, plain-text results and error messages."""
    parts = []
    for output in cell.get("outputs", []):
        parts.append("".join(output.get("text", "")))
        parts.append("".join(output.get("data", {}).get("text/plain", "")))
        parts.append(output.get("evalue", ""))
    return "\n".join(parts)


def decided_numbers(cell: dict) -> list[str]:
    """Numbers a verbatim-compared cell printed that neither its code nor the package's source spells
    out: they came from a computation, and a model trained or timed elsewhere would print others."""
    code = "".join(cell["source"])
    return [m.group(0) for m in DECIDED.finditer(printed(cell))
            if m.group(0) not in code and m.group(0) not in PACKAGE_SOURCE]


def test_the_verbatim_check_catches_a_printed_threshold():
    doctored = {"cell_type": "code", "source": ["print(op.summary())"], "metadata": {"tags": [VERBATIM]},
                "outputs": [{"output_type": "stream", "name": "stdout",
                             "text": ["threshold 0.707: 85.4% of test images leave at exit 1\n"]}]}
    assert decided_numbers(doctored) == ["0.707", "85.4%"]
    source_shown = {**doctored, "outputs": [{"output_type": "stream", "name": "stdout",
                                             "text": ["BUDGET_SHARE = 0.25\n"]}]}
    assert decided_numbers(source_shown) == []  # a constant of the package's code


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_compared_verbatim_print_nothing_training_or_timing_decides(path):
    """nbval compares these cells' outputs character for character, on any CPU: a number that a
    trained model or a clock produced would fail there (Chapter 8's threshold once did)."""
    for cell in code_cells(load_notebook(path)):
        if VERBATIM in cell["metadata"].get("tags", []):
            found = decided_numbers(cell)
            assert not found, f"{path.name}: cell {cell['execution_count']} is compared verbatim and prints {found}"


def test_the_makefile_runs_every_timing_chapter_alone():
    """`make test` lets untimed chapters share the CPU with other work: a chapter that times
    something and is missing from the Makefile's TIMED list would be timed on a busy machine."""
    makefile = (ROOT / "Makefile").read_text()
    listed = re.search(r"^TIMED := \$\(addprefix notebooks/,(.*?)\)$", makefile, re.M | re.S)
    assert listed, "the Makefile needs its TIMED list"
    timed = set(re.findall(r"\d\d_\w+\.ipynb", listed.group(1)))
    times = re.compile(r"keep_ratio|keep_target|time_interleaved|compare_runtimes|threaded\(")
    def code(path):
        return "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"]
                       if c["cell_type"] == "code")
    assert timed == {p.name for p in NOTEBOOKS if times.search(code(p))}


def test_every_timing_chapter_fixes_the_allocator_before_it_loads_anything():
    """A chapter that times eager PyTorch at large batches must meet the same allocator policy
    in every run (earlyexit.allocator; Chapter 7 measures why): set before the data is loaded."""
    times = re.compile(r"keep_ratio|keep_target|time_interleaved|compare_runtimes|threaded\(")
    for path in NOTEBOOKS:
        code = "\n".join("".join(c["source"]) for c in code_cells(load_notebook(path)))
        if not times.search(code):
            continue
        fixed = code.find('set_allocator("keep")')
        assert fixed >= 0, f"{path.name} times without fixing the allocator: call set_allocator(\"keep\")"
        loads = [i for i in (code.find("load_splits("), code.find("torch.load("), code.find("load_model("))
                 if i >= 0]
        assert all(fixed < i for i in loads), f"{path.name}: set_allocator comes after something is loaded"
