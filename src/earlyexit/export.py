"""Early exit as a deployable artifact: ``torch.export``, ONNX, and ONNX Runtime (Chapter 8).

:class:`EarlyExitModule` wraps the routing core of :mod:`earlyexit.inference` (the same code
``route_batch`` runs) in an ``nn.Module`` with the exit rule baked in. That code has no
Python branch on data, so ``torch.export`` captures the per-sample routing (``NonZero``,
gathers and scatters in the ONNX graph) with a dynamic batch dimension.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections import defaultdict
from pathlib import Path

import torch
from torch import nn

from .exits import ExitRule
from .inference import EarlyExitResult, check_finite_images, model_stages, route_stages
from .models import IMAGE_SHAPE, EarlyExitCNN


class EarlyExitModule(nn.Module):
    """Per-sample early exit as a module, the exit rule baked in.

    ``forward(images) -> (logits, exit_number)``. No input validation inside
    (a graph cannot raise a readable error): validate first, as
    :func:`run_session` does.
    """

    def __init__(self, model: EarlyExitCNN, rule: ExitRule) -> None:
        super().__init__()
        rule.check(model.num_exits)
        self.model, self.rule = model.eval(), rule

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        stages, heads = model_stages(self.model, self.rule.criterion)
        result = route_stages(stages, heads, images, self.rule)
        return result.logits, result.exit_number


class FullNetwork(nn.Module):
    """The plain network without early exit: every block, then the last exit's head."""

    def __init__(self, model: EarlyExitCNN) -> None:
        super().__init__()
        self.model = model.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.final_logits(images)


def export_program(module: nn.Module, example_batch: int = 8) -> torch.export.ExportedProgram:
    """``torch.export`` with a dynamic batch dimension (any batch size from 0 up)."""
    example = torch.zeros(example_batch, *IMAGE_SHAPE)
    return torch.export.export(module, (example,), dynamic_shapes={"images": {0: torch.export.Dim("batch")}})


def export_onnx(module: nn.Module, path: str | Path, example_batch: int = 8) -> Path:
    """Export ``module`` to an ONNX file with the dynamo exporter (``torch.onnx.export(dynamo=True)``), quietly."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(example_batch, *IMAGE_SHAPE)
    outputs = ["logits", "exit_number"] if isinstance(module, EarlyExitModule) else ["logits"]
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with warnings.catch_warnings(), quiet[0], quiet[1]:
        warnings.simplefilter("ignore")  # the exporter's progress lines and notes are not the lesson
        program = torch.onnx.export(module, (example,), dynamo=True, input_names=["images"], output_names=outputs,
                                    dynamic_shapes={"images": {0: torch.export.Dim("batch")}})
    program.save(str(path))
    return path


def session(path: str | Path, threads: int = 1, optimization: str = "all", profile: bool = False):
    """An ONNX Runtime CPU session with ``threads`` intra-op threads.

    Spinning is off: by default ORT's idle threads keep spinning after a run, which on a
    small machine steals the cores from whatever runs next (another session, PyTorch).
    ``optimization`` is "disable", "basic", "extended" or "all" (graph optimisation level).
    """
    import onnxruntime as ort

    level = ort.GraphOptimizationLevel
    levels = {"disable": level.ORT_DISABLE_ALL, "basic": level.ORT_ENABLE_BASIC,
              "extended": level.ORT_ENABLE_EXTENDED, "all": level.ORT_ENABLE_ALL}
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {sorted(levels)}, got {optimization!r}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = levels[optimization]
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = profile
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_session(sess, images: torch.Tensor) -> EarlyExitResult:
    """Run an exported early-exit session on a batch; results as :func:`~earlyexit.inference.route_batch` gives them."""
    check_finite_images(images)
    logits, exit_number = sess.run(None, {"images": images.detach().cpu().contiguous().numpy()})
    logits, exit_number = torch.from_numpy(logits), torch.from_numpy(exit_number)
    return EarlyExitResult(logits.argmax(dim=1), exit_number, logits)


def profile_by_operator(sess, images: torch.Tensor, runs: int = 20) -> tuple[dict[str, float], float]:
    """Microseconds per run spent in each ONNX operator type, and in the whole run, from ORT's profiler.

    ``sess`` must have been created with ``profile=True``; it is ended here (profiling
    stops). The profiler costs time itself, per operator: compare operators with each
    other and with the profiled run, not with an unprofiled call.
    """
    feed = {"images": images.contiguous().numpy()}
    for _ in range(runs):
        sess.run(None, feed)
    trace = Path(sess.end_profiling())
    totals: dict[str, float] = defaultdict(float)
    run_total = 0.0
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"] / runs
        elif event.get("cat") == "Session" and event.get("name") == "model_run":
            run_total += event["dur"] / runs
    trace.unlink()
    return dict(sorted(totals.items(), key=lambda item: -item[1])), run_total
