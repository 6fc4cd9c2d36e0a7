"""Words follow verdicts: every sentence of the book that compares, ranks or explains a difference
either carries a glued verdict or sits next to one, and agrees with it.

A *verdict* is a glued number whose text says what an interval says: "no measurable difference
(95% CI ...)", "+0.86 points (95% CI ...)", "1.65x faster (95% CI ...)", "met" or "missed"
(its text is read from the notebook that glued it). A sentence is *comparative* when it uses
one of the words in ``COMPARATIVE`` outside code and glue. The scanner fails

* a comparative sentence (questions aside) with no verdict in it or in the sentence before or after it (in the
  same paragraph or list item);
* a sentence that ranks (``RANKING``) when every verdict beside it says "no measurable
  difference", unless it negates ("no", "not", ...);
* a sentence that says "no measurable difference" in its own words when every verdict beside
  it found one;
* a verdict glued after "by", "is" and the like: null, it would read "changes exit 1 by no
  measurable difference" or "is no measurable difference than", and a verdict that is not
  null on this machine may be null on the next.

Questions claim nothing, and a paragraph that opens with ``**Prediction (not measured here).**``
or ``**Their numbers, not measured here.**`` (the literature's) says what it is; both are skipped.

It is a heuristic, so it has a short allow-list (``ALLOWED``), each entry with its reason:
definitions of rules ("the most accurate threshold within the budget") and statements about
mechanisms that need no measurement. The tests at the top show that it catches the sentences
the issue "Every conclusion follows from its verdict" found.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import glued_texts

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PAGES = sorted((ROOT / "book").glob("*.md"))

COMPARATIVE = re.compile(
    r"\b(better|worse|best|worst|faster|slower|fastest|slowest|quicker|cheaper|dearer|costlier|"
    r"(more|less|most|least) (accurate|expensive)|outperform\w*|beats?|beaten|wins?|won|winner|"
    r"pays?(?! for\b)|paid off|matters? (less|more|most|little)|(does|do|did)(n't| not)? matter|helps?|helped|"
    r"hurts?|gains?|gained|improv\w+|degrad\w+|out of reach|caps?|capped|do(es)? little|"
    r"adds? (a little|little|nothing)|honest\w*|(smaller|larger|higher|lower|more|less|fewer) than(?! one\b)|"
    r"well above|well below|ranks? \w+)\b", re.I)
TERMS = re.compile(r"the fastest full network|the fastest early exit", re.I)  # names of baselines, not claims
RANKING = re.compile(
    r"\b(better|worse|best|worst|faster|slower|fastest|slowest|quicker|cheaper|dearer|"
    r"(more|less) accurate|outperform\w*|beats?|wins?|pays?|helps?|hurts?|gains?|improv\w+|"
    r"(higher|lower|larger|smaller) than|ranks? (best|first|higher|lower))\b", re.I)
NEGATION = re.compile(r"\b(no|not|none|neither|nor|cannot|never|without|nothing)\b", re.I)
NULL_WORDS = re.compile(r"no measurable|not measurabl|cannot tell|cannot be told apart|indistinguishable|"
                        r"inside the (seed )?noise|smaller than the seed", re.I)
VERDICT = re.compile(r"measurable difference|\dx (faster|slower)|\(\d+(\.\d+)?% CI|^(met|missed|inside the noise)$")
NULL = re.compile(r"^no measurable difference|^inside the noise$")
GLUE = re.compile(r"\{glue:text\}`([^`]+)`")
# A paragraph that opens with one of these says what it is, and is exempt.
LABELLED = ("**Prediction (not measured here).**", "**Their numbers, not measured here.**")
ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|vs|et al|cf)\.")

# (page, words of the sentence, why it needs no verdict)
ALLOWED = [
    ("05_thresholds", "Too low and accuracy falls", "what a threshold does, by construction"),
    ("10_many_exits", "the most accurate combination", "the definition of a rule, not a result"),
    ("10_many_exits", "the most accurate pair within it", "the definition of a rule, not a result"),
    ("04_joint_loss", "within a tenth of a point of the best length's", "the training-length rule, defined"),
    ("04_joint_loss", "Train until the model stops improving", "the rule, as a takeaway; its length glued"),
    ("11_token_exits", "a tenth of a point of the best", "the training-length rule, defined"),
    ("06_comparison", "the most accurate static network of no greater cost",
     "the primary comparison, defined; its verdict is glued where it is made"),
    ("06_comparison", "both cheaper and more accurate", "the Pareto front, defined"),
    ("04_joint_loss", "at the best", "names the rung the rule compares with; both values glued"),
    ("11_token_exits", "The first layer that is not measurably less accurate than the last",
     "the rule that picks the layer, defined; each layer glued beside it"),
    ("06_comparison", "the static network with the best *validation* accuracy", "the rival's rule, defined"),
]


# --- the scanner -----------------------------------------------------------------------------

def prose_units(markdown: str) -> list[list[str]]:
    """Paragraphs, list items and table rows, each as a list of sentences (code, math and directives removed)."""
    text = re.sub(r"```.*?```", "\n\n", markdown, flags=re.S)
    text = re.sub(r"\$\$.*?\$\$", " ", text, flags=re.S)
    text = re.sub(r"^:::.*$|^:class:.*$", "\n", text, flags=re.M)
    units, current = [], []
    for line in text.splitlines():
        stripped = line.strip()
        starts_item = re.match(r"^(\* |- |\d+\. |\|)", stripped)
        if not stripped or starts_item or stripped.startswith("#"):
            if current:
                units.append(" ".join(current))
            current = [] if not stripped or stripped.startswith("#") else [stripped]
            if starts_item and stripped.startswith("|"):
                units.append(stripped)
                current = []
            continue
        current.append(stripped)
    if current:
        units.append(" ".join(current))
    split = []
    for unit in units:
        protected = ABBREVIATIONS.sub(lambda m: m.group(0).replace(".", "\0"), unit)
        sentences = re.split(r"(?<=[.!?:])\s+(?=[A-Z*`{(\[])", protected)
        split.append([s.replace("\0", ".") for s in sentences if s.strip()])
    return split


def _words(sentence: str) -> str:
    """The sentence without glue, roles, code spans, math and link targets: the author's own words."""
    text = GLUE.sub(" ", sentence)
    text = re.sub(r"\{[\w:]+\}`[^`]*`", " ", text)
    text = re.sub(r"`[^`]*`|\$[^$]+\$", " ", text)
    return TERMS.sub(" ", re.sub(r"\]\([^)]*\)", "]", text))


