"""Choosing exit thresholds on validation data, and what they give.

* :func:`sweep_thresholds` evaluates every threshold of a two-exit network at once;
  :func:`choose_threshold` picks one for an accuracy floor or a FLOPs budget.
* :func:`choose_on_validation` chooses on validation and evaluates the same threshold on
  test. With ``bootstrap=B`` it makes the choice on B resamples of the validation set and
  takes the median threshold (bagging): the plain choice is the first place where a jagged
  accuracy curve crosses a floor, so a tiny change to the model can move it far (Chapter 5).
* :func:`sweep_shared_threshold` and :func:`search_thresholds` do the same for any number
  of exits (Chapter 9), through :func:`earlyexit.evaluation.evaluate_rule`.

The book's operating point spends :data:`BUDGET_SHARE` of the full network's FLOPs,
chosen on validation (Chapter 5 shows why a budget rather than an accuracy floor).

Every decision agrees with :func:`earlyexit.exits.exit_decision` (float32, NaN scores never
exit): the rules call it, and the sweep's sorted counts are tested against it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .checks import check_flags, check_int, check_number, check_real, check_seed, check_type
from .evaluation import ExitRecord, evaluate_rule
from .exits import ThresholdRule, check_criterion, check_threshold

#: The share of the full network's FLOPs the book's operating point spends (a quarter).
BUDGET_SHARE = 0.25


@dataclass(frozen=True)
class OperatingPoint:
    """One threshold and what it gives on a set of samples."""

    threshold: float
    exit_fraction: float  # share of samples leaving before the last exit
    accuracy: float
    expected_flops: float


@dataclass(frozen=True)
class Sweep:
    """Exit fraction, accuracy and expected cost for every candidate threshold (ascending)."""

    thresholds: torch.Tensor
    exit_fraction: torch.Tensor
    accuracy: torch.Tensor
    expected_flops: torch.Tensor

    def point(self, index: int) -> OperatingPoint:
        return OperatingPoint(float(self.thresholds[index]), float(self.exit_fraction[index]),
                              float(self.accuracy[index]), float(self.expected_flops[index]))


def _flags(name: str, values: torch.Tensor, n: int) -> torch.Tensor:
    flags = check_flags(name, values, ndim=1)
    if len(flags) != n:
        raise ValueError(f"{name} has {len(flags)} entries but there are {n} scores")
    return flags.double()


def _scores(scores: torch.Tensor) -> torch.Tensor:
    """One score per sample (1-D, not flattened), float32, each in [0, 1] or NaN."""
    scores = check_real("scores", scores, ndim=1).float()
    outside = ~torch.isnan(scores) & ((scores < 0) | (scores > 1))
    if outside.any():
        raise ValueError(f"scores must lie in [0, 1] (NaN is allowed: it never exits); "
                         f"{int(outside.sum())} do not, such as {scores[outside][:3].tolist()}")
    return scores


def sweep_thresholds(scores: torch.Tensor, early_correct: torch.Tensor, final_correct: torch.Tensor,
                     early_flops: float, deep_flops: float, thresholds: torch.Tensor | None = None) -> Sweep:
    """Evaluate every threshold of a two-exit network: who leaves at exit 1, the accuracy, the mean FLOPs.

    ``early_flops`` is the cost of a sample that leaves at exit 1, ``deep_flops`` of one that
    goes on. Without ``thresholds``, 0, 1 and every distinct score in between are tried, so no
    operating point is missed. Scores are compared in float32 as everywhere (NaN never exits).
    """
    scores = _scores(scores)
    n = len(scores)
    if n == 0:
        raise ValueError("sweep_thresholds needs at least one sample")
    early, final = _flags("early_correct", early_correct, n), _flags("final_correct", final_correct, n)
    early_flops, deep_flops = check_number("early_flops", early_flops), check_number("deep_flops", deep_flops)
    if thresholds is None:
        finite = scores[~torch.isnan(scores)]
        thresholds = torch.cat([finite.new_tensor([0.0, 1.0]), finite]).unique()
    else:
        thresholds = torch.tensor([check_threshold(t, f"thresholds[{i}]")
                                   for i, t in enumerate(check_real("thresholds", thresholds, ndim=1))])
    thresholds = thresholds.float().sort().values
    # A NaN score never leaves: for the sort it is -inf, below every threshold.
    ranked = torch.where(torch.isnan(scores), torch.full_like(scores, -math.inf), scores)
    # Sorted by score, the samples that go on at threshold t are a prefix (score <= t), so
    # cumulative sums give every threshold's counts in O(N log N) instead of a T x N mask.
    order = ranked.argsort()
    early_sum = torch.cat([early.new_zeros(1), early[order].cumsum(0)])
    final_sum = torch.cat([final.new_zeros(1), final[order].cumsum(0)])
    going_on = torch.searchsorted(ranked[order], thresholds, right=True)
    exit_fraction = (n - going_on).double() / n
    accuracy = (final_sum[going_on] + early_sum[-1] - early_sum[going_on]) / n
    expected = exit_fraction * early_flops + (1 - exit_fraction) * deep_flops
    return Sweep(thresholds, exit_fraction, accuracy, expected)


def _most_accurate_within(accuracy: torch.Tensor, cost: torch.Tensor, budget: float) -> int | None:
    """Flat index of the most accurate entry whose cost fits ``budget`` (ties: the cheapest); None if none fits."""
    fits = cost <= budget + 1e-9
    if not fits.any():
        return None
    accuracy = torch.where(fits, accuracy, torch.full_like(accuracy, -1.0))
    best = accuracy == accuracy.max()
    return int(torch.where(best, cost, torch.full_like(cost, math.inf)).flatten().argmin())


def choose_threshold(sweep: Sweep, min_accuracy: float | None = None, max_flops: float | None = None,
                     target_flops: float | None = None) -> OperatingPoint:
    """Pick an operating point on (validation) data, for exactly one requirement:

    * ``min_accuracy``: the cheapest point whose accuracy is at least this (ties: most accurate);
    * ``max_flops``: the most accurate point whose expected FLOPs fit the budget (ties: cheapest);
    * ``target_flops``: *spend* the budget: the most expensive point that fits it (the fewest
      exits the budget allows; ties: most accurate). Its exit share is fixed by the budget, so
      it does not jump when accuracy, a noisy quantity, changes a little (Chapter 5).
    """
    check_type("sweep", sweep, Sweep, "a Sweep (sweep_thresholds or sweep_shared_threshold)")
    given = [r is not None for r in (min_accuracy, max_flops, target_flops)]
    if sum(given) != 1:
        raise ValueError("give exactly one of min_accuracy, max_flops or target_flops")
    if min_accuracy is not None:
        min_accuracy = check_number("min_accuracy", min_accuracy, 0.0, 1.0)
        ok = sweep.accuracy >= min_accuracy - 1e-12
        if not ok.any():
            best = float(sweep.accuracy.max())
            raise ValueError(f"no threshold reaches accuracy {min_accuracy:.4f}; best is {best:.4f}")
        cost = torch.where(ok, sweep.expected_flops, torch.full_like(sweep.expected_flops, math.inf))
        best = torch.nonzero(cost == cost.min()).flatten()
        return sweep.point(int(best[sweep.accuracy[best].argmax()]))
    name = "max_flops" if max_flops is not None else "target_flops"
    budget = check_number(name, max_flops if max_flops is not None else target_flops)
    ok = sweep.expected_flops <= budget + 1e-9
    if not ok.any():
        cheapest = float(sweep.expected_flops.min())
        raise ValueError(f"no threshold fits {budget:.0f} FLOPs; the cheapest needs {cheapest:.0f}")
    if target_flops is not None:
        cost = torch.where(ok, sweep.expected_flops, torch.full_like(sweep.expected_flops, -math.inf))
        best = torch.nonzero(cost == cost.max()).flatten()
        return sweep.point(int(best[sweep.accuracy[best].argmax()]))
    return sweep.point(_most_accurate_within(sweep.accuracy, sweep.expected_flops, budget))


def evaluate_threshold(threshold: float, scores: torch.Tensor, early_correct: torch.Tensor,
                       final_correct: torch.Tensor, early_flops: float, deep_flops: float) -> OperatingPoint:
    """The operating point that one fixed threshold gives (e.g. a validation threshold on test)."""
    sweep = sweep_thresholds(scores, early_correct, final_correct, early_flops, deep_flops,
                             torch.tensor([check_threshold(threshold)]))
    return sweep.point(0)


@dataclass(frozen=True)
class ChosenPoint:
    """A threshold chosen on validation, and what it gives there and on test."""

    criterion: str
    val: OperatingPoint
    test: OperatingPoint
    test_final_accuracy: float
    bootstrap_thresholds: tuple[float, ...]  # the choice on each resample (empty without bootstrap)

    @property
    def threshold(self) -> float:
        return self.val.threshold


def choose_on_validation(val: ExitRecord, test: ExitRecord, criterion: str, early_flops: float, deep_flops: float,
                         max_accuracy_drop: float | None = None, max_flops: float | None = None,
                         target_flops: float | None = None, bootstrap: int = 0, seed: int = 0) -> ChosenPoint:
    """Choose the threshold of a two-exit network on validation, then evaluate it on test.

    Exactly one requirement: an accuracy floor relative to the final exit
    (``max_accuracy_drop``), the most accurate point within a FLOPs budget (``max_flops``), or
    the point that spends a FLOPs budget (``target_flops``; see :func:`choose_threshold`).
    With ``bootstrap=B > 0`` the choice is made on B resamples of the validation set (seeded)
    and the median threshold is used (bagging).

    ``val`` and ``test`` are records of the same two-exit network (a record of more exits is
    refused: its exit 2 is not the final exit). A drop larger than the final exit's accuracy
    means no floor at all (accuracy floor 0), not an error.
    """
    check_criterion(criterion)
    for name, record in (("val", val), ("test", test)):
        check_type(name, record, ExitRecord, "an ExitRecord (earlyexit.evaluation.collect)")
        if record.num_exits != 2:
            raise ValueError(f"{name} must be the record of a two-exit network, got {record.num_exits} exits: "
                             "use sweep_shared_threshold or search_thresholds for more")
    if sum(r is not None for r in (max_accuracy_drop, max_flops, target_flops)) != 1:
        raise ValueError("give exactly one of max_accuracy_drop, max_flops or target_flops")
    if max_accuracy_drop is not None:
        check_number("max_accuracy_drop", max_accuracy_drop, 0.0, 1.0)
    check_int("bootstrap", bootstrap, 0)
    check_seed("seed", seed)
    scores, early, final = val.scores(criterion), val.correct(1), val.correct(2)

    def choose(rows: torch.Tensor | None) -> OperatingPoint:
        s, e, f = (scores, early, final) if rows is None else (scores[rows], early[rows], final[rows])
        sweep = sweep_thresholds(s, e, f, early_flops, deep_flops)
        floor = None if max_accuracy_drop is None else max(float(f.float().mean()) - max_accuracy_drop, 0.0)
        return choose_threshold(sweep, min_accuracy=floor, max_flops=max_flops, target_flops=target_flops)

    picks: tuple[float, ...] = ()
    if bootstrap:
        generator = torch.Generator().manual_seed(seed)
        picks = tuple(choose(torch.randint(len(scores), (len(scores),), generator=generator)).threshold
                      for _ in range(bootstrap))
        chosen = evaluate_threshold(float(torch.tensor(picks).median()), scores, early, final,
                                    early_flops, deep_flops)
    else:
        chosen = choose(None)
    on_test = evaluate_threshold(chosen.threshold, test.scores(criterion), test.correct(1), test.correct(2),
                                 early_flops, deep_flops)
    return ChosenPoint(criterion, chosen, on_test, float(test.correct(2).float().mean()), picks)


def quantile_thresholds(scores: torch.Tensor, count: int) -> torch.Tensor:
    """``count`` candidate thresholds spread by the scores' quantiles (plus 0 and 1), float32, ascending."""
    check_int("count", count, 2)
    scores = _scores(scores)
    finite = scores[~torch.isnan(scores)]
    quantiles = torch.quantile(finite, torch.linspace(0, 1, count)) if len(finite) else torch.empty(0)
    return torch.cat([torch.tensor([0.0, 1.0]), quantiles]).unique().float()


