"""Shared code for the book *Early-exit neural networks in PyTorch*.

One job per module. The CNN: :mod:`~earlyexit.data` (finding and splitting the data),
:mod:`~earlyexit.models` (the multi-exit CNN), :mod:`~earlyexit.losses`,
:mod:`~earlyexit.exits` (exit criteria, the exit decision and rules),
:mod:`~earlyexit.inference` (per-sample routing), :mod:`~earlyexit.fast` (the optimised path),
:mod:`~earlyexit.export` (``torch.export`` and ONNX), :mod:`~earlyexit.training` (the training loop),
:mod:`~earlyexit.checkpoints` (shipped and cached weights), :mod:`~earlyexit.provenance`
(what decided them), :mod:`~earlyexit.recipes` (the book's models, planned once),
:mod:`~earlyexit.pretrain` (``make models``), :mod:`~earlyexit.resume` (a training longer than a
session), :mod:`~earlyexit.baselines` (the skeptic's
static networks), :mod:`~earlyexit.evaluation` (what a model or a rule does on a split),
:mod:`~earlyexit.thresholds` (choosing thresholds), :mod:`~earlyexit.calibration` (how honest
a confidence is), :mod:`~earlyexit.operating_point` (the book's operating point),
:mod:`~earlyexit.flops`, :mod:`~earlyexit.speed` (early exit and runtimes on the clock),
:mod:`~earlyexit.serving` (ONNX Runtime sessions, one request at a time). The transformer: :mod:`~earlyexit.text`
(the generated corpus), :mod:`~earlyexit.transformer` (the model and its training),
:mod:`~earlyexit.decoding` (generation, per-token exit, self-speculative decoding). Honest
numbers: :mod:`~earlyexit.stats` (comparisons, intervals for proportions, Holm),
:mod:`~earlyexit.timing` (the timing protocol), :mod:`~earlyexit.allocator` (one allocator policy
for every timed run), :mod:`~earlyexit.results` (recorded, re-checked results), :mod:`~earlyexit.runs`
(verdicts across repeated runs),
:mod:`~earlyexit.freshness` (outputs from the current code). And :mod:`~earlyexit.report`
(tables), :mod:`~earlyexit.plots`, :mod:`~earlyexit.forum` (the thread's own numbers), :mod:`~earlyexit.checks`
(what the package refuses) and :mod:`~earlyexit.utils`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("earlyexit")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
