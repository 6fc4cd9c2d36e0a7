"""Early exit on the clock: implementations cut into stages, runtimes side by side (Chapters 7-10).

Every timing runs on :func:`timing_sample`, a seeded random sample of the test images, so
that the share of images leaving early is that of the test set up to sampling noise, and is
reported beside it.

:func:`measure_speed` times, in one interleaved run (:mod:`earlyexit.timing`), the full
network, early exit with routing, early exit computing everything then masking, and each
stage of the network on its own. From the stage times it forms the **stage-sum estimate**:
every stage's time per image weighted by the share of images that reach it, i.e. what
early exit would cost if gathering and scattering survivors were free. Stages are timed in
the chunks the implementation itself processes. It is an estimate, not a bound: the deep
stages are timed on full chunks, while routing runs them on the smaller batch of
survivors, whose per-image cost can be lower or higher.

:func:`compare_runtimes` times whole runtimes against each other (eager PyTorch at 1 and 2
threads, ONNX Runtime sessions, compiled functions): the fastest full network against the
fastest early exit (Chapter 8).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .checks import check_int, check_number, check_seed, check_token_ids, check_type
from .exits import ExitRule, as_rule
from .fast import FastEarlyExit
from .inference import EarlyExitResult, compute_all_then_mask, model_stages, route_batch
from .models import EarlyExitCNN, check_model
from .report import Table, table
from .stats import Interval
from .timing import Timing, speedup, time_interleaved

BATCH_SIZES = (1, 16, 256, 1024)  # one image, a small server batch, a large one, beyond the cache
MIN_TIMED_IMAGES = 256  # fewer images per round give an unstable exit share


def threads_for(batch_size: int) -> int:
    """The torch thread count the book times eager PyTorch with: one for a single image, two for a
    batch. Chapter 7 times both counts: on a single image a second thread brings no measured
    benefit, so the book keeps the second core free there."""
    return 1 if check_int("batch_size", batch_size) == 1 else 2


def timing_sample(images: torch.Tensor, batch_size: int, seed: int = 0) -> torch.Tensor:
    """The images one timed round uses at ``batch_size``: a seeded random sample of ``images``,
    at least 256 and one whole batch (the sample for a larger batch extends the smaller one)."""
    check_type("images", images, torch.Tensor, "a tensor of images")
    check_int("batch_size", batch_size)
    check_seed("seed", seed)
    size = max(batch_size, MIN_TIMED_IMAGES)
    if size > len(images):
        raise ValueError(f"a timed round needs {size} images, got {len(images)}")
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    return images[order[:size]]


def full_batches(images: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """``images`` cut into batches of exactly ``batch_size`` (a ragged last batch is dropped)."""
    check_type("images", images, torch.Tensor, "a tensor of images")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1 or batch_size > len(images):
        raise ValueError(f"batch_size must be between 1 and {len(images)}, got {batch_size}")
    return [images[i:i + batch_size] for i in range(0, len(images) - batch_size + 1, batch_size)]


@dataclass(frozen=True)
class Implementation:
    """One implementation of an early-exit network, cut into the pieces the speed model needs."""

    name: str
    num_exits: int
    rule: ExitRule
    block: Callable[[int, torch.Tensor], torch.Tensor]  # (k, input) -> features after block k (0-based)
    head: Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]  # features -> logits, confidence
    full: Callable[[torch.Tensor], object]  # the plain network, no early exit
    route: Callable[[torch.Tensor], EarlyExitResult]  # early exit, survivors routed
    mask: Callable[[torch.Tensor], EarlyExitResult]  # early exit, everything computed then masked
    grad_mode: Callable[[], object]
    split: Callable[[torch.Tensor], list[torch.Tensor]]  # the chunks a batch is processed in

    def stage(self, k: int, x: torch.Tensor) -> torch.Tensor:
        """Stage k on one chunk: block k, its exit head and (before the last exit) the exit decision."""
        features = self.block(k, x)
        logits, confidence = self.head(k, features)
        if k < self.num_exits - 1:
            self.rule.decide(k, logits, confidence, self.rule.initial_state(len(x), x.device))
        return features


def reference_implementation(model: EarlyExitCNN, rule: ExitRule) -> Implementation:
    """The straightforward implementation: the model's modules and :func:`~earlyexit.inference.route_batch`."""
    rule = as_rule(rule)
    rule.check(check_model(model).num_exits)
    model.eval()
    blocks, heads = model_stages(model, rule.criterion)
    return Implementation("reference", model.num_exits, rule, lambda k, x: blocks[k](x), lambda k, f: heads[k](f),
                          model.final_logits, lambda x: route_batch(model, x, rule),
                          lambda x: compute_all_then_mask(model, x, rule), torch.no_grad, lambda x: [x])


