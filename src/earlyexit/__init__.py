"""Shared code for the book *Early-exit neural networks in PyTorch*.

One job per module: :mod:`~earlyexit.data` (finding and splitting the data),
:mod:`~earlyexit.models` (the multi-exit CNN), :mod:`~earlyexit.losses`,
:mod:`~earlyexit.exits` (exit criteria, the exit decision and rules),
:mod:`~earlyexit.inference` (per-sample routing), :mod:`~earlyexit.fast` (the optimised path),
:mod:`~earlyexit.export` (ONNX export and ONNX Runtime), :mod:`~earlyexit.training` (loop and
checkpoint cache), :mod:`~earlyexit.evaluation` (what a model does on a split),
:mod:`~earlyexit.calibration` (choosing thresholds), :mod:`~earlyexit.stats` (honest
comparisons), :mod:`~earlyexit.flops`, :mod:`~earlyexit.timing` (the timing protocol),
:mod:`~earlyexit.speed` (early exit on the clock), :mod:`~earlyexit.results` (recorded,
re-checked results), :mod:`~earlyexit.report` (tables), :mod:`~earlyexit.plots`,
:mod:`~earlyexit.forum` (the thread's own numbers) and :mod:`~earlyexit.utils`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("earlyexit")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"
