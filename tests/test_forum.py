"""The thread's own numbers, and every quotation of it, exactly as posted."""

import json
import re
from pathlib import Path

import pytest

from earlyexit.forum import THREAD_TITLE, poster_output

ROOT = Path(__file__).resolve().parents[1]
THREAD = (ROOT / "tests" / "data" / "forum-thread.txt").read_text()


def normalise(text: str) -> str:
    """Compare quotations by their words: line breaks, Markdown emphasis and quote styles aside."""
    text = text.replace("“", '"').replace("”", '"').replace("’", "'").replace("‘", "'").replace("``", "`")
    text = re.sub(r"[*_]{1,2}", "", text).replace(" [sic]", "")
    return re.sub(r"\s+", " ", text).strip()


def test_the_poster_printed_100_confidences_25_above_one_half():
    confidences, probabilities = poster_output()
    assert confidences.shape == (100,) and probabilities.shape == (100, 10)
    assert int((confidences > 0.5).sum()) == 25
    assert float(confidences.min()) == pytest.approx(0.4368) and float(confidences.max()) == pytest.approx(0.5535)
    assert float(probabilities.min()) == pytest.approx(0.0731) and float(probabilities.max()) == pytest.approx(0.1355)


def blockquotes():
    """Every Markdown blockquote in the book's pages and notebooks (they quote the thread, and only it)."""
    sources = [(p.name, p.read_text()) for p in (ROOT / "book").glob("*.md")]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        sources += [(path.name, "".join(c["source"])) for c in cells if c["cell_type"] == "markdown"]
    quotes = []
    for name, text in sources:
        block: list[str] = []
        for line in text.splitlines() + [""]:
            if line.startswith(">"):
                block.append(line.lstrip(">").strip())
            elif block:
                quotes.append((name, " ".join(block)))
                block = []
    return quotes


QUOTES = blockquotes()


def test_the_book_quotes_the_thread():
    assert len(QUOTES) >= 3 and THREAD_TITLE in THREAD


@pytest.mark.parametrize("name, quote", QUOTES, ids=[f"{n}:{q[:30]}" for n, q in QUOTES])
def test_every_quotation_is_verbatim(name, quote):
    parts = [p.strip() for p in re.split(r"\[…\]|\[\.\.\.\]|…", normalise(quote)) if p.strip()]
    for part in parts:
        assert part in normalise(THREAD), f"{name}: not in the thread: {part!r}"


@pytest.mark.parametrize("text", ["", "Conf: 0.5000\nPred: 0.1000", "Conf: 0.5000 Pred: 0.1 Pred: 0.2"])
def test_a_damaged_copy_of_the_posters_output_is_refused_with_its_name(tmp_path, monkeypatch, text):
    from earlyexit import forum

    (tmp_path / "forum_output.txt").write_text(text)
    monkeypatch.setattr(forum, "files", lambda package: tmp_path)
    with pytest.raises(ValueError, match=r"forum_output\.txt: this copy of the poster's output must hold 100"):
        poster_output()
