"""Honest comparisons: spread over seeds, and paired tests on the same test images.

Two kinds of noise hide in every accuracy the book reports:

* **training noise**: another seed (or another CPU, whose rounding makes training take a
  slightly different path) gives another model. It is measured by training several seeds:
  :func:`mean_and_sd`, and :func:`compare_seeds` for two settings (Welch's t interval).
* **test-set noise**: 10,000 test images pin an accuracy down to a few tenths of a point.
  Two predictions *on the same images* are compared pairwise, which cancels the images both
  get right or both get wrong: :func:`mcnemar` (exact test on the disagreements, with an
  interval for the difference).

Every comparison is an :class:`Interval` (a difference, or a ratio such as a speedup): one
type, whose verdict words, direction and target verdicts are written once. A difference is
reported as one only when its 95% interval excludes 0 (a ratio: 1); otherwise the book says
"no measurable difference". :func:`seed_tolerance` turns a spread over seeds into how
far a re-run on another machine may move a recorded result.

A **proportion** (the share of images one exit gets right, of tokens one layer predicts)
gets an interval for proportions, :func:`proportion` (Wilson's), never a mean plus or
minus a spread that can leave [0, 1]. A chapter names its **primary** comparison; the
others are exploratory, and :func:`holm` widens their intervals so that, together, they
wrongly claim a difference no more often than one alone would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from scipy import stats as scipy_stats

from .checks import check_finite, check_flags, check_int, check_number, check_type

LEVEL = 0.95


def in_words(direction: int, above: str, below: str, neither: str) -> str:
    """``above`` for a measured +1, ``below`` for -1, ``neither`` for 0 (inside the noise)."""
    if direction not in (-1, 0, 1):
        raise ValueError(f"direction must be -1, 0 or +1, got {direction!r}")
    return {1: above, -1: below, 0: neither}[direction]


def _listed(values: object) -> object:
    """A tensor as it is (its shape is checked), anything else as a list."""
    return values if isinstance(values, torch.Tensor) else list(values)


def mean_and_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``torch.std_mean``); the spread of a single value is 0."""
    tensor = check_finite("values", _listed(values), ndim=1)
    if len(tensor) == 0:
        raise ValueError("mean_and_sd needs at least one value")
    if len(tensor) == 1:
        return float(tensor[0]), 0.0
    sd, mean = torch.std_mean(tensor)
    return float(mean), float(sd)


def _z(level: float) -> float:
    return float(scipy_stats.norm.ppf(0.5 + level / 2))


def _level(level: float) -> float:
    return check_number("level", level, 0.0, 1.0, open_low=True, open_high=True)


@dataclass(frozen=True)
class Proportion:
    """A share of ``n`` items with its Wilson interval (which never leaves [0, 1])."""

    estimate: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    def text(self, digits: int = 1) -> str:
        """"87.9% (95% CI 87.1-88.6%, n = 4,213)"."""
        return (f"{self.estimate:.{digits}%} ({level_text(self.level)} CI {self.low * 100:.{digits}f}-"
                f"{self.high * 100:.{digits}f}%, n = {self.n:,})")


def proportion(successes: int | torch.Tensor, n: int | None = None, level: float = LEVEL) -> Proportion:
    """The share ``successes / n`` with Wilson's score interval; or, given a tensor of right/wrong
    flags, the share of true ones."""
    level = _level(level)
    if isinstance(successes, torch.Tensor) and n is None:
        flags = check_flags("successes", successes, ndim=1)
        successes, n = int(flags.sum()), len(flags)
    successes, n = check_int("successes", successes, 0), check_int("n", n)
    if successes > n:
        raise ValueError(f"successes ({successes}) cannot exceed n ({n})")
    interval = scipy_stats.binomtest(successes, n).proportion_ci(confidence_level=level, method="wilson")
    return Proportion(successes / n, float(interval.low), float(interval.high), n, level)


