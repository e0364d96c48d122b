"""Statistics over seeds: mean, spread, a confidence interval, and Welch's t-test.

`summarize(values)` gives a figure's mean, sample standard deviation and 95 %
Student-t interval of the mean; `welch(a, b)` says whether two sets of seeds
differ by more than their spread explains. Student's t distribution
(`t_cdf`, `t_quantile`, and the p-value) is scipy's `scipy.stats.t`. The Welch
statistic is computed here, not by `scipy.stats.ttest_ind`: that warns about a
side whose seeds all agree, common for a figure that does not vary, and has no
answer when neither side varies, where this one is certain. Nothing here loads
TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable

import scipy.stats

from recurrent_mnist.errors import ConfigError

__all__ = ["Summary", "WelchResult", "format_p", "summarize", "t_cdf", "t_quantile", "welch"]


@dataclasses.dataclass(frozen=True)
class Summary:
    """A figure over seeds.

    Attributes:
        n: how many values there were (NaN and None are not counted).
        mean: their mean; None when there are none.
        std: the sample standard deviation (ddof=1); None when `n < 2`.
        ci_low, ci_high: the Student-t confidence interval of the mean
            (95 % unless asked otherwise); None when `n < 2`.
    """

    n: int
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None


@dataclasses.dataclass(frozen=True)
class WelchResult:
    """Welch's two-sided t-test of `mean(a) == mean(b)`.

    Attributes:
        t: `(mean(a) - mean(b)) / sqrt(var(a)/n_a + var(b)/n_b)`, as scipy's
            `ttest_ind(a, b, equal_var=False)` signs it.
        df: the Welch–Satterthwaite degrees of freedom.
        p: the two-sided p-value.

    All three are None when either side has fewer than two values: there is
    no spread to test against.
    """

    t: float | None
    df: float | None
    p: float | None


def _finite(values: Iterable) -> list[float]:
    """The values as floats, NaN and None left out."""
    kept = []
    for value in values:
        if value is None:
            continue
        value = float(value)
        if not math.isnan(value):
            kept.append(value)
    return kept


def _mean_and_variance(values: list[float]) -> tuple[float, float | None]:
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)


def summarize(values: Iterable, confidence: float = 0.95) -> Summary:
    """The mean, sample standard deviation and Student-t interval of the mean of `values`.

    Args:
        values: numbers; NaN and None (a seed without the figure) are left out.
        confidence: the interval's coverage, in (0, 1). Default: 0.95.

    Example:

    >>> s = summarize([0.97, 0.98, None, 0.99])
    >>> s.n, round(s.mean, 4), round(s.std, 4), round(s.ci_low, 4), round(s.ci_high, 4)
    (3, 0.98, 0.01, 0.9552, 1.0048)
    """
    if not 0.0 < confidence < 1.0:
        raise ConfigError(
            f"`confidence` must be a number in (0, 1). Received: confidence={confidence!r}", argument="confidence"
        )
    kept = _finite(values)
    if not kept:
        return Summary(0, None, None, None, None)
    mean, variance = _mean_and_variance(kept)
    if variance is None:
        return Summary(1, mean, None, None, None)
    std = math.sqrt(variance)
    half_width = t_quantile(0.5 + confidence / 2, len(kept) - 1) * std / math.sqrt(len(kept))
    return Summary(len(kept), mean, std, mean - half_width, mean + half_width)


def welch(a: Iterable, b: Iterable) -> WelchResult:
    """Welch's two-sided t-test: do `a` and `b` have different means, given their spreads?

    NaN and None are left out. When both sides have no spread at all, the
    answer is certain: p = 1.0 if the means are equal, else 0.0.

    Example:

    >>> result = welch([10.1, 10.3, 9.9, 10.2], [12.0, 12.4, 11.8, 12.1])
    >>> round(result.t, 2), round(result.df, 2), result.p < 0.001
    (-12.88, 5.3, True)
    """
    a, b = _finite(a), _finite(b)
    if len(a) < 2 or len(b) < 2:
        return WelchResult(None, None, None)
    mean_a, var_a = _mean_and_variance(a)
    mean_b, var_b = _mean_and_variance(b)
    se2_a, se2_b = var_a / len(a), var_b / len(b)
    se2 = se2_a + se2_b
    if se2 == 0.0:
        if mean_a == mean_b:
            return WelchResult(0.0, float(len(a) + len(b) - 2), 1.0)
        return WelchResult(math.copysign(math.inf, mean_a - mean_b), float(len(a) + len(b) - 2), 0.0)
    t = (mean_a - mean_b) / math.sqrt(se2)
    # Welch–Satterthwaite, with each side's share of se2 in place of se2 itself: nothing underflows.
    share_a, share_b = se2_a / se2, se2_b / se2
    df = 1.0 / (share_a**2 / (len(a) - 1) + share_b**2 / (len(b) - 1))
    return WelchResult(t, df, float(2.0 * scipy.stats.t.sf(abs(t), df)))


def format_p(p: float | None) -> str:
    """A p-value as the tables show it: `0.034`, `< 0.001`, or `–` when there is none (None or NaN)."""
    if p is None or math.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


# --------------------------------------------------------------------------- Student's t


def _check_df(df: float) -> float:
    if isinstance(df, bool) or not isinstance(df, (int, float)) or not df > 0:
        raise ConfigError(f"`df` must be a number > 0. Received: df={df!r}", argument="df")
    return float(df)


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t distribution with `df` degrees of freedom (any df > 0)."""
    return float(scipy.stats.t.cdf(t, _check_df(df)))


def t_quantile(p: float, df: float) -> float:
    """The t with `t_cdf(t, df) == p`, for p in (0, 1): `t_quantile(0.975, 10)` is 2.2281."""
    df = _check_df(df)
    if not 0.0 < p < 1.0:
        raise ConfigError(f"`p` must be a number in (0, 1). Received: p={p!r}", argument="p")
    return float(scipy.stats.t.ppf(p, df))