def fast_implementation(fast: FastEarlyExit) -> Implementation:
    """The optimised implementation of :mod:`earlyexit.fast`."""
    check_type("fast", fast, FastEarlyExit, "a FastEarlyExit")
    return Implementation("fast", len(fast.stages), fast.rule, fast.block, fast.head, fast.full, fast,
                          fast.compute_all_then_mask, fast.grad_mode, fast.chunks)


@dataclass(frozen=True)
class SpeedRow:
    """Per-image times at one batch size and the speedups they give (all from one interleaved run)."""

    batch_size: int
    reach: tuple[float, ...]  # share of the timed images reaching each stage (reach[0] = 1)
    full: Timing
    early_exit: Timing
    masked: Timing
    stages: tuple[Timing, ...]
    flops_ideal: float  # full-network FLOPs over expected FLOPs per image, for the timed images

    @property
    def exit_fraction(self) -> float:
        """Share of the timed images leaving before the last exit."""
        return 1.0 - self.reach[-1]

    @property
    def measured(self) -> Interval:
        """Speedup of early exit (routing) over the full network, with its interval."""
        return speedup(self.full, self.early_exit)

    @property
    def masked_speedup(self) -> Interval:
        """Speedup of computing everything then masking over the full network."""
        return speedup(self.full, self.masked)

    @property
    def versus_estimate(self) -> Interval:
        """How the measured early exit compares with the stage-sum estimate. Above 1, routing ran
        faster than the estimate; below 1, gathering, scattering and deciding cost time the
        estimate leaves out."""
        return speedup(self.stage_sum, self.early_exit)

    @property
    def stage_sum(self) -> Timing:
        """Each round's stage-sum estimate, every stage's time weighted by the share reaching it."""
        rounds = zip(*(stage.samples for stage in self.stages))
        return Timing(tuple(sum(r * t for r, t in zip(self.reach, times)) for times in rounds), self.full.blocks)

    @property
    def stage_sum_speedup(self) -> Interval:
        return speedup(self.full, self.stage_sum)


def speed_table(rows: list[SpeedRow]) -> Table:
    """One row per batch size: exit share of the timed images, times per image, the measured speedup
    with its verdict, the stage-sum estimate and the FLOPs-ideal."""
    return table(["batch", "exit early", "full, µs/image", "early exit, µs/image", "measured speedup",
                  "stage-sum estimate", "FLOPs-ideal"],
                 [[r.batch_size, f"{r.exit_fraction:.1%}", f"{r.full.median * 1e6:.1f}",
                   f"{r.early_exit.median * 1e6:.1f}", r.measured.verdict(),
                   f"{r.stage_sum_speedup.estimate:.2f}x", f"{r.flops_ideal:.2f}x"] for r in rows])


def _over(fn: Callable[[torch.Tensor], object], inputs: list[torch.Tensor], mode: Callable[[], object]):
    """A zero-argument callable applying ``fn`` to every input under a grad mode (for timing)."""
    def run():
        with mode():
            return [fn(x) for x in inputs]
    return run


def _check_costs(exit_costs: tuple[float, ...], num_exits: int | None = None) -> tuple[float, ...]:
    check_type("exit_costs", exit_costs, (tuple, list), "a sequence of FLOPs, one per exit")
    if not exit_costs or (num_exits is not None and len(exit_costs) != num_exits):
        raise ValueError(f"exit_costs must hold one cost per exit ({num_exits or 'at least one'}), "
                         f"got {len(exit_costs)}")
    for k, cost in enumerate(exit_costs):
        check_number(f"exit_costs[{k}]", cost)
    return exit_costs


def expected_flops(exit_number: torch.Tensor, exit_costs: tuple[float, ...]) -> float:
    """Mean FLOPs per image when image i leaves at exit ``exit_number[i]`` (1-based: 1 to ``len(exit_costs)``)."""
    _check_costs(exit_costs)
    exit_number = check_token_ids("exit_number", exit_number, len(exit_costs) + 1, 1, "exit numbers", first=1)
    if len(exit_number) == 0:
        raise ValueError("exit_number must hold at least one image's exit, got none")
    shares = torch.bincount(exit_number - 1, minlength=len(exit_costs)).double() / len(exit_number)
    return float((shares * torch.tensor(exit_costs, dtype=torch.float64)).sum())


