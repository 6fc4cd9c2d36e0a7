"""Early exit as a deployable artifact: ``torch.export`` and ONNX (Chapters 8-9); the graphs run in
ONNX Runtime through :mod:`earlyexit.serving`.

:class:`EarlyExitModule` wraps the routing core of :mod:`earlyexit.inference` (the same code
``route_batch`` runs) in an ``nn.Module`` with the exit rule baked in. That code has no
Python branch on data, so ``torch.export`` captures the per-sample routing (``NonZero``,
gathers and scatters in the ONNX graph) with a dynamic batch dimension.

For one image at a time (Chapter 9) no routing is needed: :class:`FirstStage` and
:class:`SecondStage` are the two halves of a two-exit network, exported as two graphs with
the branch in the caller, and :class:`OneImageEarlyExit` is one graph with the branch
inside (``torch.cond``, an ONNX ``If`` node).
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from .checks import check_bool, check_int, check_type
from .exits import ExitRule, as_rule, check_criterion, exit_decision, exit_scores
from .inference import model_stages, route_stages
from .models import IMAGE_SHAPE, EarlyExitCNN, check_model


class EarlyExitModule(nn.Module):
    """Per-sample early exit as a module, the exit rule baked in.

    ``forward(images) -> (logits, exit_number)``. No input validation inside
    (a graph cannot raise a readable error): validate first, as
    :func:`~earlyexit.serving.run_session` does.
    """

    output_names = ("logits", "exit_number")

    def __init__(self, model: EarlyExitCNN, rule: ExitRule) -> None:
        super().__init__()
        rule = as_rule(rule)
        rule.check(check_model(model).num_exits)
        self.model, self.rule = model.eval(), rule

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        stages, heads = model_stages(self.model, self.rule.criterion)
        result = route_stages(stages, heads, images, self.rule)
        return result.logits, result.exit_number


class FullNetwork(nn.Module):
    """The plain network without early exit: every block, then the last exit's head."""

    output_names = ("logits",)

    def __init__(self, model: EarlyExitCNN) -> None:
        super().__init__()
        self.model = check_model(model).eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.final_logits(images)


def _two_exits(model: EarlyExitCNN) -> EarlyExitCNN:
    if check_model(model).num_exits != 2:
        raise ValueError(f"the two stages need a two-exit network, got {model.num_exits} exits")
    return model.eval()


class FirstStage(nn.Module):
    """Block 1 and exit 1: exit 1's logits, each image's exit score under ``criterion``, and block 1's
    features (what :class:`SecondStage` takes). The exit decision is left to the caller."""

    output_names = ("logits", "score", "features")

    def __init__(self, model: EarlyExitCNN, criterion: str = "max_softmax") -> None:
        super().__init__()
        self.model, self.criterion = _two_exits(model), check_criterion(criterion)
        self.head = model_stages(model, criterion)[1][0]

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = self.model.blocks[0](images)
        logits, confidence = self.head(features)
        return logits, exit_scores(self.criterion, logits, confidence), features


class SecondStage(nn.Module):
    """Block 2 and exit 2, from block 1's features."""

    input_names = ("features",)
    output_names = ("logits",)

    def __init__(self, model: EarlyExitCNN) -> None:
        super().__init__()
        self.model = _two_exits(model)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model.exits[1](self.model.blocks[1](features))


class OneImageEarlyExit(nn.Module):
    """Early exit for a batch of exactly one image, as one graph with a branch inside.

    ``torch.cond`` takes one predicate for the whole batch, which for one image is that
    image's own exit decision: the graph runs block 2 only when the image goes on (an ONNX
    ``If`` node). ``forward(images) -> (logits, exit_number)``, as :class:`EarlyExitModule`.

    A batch of several images is refused (a ValueError), not decided by its first image:
    use :class:`EarlyExitModule` for batches. For the same reason it exports with a fixed
    batch of one only (``export_onnx(..., example_batch=1, dynamic_batch=False)``); ONNX
    Runtime then refuses any other batch size itself.
    """

    output_names = ("logits", "exit_number")
    batch_size = 1  # export_onnx and export_program refuse any other

    def __init__(self, model: EarlyExitCNN, rule: ExitRule) -> None:
        super().__init__()
        rule = as_rule(rule)
        rule.check(check_model(model).num_exits)
        if rule.criterion is None:
            raise ValueError("the one-image graph needs a rule with a score (a ThresholdRule)")
        self.first, self.second = FirstStage(model, rule.criterion), SecondStage(model)
        self.threshold = rule.threshold_at(0)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _check_one_image(images)
        logits, score, features = self.first(images)
        leave = exit_decision(score, self.threshold)[0]

        def early(logits, features):
            return logits.clone(), torch.ones(1, dtype=torch.long)

        def deep(logits, features):
            return self.second(features), torch.full((1,), 2, dtype=torch.long)

        return torch.cond(leave, early, deep, (logits, features))


