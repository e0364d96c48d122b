"""The statistics over seeds: textbook t quantiles, Welch's test against scipy, and their properties."""

from __future__ import annotations

import doctest
import math
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recurrent_mnist import stats
from recurrent_mnist.errors import ConfigError
from recurrent_mnist.stats import format_p, summarize, t_cdf, t_quantile, welch

PROPERTY = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(("df", "expected"), [(1, 12.7062), (2, 4.3027), (10, 2.2281), (30, 2.0423)])
def test_t_quantiles_match_the_textbook_table(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-5)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=5e-5)
    assert t_cdf(expected, df) == pytest.approx(0.975, abs=1e-5)


def test_t_cdf_in_closed_form():
    # df = 1 is the Cauchy distribution, df = 2 has F(t) = 1/2 + t / (2 sqrt(2 + t²)).
    for t in (-30.0, -1.0, 0.0, 0.3, 4.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, rel=1e-12)
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), rel=1e-12)
    assert t_cdf(math.inf, 3) == 1.0 and t_cdf(-math.inf, 3) == 0.0


def test_summary_of_seeds():
    summary = summarize([0.97, 0.98, float("nan"), None, 0.99])
    assert summary.n == 3 and summary.mean == pytest.approx(0.98) and summary.std == pytest.approx(0.01)
    # mean ± t(0.975, 2) · s / sqrt(3)
    assert summary.ci_low == pytest.approx(0.98 - 4.302653 * 0.01 / math.sqrt(3))
    assert summary.ci_high == pytest.approx(0.98 + 4.302653 * 0.01 / math.sqrt(3))
    assert summarize([5.0]) == stats.Summary(1, 5.0, None, None, None)
    assert summarize([None, float("nan")]) == stats.Summary(0, None, None, None, None)


def test_welch_of_a_textbook_example():
    # Two groups of four with unequal spreads; scipy.stats.ttest_ind(a, b, equal_var=False) gives the same.
    result = welch([10.1, 10.3, 9.9, 10.2], [12.0, 12.4, 11.8, 12.1])
    assert result.t == pytest.approx(-12.881276052, rel=1e-9)
    assert result.df == pytest.approx(5.299270073, rel=1e-9)
    assert result.p == pytest.approx(3.3509054890e-05, rel=1e-8)


def test_welch_without_enough_values_or_without_spread():
    assert welch([1.0], [1.0, 2.0]) == stats.WelchResult(None, None, None)
    assert welch([1.0, None, float("nan")], [1.0, 2.0]).p is None
    assert welch([3.0, 3.0], [3.0, 3.0, 3.0]).p == 1.0
    assert welch([3.0, 3.0], [4.0, 4.0]).p == 0.0
    # A tiny spread on one side only: the degrees of freedom do not underflow to a division by zero.
    assert welch([0.0, 0.0], [0.0, 1e-93]).df == pytest.approx(1.0)


def test_bad_arguments_name_themselves():
    with pytest.raises(ConfigError, match=r"`p` must be a number in \(0, 1\). Received: p=1.0"):
        t_quantile(1.0, 3)
    with pytest.raises(ConfigError, match=r"`df` must be a number > 0. Received: df=0"):
        t_cdf(1.0, 0)
    with pytest.raises(ConfigError, match="`confidence`"):
        summarize([1.0, 2.0], confidence=95)


def test_the_docstring_examples_hold():
    assert doctest.testmod(stats).failed == 0


# --------------------------------------------------------------------------- properties

DF = st.floats(0.5, 2000.0)
# Figures on a grid of 0.01, as measured ones are: no catastrophic cancellation in scipy's reference.
SAMPLE = st.lists(st.integers(-100_000, 100_000).map(lambda i: i / 100), min_size=2, max_size=12)


@PROPERTY
@given(t=st.floats(-200.0, 200.0), df=DF)
def test_t_cdf_matches_scipy(t, df):
    scipy_stats = pytest.importorskip("scipy.stats")
    expected = float(scipy_stats.t.cdf(t, df))
    assert t_cdf(t, df) == pytest.approx(expected, rel=1e-9, abs=1e-300)
    assert t_cdf(-t, df) == pytest.approx(1.0 - expected, rel=1e-9, abs=1e-15)


@PROPERTY
@given(p=st.floats(1e-9, 1 - 1e-9), df=DF)
def test_t_quantile_inverts_t_cdf(p, df):
    assert t_cdf(t_quantile(p, df), df) == pytest.approx(p, rel=1e-9, abs=1e-15)


@PROPERTY
@given(a=SAMPLE, b=SAMPLE)
def test_welch_matches_scipy(a, b):
    scipy_stats = pytest.importorskip("scipy.stats")
    ours = welch(a, b)
    if summarize(a).std == 0 and summarize(b).std == 0:
        assert ours.p == (1.0 if math.fsum(a) / len(a) == math.fsum(b) / len(b) else 0.0)
        return
    with warnings.catch_warnings():
        # scipy warns about a side whose values are all equal; its result is still exact.
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = scipy_stats.ttest_ind(a, b, equal_var=False)
    assert ours.t == pytest.approx(float(theirs.statistic), rel=1e-6, abs=1e-9)
    assert ours.p == pytest.approx(float(theirs.pvalue), rel=1e-6, abs=1e-12)


@PROPERTY
@given(a=SAMPLE, b=SAMPLE)
def test_welch_is_symmetric_and_a_sample_against_itself_is_not_significant(a, b):
    forward, backward = welch(a, b), welch(b, a)
    assert forward.p == pytest.approx(backward.p) and forward.t == pytest.approx(-backward.t)
    assert welch(a, a).p == 1.0


@PROPERTY
@given(values=SAMPLE)
def test_the_interval_holds_the_mean_and_widens_with_confidence(values):
    narrow, wide = summarize(values, confidence=0.9), summarize(values)
    assert narrow.ci_low <= narrow.mean <= narrow.ci_high
    assert wide.ci_low <= narrow.ci_low and narrow.ci_high <= wide.ci_high


def test_p_values_read_as_the_tables_show_them():
    assert [format_p(p) for p in (0.0342, 0.0004, 1.0, None, float("nan"))] == ["0.034", "< 0.001", "1.000", "–", "–"]