def _verdicts(sentence: str, lookup) -> list[str]:
    texts = [lookup(ref) for ref in GLUE.findall(sentence)]
    return [t for t in texts if t is not None and VERDICT.search(t)]


def problems_in(markdown: str, lookup, page: str = "") -> list[str]:
    """Every sentence of ``markdown`` that breaks a rule of this module; ``lookup(ref)`` gives a glue's text."""
    found = []
    for unit in prose_units(markdown):
        for i, sentence in enumerate(unit):
            words = _words(sentence)
            if sentence.rstrip("*) ").endswith("?") or unit[0].startswith(LABELLED) \
                    or any(p == page and phrase in sentence for p, phrase, _ in ALLOWED):
                continue  # a question claims nothing; a prediction says it is one
            for ref in GLUE.findall(sentence):
                text = lookup(ref)
                after = re.search(r"\b(by|is|are|was|be|it)\s+\{glue:text\}`" + re.escape(ref), sentence)
                # any verdict, not only a null one: on another machine it may come out null
                if text and VERDICT.search(text) and after:
                    found.append(f"a verdict glued after '{after.group(1)}' reads wrong when it is null: "
                                 f"{sentence!r}")
            own = _verdicts(sentence, lookup)
            near = own or [v for j in (i - 1, i + 1) if 0 <= j < len(unit) for v in _verdicts(unit[j], lookup)]
            if COMPARATIVE.search(words) and not near:
                found.append(f"compares ({COMPARATIVE.search(words).group(0)!r}) with no verdict beside it: "
                             f"{sentence!r}")
                continue
            if near and all(NULL.search(v) for v in near) and RANKING.search(words) and not NEGATION.search(words):
                found.append(f"ranks ({RANKING.search(words).group(0)!r}) although its verdicts say no measurable "
                             f"difference: {sentence!r}")
            if near and not any(NULL.search(v) for v in near) and NULL_WORDS.search(words):
                found.append(f"says there is no difference although its verdicts found one: {sentence!r}")
    return found


# --- the scanner catches what the issue found --------------------------------------------------

GLUED = {"measurable": "+0.86 points (95% CI +0.16 to +1.55 points)",
         "null": "no measurable difference (95% CI -0.23 to +0.35 points)",
         "fast": "1.47x faster (95% CI 1.43-2.55x)", "plain": "90.74 ± 0.19",
         "holm": "+0.52 points (98.3% CI +0.06 to +0.98 points)"}


