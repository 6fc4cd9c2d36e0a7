"""Shared code for the book *Early-exit neural networks in PyTorch*.

Modules: :mod:`~earlyexit.data` (finding and splitting the data), :mod:`~earlyexit.models`
(the multi-exit CNN), :mod:`~earlyexit.losses`, :mod:`~earlyexit.exits` (exit criteria and
threshold calibration), :mod:`~earlyexit.inference` (batched routing), :mod:`~earlyexit.fast` (the optimised path),
:mod:`~earlyexit.training` (loop and checkpoint cache), :mod:`~earlyexit.metrics`,
:mod:`~earlyexit.flops`, :mod:`~earlyexit.bench` (timing), :mod:`~earlyexit.report` (tables)
and :mod:`~earlyexit.plots`.
"""

__version__ = "0.1.0"