def sweep_shared_threshold(record: ExitRecord, criterion: str, exit_costs: Sequence[float],
                           thresholds: torch.Tensor | None = None, count: int = 101) -> Sweep:
    """One threshold shared by every exit, tried at ``count`` values: accuracy and cost of each."""
    check_type("record", record, ExitRecord, "an ExitRecord (earlyexit.evaluation.collect)")
    check_criterion(criterion)
    if thresholds is None:
        thresholds = quantile_thresholds(torch.cat([record.scores(criterion, k) for k in range(1, record.num_exits)]),
                                         count)
    outcomes = [evaluate_rule(record, ThresholdRule(float(t), criterion), exit_costs) for t in thresholds]
    return Sweep(torch.as_tensor(thresholds).float(),
                 torch.tensor([o.exit_fraction for o in outcomes], dtype=torch.float64),
                 torch.tensor([o.accuracy for o in outcomes], dtype=torch.float64),
                 torch.tensor([o.expected_flops for o in outcomes], dtype=torch.float64))


@dataclass(frozen=True)
class ThresholdSearch:
    """Every combination of per-exit thresholds tried on a split, and what each gives there."""

    grids: tuple[torch.Tensor, ...]  # candidate thresholds per exit but the last
    accuracy: torch.Tensor  # one entry per combination, shaped like the grids' product
    expected_flops: torch.Tensor

    def best(self, max_flops: float) -> tuple[float, ...]:
        """The most accurate combination whose expected FLOPs fit ``max_flops`` (ties: the cheapest)."""
        budget = check_number("max_flops", max_flops)
        index = _most_accurate_within(self.accuracy, self.expected_flops, budget)
        if index is None:
            cheapest = float(self.expected_flops.min())
            raise ValueError(f"no thresholds fit {budget:.0f} FLOPs; the cheapest needs {cheapest:.0f}")
        position = torch.unravel_index(torch.tensor(index), self.accuracy.shape)
        return tuple(float(grid[int(i)]) for grid, i in zip(self.grids, position))


def search_thresholds(record: ExitRecord, criterion: str, exit_costs: Sequence[float],
                      count: int = 25) -> ThresholdSearch:
    """Per-exit thresholds by exhaustive search over a grid (MSDNet's budgeted setting).

    Each exit but the last gets ``count`` candidates from its own scores' quantiles, and
    every combination is evaluated with :func:`~earlyexit.evaluation.evaluate_rule`. Pick one
    for a budget with :meth:`ThresholdSearch.best` (on validation, then evaluate it on test).
    """
    check_type("record", record, ExitRecord, "an ExitRecord (earlyexit.evaluation.collect)")
    check_criterion(criterion)
    grids = tuple(quantile_thresholds(record.scores(criterion, k), count) for k in range(1, record.num_exits))
    combos = list(itertools.product(*[g.tolist() for g in grids]))
    outcomes = [evaluate_rule(record, ThresholdRule(list(c), criterion), exit_costs) for c in combos]
    shape = tuple(len(g) for g in grids)
    accuracy = torch.tensor([o.accuracy for o in outcomes], dtype=torch.float64).reshape(shape)
    flops = torch.tensor([o.expected_flops for o in outcomes], dtype=torch.float64).reshape(shape)
    return ThresholdSearch(grids, accuracy, flops)