@pytest.mark.parametrize("sentence", [
    "On this data, the choice of regime matters less than the seed.",
    "The gated regimes send only the hard images through block 2, so they train faster than the joint loss.",
    "The batch-1 target is out of reach for this network on a CPU, and the stage-sum estimate shows why.",
    "Two threads help at large batches and do little at batch size 1.",
    "Pooling before ReLU, `inference_mode` and chunking add smaller gains.",
    "So early exit must be measured inside the runtime: only there does it pay against the right baseline.",
    "Temperature scaling makes it honest without a measurable change in what early exit buys.",
    "The book uses max-softmax: it ranks best (Chapter 4), needs no extra head.",
    "Accuracy after each exit rises slowly: each later block adds a little.",
    "At batch size 1, per-call overhead caps any gain.",
    "The third block makes the full network dearer, so there is more to save than with two exits.",
    "The regime effects here are smaller than the seed noise.",
])
def test_the_scanner_catches_the_sentences_the_issue_found(sentence):
    assert problems_in(sentence, GLUED.get), sentence


def test_the_scanner_checks_agreement_and_grammar_of_glued_verdicts():
    assert problems_in("Lowering exit 1's weight changes exit 1 by {glue:text}`null`.", GLUED.get)
    assert problems_in("At batch size 1 early exit is {glue:text}`null` than the full network.", GLUED.get)
    # measurable here, but a verdict can come out null on the next machine
    assert problems_in("At batch size 1 early exit is {glue:text}`fast` than the full network.", GLUED.get)
    assert problems_in("Joint is better than masked: {glue:text}`null`.", GLUED.get)
    assert problems_in("Joint minus learned is {glue:text}`measurable`, no measurable difference.", GLUED.get)
    assert problems_in("Exit 3 reaches {glue:text}`plain` and ranks best.", GLUED.get)  # a number, not a verdict


def test_the_scanner_passes_sentences_bound_to_their_verdicts():
    fine = ("Joint minus learned, final exit: {glue:text}`measurable`. So joint training is more accurate here. "
            "Joint minus masked: {glue:text}`null`; neither is better. "
            "At batch size 1, early exit against the full network: {glue:text}`fast`.")
    assert problems_in(fine, GLUED.get) == []
    assert problems_in("Block 1 holds 11% of the FLOPs. The network has two exits.", GLUED.get) == []
    # a Holm-adjusted interval is a verdict too
    assert problems_in("Exit 1 is more accurate after masking: {glue:text}`holm`.", GLUED.get) == []


# --- the book ---------------------------------------------------------------------------------

def _lookup_for(page: Path, own: dict[str, str]):
    cache: dict[str, dict[str, str]] = {}

    def lookup(ref: str) -> str | None:
        document, _, key = ref.rpartition("::")
        key = key.split(":")[0]
        if not document:
            return own.get(key)
        path = (page.parent / document).resolve()
        if path not in cache:
            cache[path] = glued_texts(json.loads(path.read_text())) if path.is_file() else {}
        return cache[path].get(key)
    return lookup


def captions(notebook: dict) -> list[str]:
    """The figure captions a notebook's code cells carry in their metadata."""
    return [c["metadata"]["mystnb"]["figure"]["caption"] for c in notebook["cells"]
            if c["cell_type"] == "code" and "caption" in c.get("metadata", {}).get("mystnb", {}).get("figure", {})]


@pytest.mark.parametrize("path", NOTEBOOKS + PAGES, ids=lambda p: p.name)
def test_every_comparison_in_the_book_follows_its_verdict(path):
    if path.suffix == ".ipynb":
        notebook = json.loads(path.read_text())
        markdown = "\n\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
        own = glued_texts(notebook)
    else:
        markdown, own = path.read_text(), {}
    problems = problems_in(markdown, _lookup_for(path, own), path.stem)
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_captions_describe_and_leave_comparisons_to_the_text(path):
    """A caption cannot carry a glued verdict, so it may not compare: it says what to look at."""
    problems = [p for caption in captions(json.loads(path.read_text()))
                for p in problems_in(caption, lambda ref: None, path.stem)]
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def test_a_caption_that_compares_is_caught():
    notebook = {"cells": [{"cell_type": "code", "metadata": {"mystnb": {"figure": {
        "caption": "Each later block adds a little, at a large cost."}}}}]}
    assert problems_in(captions(notebook)[0], lambda ref: None)


def test_every_allow_list_entry_is_still_needed():
    texts = {}
    for p in NOTEBOOKS:
        notebook = json.loads(p.read_text())
        texts[p.stem] = "\n".join(["".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"]
                                  + captions(notebook))
    texts.update({p.stem: p.read_text() for p in PAGES})
    unused = [f"{page}: {phrase!r}" for page, phrase, why in ALLOWED if not why or phrase not in texts.get(page, "")]
    assert not unused, "allow-list entries no longer used:\n" + "\n".join(unused)