def measure_speed(impl: Implementation, images: torch.Tensor, batch_size: int, exit_costs: tuple[float, ...],
                  full_flops: float, repeats: int = 15, warmup: int = 1) -> SpeedRow:
    """Time one pass over ``images`` in batches of ``batch_size``: every variant and stage, interleaved.

    One warm-up call: in the book a call is a pass over at least 256 images (:func:`timing_sample`).
    """
    check_type("impl", impl, Implementation, "an Implementation (reference_implementation or fast_implementation)")
    _check_costs(exit_costs, impl.num_exits)
    check_number("full_flops", full_flops, open_low=True)
    batches = full_batches(images, batch_size)
    n = sum(len(b) for b in batches)
    chunks = [chunk for b in batches for chunk in impl.split(b)]
    with impl.grad_mode():
        inputs = [chunks]  # inputs[k]: what stage k receives, chunk by chunk, for every image
        for k in range(impl.num_exits - 1):
            inputs.append([impl.block(k, x) for x in inputs[-1]])
        exits = torch.cat([impl.route(b).exit_number for b in batches])
    shares = torch.bincount(exits - 1, minlength=impl.num_exits).double() / n
    reach = tuple(float(1 - shares[:k].sum()) for k in range(impl.num_exits))

    mode = impl.grad_mode
    candidates = {"full": _over(impl.full, batches, mode), "route": _over(impl.route, batches, mode),
                  "mask": _over(impl.mask, batches, mode)}
    for k in range(impl.num_exits):
        candidates[f"stage {k + 1}"] = _over(lambda x, k=k: impl.stage(k, x), inputs[k], mode)
    timings = {name: t.per(n) for name, t in time_interleaved(candidates, repeats, warmup).items()}
    stages = tuple(timings[f"stage {k + 1}"] for k in range(impl.num_exits))
    return SpeedRow(batch_size, reach, timings["full"], timings["route"], timings["mask"], stages,
                    full_flops / expected_flops(exits, exit_costs))


@torch.no_grad()
def time_layers(model: EarlyExitCNN, images: torch.Tensor, batch_size: int, rule: ExitRule,
                repeats: int = 15, warmup: int = 2) -> dict[str, Timing]:
    """Per-image time of every layer of the reference model at one batch size, interleaved.

    Names: "block k: conv", "block k: ReLU", "block k: max-pool", "exit k: head + decision"
    (the last exit: "exit k: head").
    """
    rule = as_rule(rule)
    rule.check(check_model(model).num_exits)
    model.eval()
    _, heads = model_stages(model, rule.criterion)
    batches = full_batches(images, batch_size)
    candidates: dict[str, Callable[[], object]] = {}
    current = batches
    for k, block in enumerate(model.blocks):
        for name, layer in (("conv", block.conv), ("ReLU", block.relu), ("max-pool", block.pool)):
            candidates[f"block {k + 1}: {name}"] = _over(layer, current, torch.no_grad)
            current = [layer(x) for x in current]
        if k < model.num_exits - 1:
            def decide(f, k=k):
                logits, confidence = heads[k](f)
                return rule.decide(k, logits, confidence, rule.initial_state(len(f), f.device))
            candidates[f"exit {k + 1}: head + decision"] = _over(decide, current, torch.no_grad)
        else:
            candidates[f"exit {k + 1}: head"] = _over(heads[k], current, torch.no_grad)

    timings = time_interleaved(candidates, repeats, warmup)
    n = sum(len(b) for b in batches)
    return {name: t.per(n) for name, t in timings.items()}


# --- Whole runtimes against each other (Chapter 8) -------------------------------------------

FULL, EARLY_EXIT = "full", "early exit"


@dataclass(frozen=True)
class Candidate:
    """One way to run one batch: ``run(images)``, of kind "full" or "early exit".

    ``threads`` is set with ``torch.set_num_threads`` before every call (eager PyTorch: the
    setting is process-wide and costs well under a microsecond, so candidates with other
    thread counts can still be interleaved); None leaves it (an ONNX Runtime session has
    its own thread pool, fixed when it is created).
    """

    name: str
    kind: str
    run: Callable[[torch.Tensor], object]
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in (FULL, EARLY_EXIT):
            raise ValueError(f"kind must be {FULL!r} or {EARLY_EXIT!r}, got {self.kind!r}")
        if not callable(self.run):
            raise TypeError(f"run must be callable with a batch, got {type(self.run).__name__}")
        if self.threads is not None:
            check_int("threads", self.threads)

    def over(self, batches: list) -> Callable[[], object]:
        """A zero-argument callable running every batch (for timing)."""
        if self.threads is None:
            return lambda: [self.run(x) for x in batches]

        def run():
            torch.set_num_threads(self.threads)
            return [self.run(x) for x in batches]
        return run


def eager_candidates(fast: FastEarlyExit, threads: tuple[int, ...] = (1, 2)) -> list[Candidate]:
    """Eager PyTorch: ``fast.full`` and ``fast`` (early exit) at each thread count."""
    return [Candidate(f"eager {kind}, {t} thread{'s' * (t > 1)}", kind, fn, t)
            for t in threads for kind, fn in ((FULL, fast.full), (EARLY_EXIT, fast))]