def level_text(level: float) -> str:
    text = f"{level * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval at ``level``: the book's one type for a comparison.

    ``null`` is the value that means "no difference": 0 for a difference a - b (accuracy
    points, seconds), 1 for a ratio a / b (a speedup, a latency over another). Every verdict
    the book prints or glues comes from here: :attr:`direction` (which side of ``null`` the
    whole interval lies on), :meth:`verdict` (the words with the numbers), :meth:`words`
    (a sentence chosen by the direction), :meth:`against` (a target met, missed, or inside
    the noise) and :meth:`where` (a value above, inside or below the interval).
    """

    estimate: float
    low: float
    high: float
    null: float = 0.0
    level: float = LEVEL
    p_value: float | None = None

    def __post_init__(self) -> None:
        for name in ("estimate", "low", "high"):
            check_number(name, getattr(self, name), -math.inf)
        if self.low > self.high:
            raise ValueError(f"an interval needs low <= high, got {self.low!r} and {self.high!r}")
        if self.null not in (0.0, 1.0):
            raise ValueError(f"null must be 0 (a difference) or 1 (a ratio), got {self.null!r}")
        if self.is_ratio and not self.low > 0:
            raise ValueError(f"a ratio's interval must lie above 0, got {self.low!r} to {self.high!r}")
        _level(self.level)

    @property
    def is_ratio(self) -> bool:
        return self.null == 1.0

    @property
    def direction(self) -> int:
        """+1 when the whole interval lies above ``null``, -1 when below, 0 when it contains it."""
        return 1 if self.low > self.null else -1 if self.high < self.null else 0

    @property
    def measurable(self) -> bool:
        return self.direction != 0

    def words(self, above: str, below: str, neither: str) -> str:
        """The sentence that matches this verdict: prose that follows the measurement on any machine."""
        return in_words(self.direction, above, below, neither)

    def against(self, target: float) -> str:
        """"met" when the whole interval lies at or above ``target``, "missed" when it lies below,
        "inside the noise" when it straddles it (another run may land on either side)."""
        target = check_number("target", target, -math.inf)
        return "met" if self.low >= target else "missed" if self.high < target else "inside the noise"

    def where(self, value: float) -> str:
        """Where ``value`` lies against the interval: "above", "below" or "inside"."""
        value = check_number("value", value, -math.inf)
        return "above" if value > self.high else "below" if value < self.low else "inside"

    def verdict(self, scale: float = 100.0, unit: str = " points", above: str = "faster",
                below: str = "slower", note: str | None = None) -> str:
        """The estimate in words with its interval.

        A difference: "+0.42 points (95% CI +0.10 to +0.74 points)" or "no measurable difference
        (95% CI -0.10 to +0.30 points)", with enough decimals that the interval's width shows two
        significant digits. A ratio: "1.85x faster (95% CI 1.71-1.98x)", "1.30x slower (95% CI
        1.10-1.50x)" (a ratio below 1 is said the other way up), or "no measurable difference".
        A ``note`` goes inside the parentheses, after the interval.
        """
        level = level_text(self.level)
        if note is not None:
            check_type("note", note, str, "a str")
            shown = self.verdict(scale, unit, above, below)
            return f"{shown[:-1]}; {note})"
        if self.is_ratio:
            if self.direction > 0:
                return f"{self.estimate:.2f}x {above} ({level} CI {self.low:.2f}-{self.high:.2f}x)"
            if self.direction < 0:
                return f"{1 / self.estimate:.2f}x {below} ({level} CI {1 / self.high:.2f}-{1 / self.low:.2f}x)"
            return f"no measurable difference ({level} CI {self.low:.2f}-{self.high:.2f}x)"
        width = (self.high - self.low) * abs(scale)
        digits = 2 if width <= 0 else max(2, 1 - math.floor(math.log10(width)))
        bounds = f"{self.low * scale:+.{digits}f} to {self.high * scale:+.{digits}f}{unit}"
        if self.measurable:
            return f"{self.estimate * scale:+.{digits}f}{unit} ({level} CI {bounds})"
        return f"no measurable difference ({level} CI {bounds})"

    def __str__(self) -> str:
        if self.is_ratio:
            return f"{self.estimate:.2f}x ({self.low:.2f}-{self.high:.2f})"
        return self.verdict()


def _no_spread(estimate: float, level: float, null: float = 0.0) -> Interval:
    """Identical values on every run: a zero-width interval (scipy's t would divide by zero)."""
    return Interval(estimate, estimate, estimate, null, level, 1.0 if estimate == null else 0.0)


def t_interval(values: Sequence[float], level: float = LEVEL, null: float = 0.0) -> Interval:
    """The mean of ``values`` (at least two) with its one-sample t interval (scipy). For
    ``null`` = 1 the values are ratios, averaged on a log scale: a geometric mean and its interval."""
    level = _level(level)
    data = check_finite("values", _listed(values), ndim=1).double()
    if len(data) < 2:
        raise ValueError(f"a t interval needs at least two values, got {len(data)}")
    if null == 1.0:
        if not bool((data > 0).all()):
            raise ValueError(f"ratios must all be > 0, got {data.tolist()}")
        data = data.log()
    if float(data.std()) == 0:
        result = _no_spread(float(data[0]), level)
    else:
        test = scipy_stats.ttest_1samp(data.numpy(), 0.0)
        ci = test.confidence_interval(level)
        result = Interval(float(data.mean()), float(ci.low), float(ci.high), 0.0, level, float(test.pvalue))
    if null == 1.0:
        return Interval(math.exp(result.estimate), math.exp(result.low), math.exp(result.high), 1.0, level,
                        result.p_value)
    return result


def prediction_range(values: Sequence[float], level: float = LEVEL, null: float = 0.0) -> tuple[float, float]:
    """Where one more value from the same source should fall, at ``level``, from ``values`` (at
    least two): the t prediction interval, mean ± t(n-1) · sd · sqrt(1 + 1/n). It is wider
    than the mean's interval, since a new value has its own spread. For ``null`` = 1 the values
    are ratios, taken on a log scale."""
    level = _level(level)
    data = check_finite("values", _listed(values), ndim=1).double()
    if len(data) < 2:
        raise ValueError(f"a prediction interval needs at least two values, got {len(data)}")
    if null == 1.0:
        if not bool((data > 0).all()):
            raise ValueError(f"ratios must all be > 0, got {data.tolist()}")
        data = data.log()
    n = len(data)
    half = float(scipy_stats.t.ppf((1 + level) / 2, n - 1)) * float(data.std()) * math.sqrt(1 + 1 / n)
    low, high = float(data.mean()) - half, float(data.mean()) + half
    return (math.exp(low), math.exp(high)) if null == 1.0 else (low, high)


def compare_seeds(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """mean(a) - mean(b) over independently seeded runs, with Welch's t interval (scipy)."""
    level = _level(level)
    a, b = check_finite("a", _listed(a), ndim=1).tolist(), check_finite("b", _listed(b), ndim=1).tolist()
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"compare_seeds needs at least two runs on each side, got {len(a)} and {len(b)}")
    estimate = mean_and_sd(a)[0] - mean_and_sd(b)[0]
    if mean_and_sd(a)[1] == 0 and mean_and_sd(b)[1] == 0:
        return _no_spread(estimate, level)
    test = scipy_stats.ttest_ind(a, b, equal_var=False)
    ci = test.confidence_interval(level)
    return Interval(estimate, float(ci.low), float(ci.high), 0.0, level, float(test.pvalue))


def compare_paired_seeds(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """mean(a - b) when a[i] and b[i] come from the same seed (the same model, two settings): t interval."""
    level = _level(level)
    a, b = check_finite("a", _listed(a), ndim=1).tolist(), check_finite("b", _listed(b), ndim=1).tolist()
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"compare_paired_seeds needs the same seeds on both sides, at least two; "
                         f"got {len(a)} and {len(b)}")
    return t_interval([x - y for x, y in zip(a, b)], level)


def _paired(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = check_flags("correct_a", a, ndim=1), check_flags("correct_b", b, ndim=1)
    if len(a) != len(b) or len(a) == 0:
        raise ValueError(f"paired comparisons need the same samples on both sides, got {len(a)} and {len(b)}")
    return a, b


def mcnemar(correct_a: torch.Tensor, correct_b: torch.Tensor, level: float = LEVEL) -> Interval:
    """Accuracy of a minus accuracy of b on the same samples: exact McNemar test, with a Wald interval.

    Only the samples where exactly one of the two is right carry information: under "no
    difference" each of them is a fair coin, which the exact binomial test checks.
    """
    level = _level(level)
    a, b = _paired(correct_a, correct_b)
    n = len(a)
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    estimate = (only_a - only_b) / n
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(scipy_stats.binomtest(only_a, discordant, 0.5).pvalue)
    # variance of the paired difference of two proportions
    var = (only_a + only_b - (only_a - only_b) ** 2 / n) / n**2
    half = _z(level) * math.sqrt(max(var, 0.0))
    return Interval(estimate, estimate - half, estimate + half, 0.0, level, p)


def binomial_se(p: float, n: int) -> float:
    """Standard error of an accuracy ``p`` measured on ``n`` samples."""
    p = check_number("p", p, 0.0, 1.0)
    return math.sqrt(p * (1 - p) / check_int("n", n))


def auroc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve: the probability that a random positive scores above a random negative.

    Ties count one half (the Mann-Whitney U statistic, computed from average ranks). For an
    exit score, "positive" is "this exit is right": 1.0 ranks every right sample above every
    wrong one, 0.5 is a coin flip. No threshold is involved.
    """
    scores = check_finite("scores", scores, ndim=1)
    positive = check_flags("positive", positive, ndim=1)
    if len(scores) != len(positive):
        raise ValueError(f"{len(scores)} scores for {len(positive)} outcomes")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("auroc needs both right and wrong samples")
    ranks = torch.from_numpy(scipy_stats.rankdata(scores.numpy()))  # average ranks for ties
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def seed_tolerance(values: Sequence[float], factor: float = 4.0, floor: float = 0.0) -> float:
    """How far a result averaged over seeds may move on a re-run: ``factor`` standard deviations
    over the seeds, and at least ``floor``.

    A re-run on another machine trains slightly different models (its rounding differs), so a
    recorded value may move about as much as one seed differs from another. The sample
    standard deviation of a few seeds is itself uncertain, hence a generous factor.
    """
    if len(values) < 2:
        raise ValueError(f"a seed tolerance needs at least two seeds, got {len(values)}")
    factor = check_number("factor", factor, open_low=True)
    return max(factor * mean_and_sd(values)[1], check_number("floor", floor))


def holm(comparisons: dict[str, Callable[[float], Interval]], level: float = LEVEL) -> dict[str, Interval]:
    """Run a family of comparisons with Holm's step-down correction, as intervals.

    Each comparison is a function of the confidence level. All are first run at ``level`` for
    their p-values. In order of p-value, the i-th (from 0) is then run at level
    1 - alpha / (m - i), as Holm tests it, until one fails its test: that one and every later
    one are run at the level of the failed step, where none can claim a difference either.
    Together, the family wrongly claims a difference with probability at most
    alpha = 1 - ``level``.
    """
    level = _level(level)
    alpha, m = 1 - level, len(comparisons)
    first = {name: compare(level) for name, compare in comparisons.items()}
    if any(d.p_value is None for d in first.values()):
        raise ValueError("holm needs comparisons that report a p-value")
    adjusted, step = {}, None
    for rank, name in enumerate(sorted(first, key=lambda name: first[name].p_value)):
        if step is None and first[name].p_value > alpha / (m - rank):
            step = 1 - alpha / (m - rank)  # the first failure: the stopping level from here on
        adjusted[name] = comparisons[name](1 - alpha / (m - rank) if step is None else step)
    return {name: adjusted[name] for name in comparisons}