def _check_one_image(images: torch.Tensor) -> None:
    if images.shape[0] != 1:  # a static shape when exported: this check adds nothing to the graph
        raise ValueError(f"images must be a batch of exactly one image for the one-image graph, got "
                         f"{images.shape[0]} (shape {tuple(images.shape)}): use EarlyExitModule for batches")


def _check_exportable(module: nn.Module, example_batch: int, dynamic_batch: bool) -> None:
    check_type("module", module, nn.Module, "a torch.nn.Module (e.g. EarlyExitModule)")
    check_int("example_batch", example_batch)
    check_bool("dynamic_batch", dynamic_batch)
    fixed = getattr(module, "batch_size", None)
    if fixed is not None and (dynamic_batch or example_batch != fixed):
        raise ValueError(f"{type(module).__name__} takes exactly {fixed} image(s): export it with "
                         f"example_batch={fixed}, dynamic_batch=False (got example_batch={example_batch}, "
                         f"dynamic_batch={dynamic_batch})")


def export_program(module: nn.Module, example_batch: int = 8) -> torch.export.ExportedProgram:
    """``torch.export`` with a dynamic batch dimension (any batch size from 0 up); a module that takes
    a fixed batch (:class:`OneImageEarlyExit`) is refused: export it with :func:`export_onnx`."""
    _check_exportable(module, example_batch, True)
    example = torch.zeros(example_batch, *IMAGE_SHAPE)
    return torch.export.export(module, (example,), dynamic_shapes={"images": {0: torch.export.Dim("batch")}})


def export_onnx(module: nn.Module, path: str | Path, example_batch: int = 8, dynamic_batch: bool = True) -> Path:
    """Export ``module`` to an ONNX file with the dynamo exporter (``torch.onnx.export(dynamo=True)``), quietly.

    Inputs and outputs are named by the module's ``input_names`` (default: "images") and
    ``output_names``. A :class:`SecondStage` takes block 1's features; every other module
    takes images. ``dynamic_batch=False`` fixes the batch size to ``example_batch``; a module
    that takes a fixed batch (:class:`OneImageEarlyExit`: one image) must be exported with it.
    """
    _check_exportable(module, example_batch, dynamic_batch)
    if not isinstance(getattr(module, "output_names", None), tuple):
        raise TypeError(f"module must name its outputs (output_names), as the package's modules do; "
                        f"{type(module).__name__} does not")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    inputs = list(getattr(module, "input_names", ("images",)))
    shape = IMAGE_SHAPE if inputs == ["images"] else _features_shape(module)
    example = torch.zeros(example_batch, *shape)
    dynamic = {inputs[0]: {0: torch.export.Dim("batch")}} if dynamic_batch else None
    quiet = contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO())
    with warnings.catch_warnings(), quiet[0], quiet[1]:
        warnings.simplefilter("ignore")  # the exporter's progress lines and notes are not the lesson
        program = torch.onnx.export(module, (example,), dynamo=True, input_names=inputs,
                                    output_names=list(module.output_names), dynamic_shapes=dynamic)
    program.save(str(path))
    return path


def _features_shape(module: nn.Module) -> tuple[int, ...]:
    """The shape of one image's block-1 features, for a module that takes them."""
    with torch.no_grad():
        return tuple(module.model.blocks[0](torch.zeros(1, *IMAGE_SHAPE)).shape[1:])