def session_candidates(paths: dict[str, object], threads: tuple[int, ...] = (1, 2)) -> list[Candidate]:
    """ONNX Runtime: one session per graph ({"full": path, "early exit": path}) and thread count."""
    from .serving import session

    check_type("paths", paths, dict, 'a dict of kind -> ONNX file ({"full": path, "early exit": path})')
    candidates = []
    for t in threads:
        for kind, path in paths.items():
            s = session(path, threads=t)
            candidates.append(Candidate(f"ORT {kind}, {t} thread{'s' * (t > 1)}", kind,
                                        lambda x, s=s: s.run(None, {"images": x.numpy()})))
    return candidates


@dataclass(frozen=True)
class RuntimeRow:
    """Every candidate's time per image at one batch size, from one interleaved run, and the
    fastest of each kind as a separate, earlier run chose them (``chosen[kind]``)."""

    batch_size: int
    timings: dict[str, Timing]
    kinds: dict[str, str]
    exit_fraction: float  # share of the timed images leaving early
    flops_ideal: float  # for the timed images
    chosen: dict[str, str]

    def fastest(self, kind: str) -> str:
        """The name of the candidate of ``kind`` chosen as the fastest (by median, in the choosing run)."""
        if kind not in self.chosen:
            raise ValueError(f"kind must be one of {sorted(self.chosen)}, got {kind!r}")
        return self.chosen[kind]

    @property
    def speedup(self) -> Interval:
        """The fastest early exit against the fastest full network (chosen in the choosing run,
        timed in this one: per-round ratios, 95% interval over the blocks)."""
        return speedup(self.timings[self.fastest(FULL)], self.timings[self.fastest(EARLY_EXIT)])


def compare_runtimes(candidates: list[Candidate], images: torch.Tensor, batch_size: int,
                     exit_number: Callable[[torch.Tensor], torch.Tensor], exit_costs: tuple[float, ...],
                     full_flops: float, repeats: int = 12, warmup: int = 1, choosing: int = 3) -> RuntimeRow:
    """Time every candidate on ``images`` in batches of ``batch_size``, interleaved; per image.

    A first run of ``choosing`` rounds picks the fastest candidate of each kind (by median);
    a second run of ``repeats`` rounds, in blocks (:func:`~earlyexit.timing.time_interleaved`),
    times them all: a winner picked in the run that judges it would be flattered by its own
    luck. One warm-up call each, as in :func:`measure_speed`.

    ``exit_number(batch)`` gives each image's exit (to report the timed images' exit share and
    FLOPs-ideal). Torch's thread count is restored afterwards.
    """
    check_type("candidates", candidates, (list, tuple), "a list of Candidate")
    for i, candidate in enumerate(candidates):
        check_type(f"candidates[{i}]", candidate, Candidate, "a Candidate")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names) or not {c.kind for c in candidates} == {FULL, EARLY_EXIT}:
        raise ValueError(f"need uniquely named candidates of both kinds, got {names}")
    if not callable(exit_number):
        raise TypeError(f"exit_number must be callable with a batch, got {type(exit_number).__name__}")
    _check_costs(exit_costs)
    check_number("full_flops", full_flops, open_low=True)
    batches = full_batches(images, batch_size)
    timed_images = sum(len(b) for b in batches)
    threads = torch.get_num_threads()
    runs = {c.name: c.over(batches) for c in candidates}
    try:
        first = time_interleaved(runs, check_int("choosing", choosing), warmup, blocks=1)
        timings = time_interleaved(runs, repeats, 0)
    finally:
        torch.set_num_threads(threads)
    kinds = {c.name: c.kind for c in candidates}
    chosen = {kind: min((name for name in names if kinds[name] == kind), key=lambda name: first[name].median)
              for kind in (FULL, EARLY_EXIT)}
    exits = torch.cat([exit_number(b) for b in batches])
    return RuntimeRow(batch_size, {name: t.per(timed_images) for name, t in timings.items()}, kinds,
                      float((exits < len(exit_costs)).double().mean()),
                      full_flops / expected_flops(exits, exit_costs), chosen)


def runtime_table(rows: list[RuntimeRow]) -> Table:
    """µs per image of every candidate (columns) at every batch size (rows), the winners and the verdict."""
    if not rows:
        raise ValueError("rows must hold at least one RuntimeRow, got none")
    names = list(rows[0].timings)
    return table(["batch", "exit early"] + [f"{n} (µs/image)" for n in names]
                 + ["fastest full", "fastest early exit", "speedup", "FLOPs-ideal"],
                 [[r.batch_size, f"{r.exit_fraction:.1%}"] + [f"{r.timings[n].median * 1e6:.1f}" for n in names]
                  + [r.fastest(FULL), r.fastest(EARLY_EXIT), r.speedup.verdict(), f"{r.flops_ideal:.2f}x"]
                  for r in rows])
