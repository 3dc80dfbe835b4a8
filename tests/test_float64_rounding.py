"""float64 results are correctly rounded: the exact value of the inputs rounded once (to nearest,
ties to even), bit for bit, on every backend, function, reduction, axis and path; weights of
one sign always, weights of mixed sign up to the stated condition number (1024).

What can break: a finishing place that rounds the sums' double-double before dividing (a
mean within 1.5 ulp, not 0.5); a path that drops the double-double's rest (the 1-d fast
path, the strided walk, the axis outputs finished in C, the numba fast path, the NumPy
backend, the L2 penalty); a certificate whose margin is too small (the quotient's, the
root's, the weights' share) or that certifies a zero sum whose elements underflowed; the
exact slow path for float64 (its dtype, its integer shortcut).

The reference is tests/reference.py's exact rationals rounded by tests/ulp.py (independent of
fastl2._exact); the certificate's own logic is checked against Fractions too.  The near-tie
cases of both dtypes are tests/test_correct_rounding.py's adversarial ones.
"""
from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastl2
import reference as ref

F64 = np.float64
KINDS = ("mse", "mae", "huber", "rmse", "l2_penalty")
PATHS = ("contiguous", "reversed", "column", "and_grad")


def _data(rng, family: str, n: int):
    """(y_true, y_pred) of one family of float64 (or int64) inputs."""
    if family == "wide":  # exponents over 2**-400 .. 2**400: terms of every size in one sum
        e = rng.integers(-400, 400, n)
        return np.ldexp(rng.standard_normal(n), e), np.ldexp(rng.standard_normal(n), e + rng.integers(-2, 3, n))
    if family == "cancel":  # differences of a few ulp: exact differences, squares not
        t = rng.standard_normal(n)
        return t, t * (1.0 + rng.integers(-9, 9, n) * 2.0 ** -52)
    if family == "int64":  # past 2**53: the difference's rounding error carried
        t = rng.integers(-2 ** 62, 2 ** 62, n)
        return t, t + rng.integers(-2 ** 40, 2 ** 40, n)
    if family == "grid":  # few bits: exact sums, results on or near ties
        t = rng.integers(-2 ** 20, 2 ** 20, n) * 2.0 ** 33
        return t, t + rng.integers(-2 ** 26, 2 ** 26, n).astype(F64)
    t = rng.standard_normal(n) * 2.0 ** float(rng.integers(-30, 30))
    return t, t + rng.standard_normal(n) * 2.0 ** float(rng.integers(-30, 0))


def _call(kind, y_true, y_pred, weights, reduction, path, delta=0.75):
    if kind == "l2_penalty":
        params = {"reversed": y_pred[::-1], "column": np.stack([y_pred, y_pred], 1)[:, 1]}.get(path, y_pred)
        return fastl2.l2_penalty(params, 0.3)
    extra = {"delta": delta} if kind == "huber" else {}
    if path == "and_grad" and kind != "rmse":
        return getattr(fastl2, kind + "_and_grad")(y_true, y_pred, weights, reduction=reduction, **extra)[0]
    if path == "reversed":
        y_true, y_pred = y_true[::-1].copy()[::-1], y_pred[::-1].copy()[::-1]
        weights = None if weights is None else weights[::-1].copy()[::-1]
    if path == "column":  # output 1 of axis=0 (the other output: the reversal)
        stack = lambda a: None if a is None else np.ascontiguousarray(np.stack([a[::-1], a], 1))  # noqa: E731
        return getattr(fastl2, kind)(stack(y_true), stack(y_pred), stack(weights), axis=0,
                                     reduction=reduction, **extra)[1]
    return getattr(fastl2, kind)(y_true, y_pred, weights, reduction=reduction, **extra)


def _expected(kind, y_true, y_pred, weights, reduction, delta=0.75):
    if kind == "l2_penalty":
        return ref.l2_penalty(np.asarray(y_pred, F64) if y_pred.dtype.kind != "i" else y_pred, 0.3)
    extra = {"delta": delta} if kind == "huber" else {}
    return ref.loss(kind, y_true, y_pred, weights, reduction, **extra)


def test_random_float64_results_are_correctly_rounded(backend):
    """Random inputs of five families (plain, wide exponents, cancellation, integers past
    2**53, a coarse grid), every function and reduction, weights none or non-negative, four
    paths; FASTL2_ROUNDING_CASES sets the count (10**5 per backend was run for the README)."""
    rng = np.random.default_rng(64)
    cases = int(os.environ.get("FASTL2_ROUNDING_CASES", "1500"))
    for case in range(cases):
        n = int(rng.integers(1, 40))
        family = ("plain", "wide", "cancel", "int64", "grid")[case % 5]
        y_true, y_pred = _data(rng, family, n)
        weights = rng.uniform(0, 4, n) if case % 3 else None
        kind = KINDS[case // 5 % 5]
        reduction = ("sum", "mean", "weighted_mean")[case // 25 % 3]
        if kind == "rmse" and reduction == "sum":
            reduction = "mean"
        if reduction == "weighted_mean" and weights is None:
            weights = np.ones(n)
        path = PATHS[case // 75 % 4]
        with np.errstate(all="ignore"):
            result = _call(kind, y_true, y_pred, weights, reduction, path)
        assert np.asarray(result).dtype == F64
        expected = _expected(kind, y_true, y_pred, weights, reduction)
        try:
            ref.assert_ulp(result, expected, 0)
        except AssertionError as error:
            raise AssertionError(f"case {case}: {kind} {reduction} {family} {path}: {error}") from None


def test_axis_reductions_of_many_outputs_are_correctly_rounded(backend):
    """Every output of axis reductions (the C finish of each output, the rows and columns
    kernels; numba's and NumPy's finish of the sums), each against its exact value."""
    rng = np.random.default_rng(8)
    y_true = rng.standard_normal((37, 129)) * 2.0 ** rng.integers(-40, 40, (37, 1))
    y_pred = y_true + rng.standard_normal((37, 129)) * 2.0 ** -20
    weights = rng.random((37, 129))
    for axis in (0, 1):
        for kind, reduction, w in (("mse", "mean", None), ("mae", "sum", None), ("rmse", "mean", None),
                                   ("mse", "weighted_mean", weights), ("huber", "mean", weights)):
            extra = {"delta": 2.0 ** -21} if kind == "huber" else {}
            result = getattr(fastl2, kind)(y_true, y_pred, w, axis=axis, reduction=reduction, **extra)
            ref.assert_ulp(result, ref.loss_axis(kind, y_true, y_pred, w, reduction, axis=axis, **extra), 0)


def test_mixed_sign_weights_are_correctly_rounded_up_to_the_stated_condition_number(backend):
    """The issue's 513-ulp example and random mixed-sign weights whose condition number
    sum(|w l|) / |sum(w l)| is at most 1024 (fastl2._exact.CONDITION): exact, bit for bit."""
    from fastl2 import _exact

    assert _exact.CONDITION == 1024.0
    y_true, y_pred, w = np.zeros(3), np.array([1.0, 1 + 2 ** -30, 0.1]), np.array([1.0, -1.0, 1e-3])
    for reduction in ("sum", "mean", "weighted_mean"):
        ref.assert_ulp(fastl2.mse(y_true, y_pred, w, reduction=reduction), ref.loss("mse", y_true, y_pred, w, reduction), 0)
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(300):
        n = int(rng.integers(2, 30))
        y_true, y_pred = rng.standard_normal(n), rng.standard_normal(n)
        w = rng.standard_normal(n)
        terms = [Fraction(float(wi)) * (Fraction(float(p)) - Fraction(float(t))) ** 2 for t, p, wi in zip(y_true, y_pred, w)]
        total = sum(terms, Fraction(0))
        weight_sum = sum((Fraction(float(wi)) for wi in w), Fraction(0))
        if total == 0 or weight_sum == 0:
            continue
        condition = sum(abs(x) for x in terms) / abs(total)
        if condition > 1024 or sum(abs(Fraction(float(wi))) for wi in w) / abs(weight_sum) > 1024:
            continue
        checked += 1
        for reduction in ("sum", "weighted_mean"):
            expected = ref.loss("mse", y_true, y_pred, w, reduction)
            ref.assert_ulp(fastl2.mse(y_true, y_pred, w, reduction=reduction), expected, 0)
            # (a strided layout: the planned path, whose plan keeps the weights apart)
            ref.assert_ulp(fastl2.mse(y_true[::-1].copy()[::-1], y_pred, w, reduction=reduction), expected, 0)
    assert checked > 200


@pytest.mark.parametrize("layout", ["contiguous", "reversed", "step", "column"])
def test_weighted_results_are_certified_as_weighted_on_every_layout(backend, layout):
    """A review found the planned path certifying weighted calls of any non-contiguous operand
    with an unweighted margin: wrong bits for a loss condition number of 748, and for positive
    weights of 2**100 beside squares whose error terms fall below 2**-1022.  Every layout, the
    exact value."""
    h = float.fromhex
    cases = [
        (np.array([h("-0x1.437c4955e542ep-53"), 0, 0, 0, 0, 0]), np.array([h("0x1.7e7cab30d51e8p+0"), 1, 1, 1, 1, 1]),
         np.array([h("0x1.c8c9d35f513e9p+0"), h("-0x1.fc7c16baa3e18p+1"), h("0x1.2ec0059ce212ap-61"),
                   h("-0x1.824ff0b69f8f2p-115"), h("-0x1.293fa07284397p-169"), h("0x1.230096f870000p-224")])),
        (np.zeros(3), np.array([2.0 ** -500 * (1 + 2.0 ** -40), 2.0 ** -450, 2.0 ** -476]),
         np.array([2.0 ** 100, 0.5 * (1 - 2.0 ** -52), 1 - 2.0 ** -29])),
    ]
    for y_true, y_pred, w in cases:
        for reduction in ("sum", "mean", "weighted_mean"):
            expected = ref.loss("mse", y_true, y_pred, w, reduction)
            if layout == "reversed":
                args = [a[::-1].copy()[::-1] for a in (y_true, y_pred, w)]
            elif layout == "step":
                args = [np.repeat(a, 2)[::2] for a in (y_true, y_pred, w)]
            elif layout == "column":
                args = [np.asfortranarray(np.stack([a, a], 1))[:, 1] for a in (y_true, y_pred, w)]
            else:
                args = [y_true, y_pred, w]
            ref.assert_ulp(fastl2.mse(*args, reduction=reduction), expected, 0)
            ref.assert_ulp(fastl2.mse_and_grad(*args, reduction=reduction)[0], expected, 0)


def test_zero_and_underflowing_sums_are_exact_on_every_path(backend):
    """A zero sum is certified only where its exact value must round to zero (an unweighted
    mean: every term below 2**-1075); elsewhere the exact path decides: squares that underflow
    add up to a subnormal sum, and their mean's root is far from zero."""
    x = np.random.default_rng(3).standard_normal(1000)
    for reduction in ("sum", "mean"):
        assert fastl2.mse(x, x, reduction=reduction) == 0.0
        assert fastl2.mse(x.reshape(10, 100), x.reshape(10, 100), axis=1, reduction=reduction).tolist() == [0.0] * 10
    assert fastl2.rmse(x, x) == 0.0 and fastl2.mse(x, x, np.ones(1000), reduction="weighted_mean") == 0.0
    tiny = np.full(4, 2.0 ** -538)  # each square 2**-1076: 0 in float64; four of them 2**-1074
    assert fastl2.mse(np.zeros(4), tiny, reduction="sum") == 2.0 ** -1074
    assert fastl2.mse(np.zeros(4), tiny, reduction="mean") == 0.0
    assert fastl2.rmse(np.zeros(4), tiny) == 2.0 ** -538
    assert fastl2.rmse(np.zeros((2, 4)), np.stack([tiny, tiny]), axis=1).tolist() == [2.0 ** -538] * 2
    assert fastl2.l2_penalty(tiny, 1.0) == 2.0 ** -1074


def test_subnormal_results_of_every_path_are_exact(backend):
    """A review found the exact path of axis outputs accepting an integer sum rounded into the
    subnormals (a weighted mean with weights below 1: 0 for 2**-1073)."""
    tiny = np.array([3 * 2.0 ** -538, 2.0 ** -537, 5 * 2.0 ** -540, 0.0])
    w = np.array([0.125, 0.375, 0.25, 0.0625])
    for reduction in ("sum", "mean", "weighted_mean"):
        expected = ref.loss("mse", np.zeros(4), tiny, w, reduction)
        ref.assert_ulp(fastl2.mse(np.zeros(4), tiny, w, reduction=reduction), expected, 0)
        rows = fastl2.mse(np.zeros((3, 4)), np.stack([tiny] * 3), np.stack([w] * 3), axis=1, reduction=reduction)
        ref.assert_ulp(rows, np.array([expected] * 3, dtype=object), 0)
        ref.assert_ulp(fastl2.mse(np.zeros((1, 1)), tiny[:1].reshape(1, 1), w[:1].reshape(1, 1), axis=1,
                                  reduction=reduction), np.array([ref.loss("mse", np.zeros(1), tiny[:1], w[:1],
                                                                           reduction)], dtype=object), 0)


@pytest.mark.parametrize("exponent", [-470, -300, 300, 470])
def test_results_of_data_far_from_one_are_certified_without_the_exact_path(backend, monkeypatch, exponent):
    """Sums far from 1 (data times 2**±470: squares near 2**±940) are scaled by a power of two
    before the quotient and certified as any other (a review found them all on the exact path,
    30-60x slower); their values are still the exact ones rounded once."""
    from fastl2 import _exact, _passes

    rng = np.random.default_rng(exponent & 0xFFFF)
    y_true = rng.standard_normal(1000) * 2.0 ** exponent
    y_pred = y_true + rng.standard_normal(1000) * 2.0 ** exponent
    w = rng.random(1000)
    expected = {(kind, reduction): ref.loss(kind, y_true, y_pred, w if reduction == "weighted_mean" else None, reduction)
                for kind in ("mse", "mae", "rmse") for reduction in ("sum", "mean", "weighted_mean")
                if not (kind == "rmse" and reduction == "sum")}

    def refuse(*args, **kwargs):
        raise AssertionError("the exact path was taken")

    monkeypatch.setattr(_exact, "exact_sums", refuse)
    monkeypatch.setattr(_passes, "exact_loss", refuse)
    for (kind, reduction), value in expected.items():
        weights = w if reduction == "weighted_mean" else None
        ref.assert_ulp(getattr(fastl2, kind)(y_true, y_pred, weights, reduction=reduction), value, 0)
        ref.assert_ulp(getattr(fastl2, kind)(y_true[::-1], y_pred[::-1], None if weights is None else weights[::-1],
                                             reduction=reduction), value, 0)


def test_zero_differences_skip_the_exact_sums(backend, monkeypatch):
    """y_pred equal to y_true: zero sums, which the certificate declines but for an unweighted
    mean (their terms may have underflowed), are found to be 0 by a comparison, without the
    exact sums (a review measured 25x for weighted calls, 55x for axis outputs before)."""
    from fastl2 import _exact

    x = np.random.default_rng(2).standard_normal((30, 40))
    w = np.random.default_rng(3).random((30, 40))

    def refuse(*args, **kwargs):
        raise AssertionError("the exact sums were computed")

    monkeypatch.setattr(_exact, "exact_sums", refuse)
    monkeypatch.setattr(_exact, "dyadic_totals", refuse)
    for reduction in ("sum", "mean", "weighted_mean"):
        assert fastl2.mse(x, x, w, reduction=reduction) == 0.0
        assert fastl2.huber(x, x, w, reduction=reduction) == 0.0
        assert fastl2.mse(x, x, w, axis=0, reduction=reduction).tolist() == [0.0] * 40
        assert fastl2.mse(x, x, w, axis=1, reduction=reduction).tolist() == [0.0] * 30
    assert fastl2.rmse(x, x) == 0.0 and fastl2.rmse(x, x, axis=0).tolist() == [0.0] * 40
    assert fastl2.mse(x, x, reduction="sum") == 0.0 and fastl2.mae(x, x, reduction="sum") == 0.0


def test_a_float64_loss_beside_a_gradient_written_over_y_pred_is_the_plain_quotient(backend):
    # The documented exception (docs/api.md): out=y_pred leaves no y_pred to compute again;
    # there an uncertain value is the sums' double-double rounded plainly.  Squares 1, 2**-54,
    # 2**-54, 2**-112: the exact sum lies 2**-112 above the tie between 1 and 1 + 2**-52
    # (beyond a double-double's 106 bits), so it rounds up; the double-double is the tie.
    y = np.array([1.0, 2.0 ** -27, 2.0 ** -27, 2.0 ** -56])
    expected = 1.0 + 2.0 ** -52
    assert fastl2.mse(np.zeros(4), y, reduction="sum") == expected
    assert fastl2.mse_and_grad(np.zeros(4), y.copy(), reduction="sum", out=np.empty(4))[0] == expected
    loss, grad = fastl2.mse_and_grad(np.zeros(4), y, reduction="sum", out=y)
    assert grad is y and y[0] == 2.0
    assert loss == 1.0  # (the tie 1 + 2**-53, rounded to even)


def test_the_c_and_python_certificates_certify_only_the_exact_value_rounded_once():
    """fastl2._exact.finish_float64 and csrc/finish.c on random double-double sums (taken as
    exact: within any bound of themselves): a certain value is the exact quotient (or its
    root, or its product by the L2 penalty's lam) rounded once, and where both are certain
    they give the same bits."""
    from fastl2 import _exact

    core = pytest.importorskip("fastl2._core", reason="the compiled module is not built here")
    rng = np.random.default_rng(21)
    both = 0
    for case in range(4000):
        # (magnitudes over the whole range: the scaling of sums far from 1, the limits)
        spread = 60 if case % 4 else 1000
        hi = float(rng.standard_normal() * 2.0 ** int(rng.integers(-spread, spread)))
        lo = float(np.spacing(hi)) * float(rng.uniform(-0.5, 0.5)) if case % 3 else 0.0
        if case % 7 == 0:  # near a tie: the rest half an ulp, a hair off
            lo = float(np.spacing(hi)) * (0.5 - 2.0 ** -float(rng.integers(20, 60)))
        hi, lo = hi + lo, lo - ((hi + lo) - hi)  # (normalised)
        count = int(rng.integers(1, 10 ** 6))
        weighted = bool(case % 2)
        by_weights = weighted and case % 4 == 1
        whi = float(rng.uniform(0.5, 2.0) * count) if weighted else float(count)
        wlo = float(np.spacing(whi) * rng.uniform(-0.5, 0.5)) if by_weights else 0.0
        whi, wlo = whi + wlo, wlo - ((whi + wlo) - whi)
        divisor = 1.0 if case % 5 == 0 else float(count)
        root = case % 3 == 0 and hi > 0
        scale = float(rng.uniform(0.0, 8.0) * 2.0 ** int(rng.integers(-40, 40))) if case % 5 == 2 and not root else 1.0
        args = (hi, whi, lo, wlo, count, weighted, by_weights, divisor, root)
        c_value, c_certain = core.finish_float64(*args, scale)
        py_value, py_certain = _exact.finish_float64(*args, scale=scale)
        exact = (Fraction(hi) + Fraction(lo)) / ((Fraction(whi) + Fraction(wlo)) if by_weights else Fraction(divisor))
        exact *= Fraction(scale)
        want = ref.round_exact(ref.sqrt_fraction(exact) if root else exact, F64)
        for value, certain in ((c_value, c_certain), (float(py_value), bool(py_certain))):
            if certain:
                assert value == want, (case, args, value, want)
        assert c_certain == bool(py_certain), (case, args)  # (the same operations: the same decisions)
        if c_certain:
            both += 1
            assert c_value == float(py_value)
    assert both > 2500  # (most are certain: not the near-ties, nor the values past the range)


@pytest.mark.parametrize("dtype,tiny", [(np.float64, 2.0 ** -600), (np.float32, 2.0 ** -140)])
def test_weights_that_cancel_beyond_the_double_double_are_not_a_zero_sum(backend, dtype, tiny):
    """Weights whose sum is 2**-600 beside pairs that cancel (κ past 2**500): the kernels'
    double-double of the weight sum is 0, the exact sum is not. A "weighted_mean" is then the
    exact value rounded once (one result, every output along an axis) and the gradient divides
    by the exact sum; weights that sum to 0 exactly still raise."""
    w = np.array([tiny, 0.1, 0.2, 0.3, -0.1, -0.2, -0.3], dtype)
    y_true, y_pred = np.zeros(7, dtype), np.arange(1.0, 8.0).astype(dtype)
    weight_sum = sum((Fraction(float(x)) for x in w), Fraction(0))
    assert weight_sum == Fraction(tiny)
    exact = sum((Fraction(float(x)) * Fraction(float(p)) ** 2 for x, p in zip(w, y_pred)), Fraction(0)) / weight_sum
    want = ref.round_exact(exact, F64)
    if dtype == np.float32:
        with np.errstate(over="ignore"):
            want = np.float32(ref.round_exact(exact, np.float32) if abs(exact) < 2 ** 128 else math.copysign(math.inf, exact))
    assert fastl2.mse(y_true, y_pred, w, reduction="weighted_mean") == want
    stack = (lambda a: np.stack([a, a[::-1]]))
    along = fastl2.mse(stack(y_true), stack(y_pred), stack(w), reduction="weighted_mean", axis=1)
    assert along.dtype == dtype and list(along) == [want, want] or np.all(np.isinf(along) & np.isinf(want))
    columns = fastl2.mse(stack(y_true).T, stack(y_pred).T, stack(w).T, reduction="weighted_mean", axis=0)
    assert list(columns) == list(along)
    if dtype == np.float64:
        grad = fastl2.mse_grad(y_true, y_pred, w, reduction="weighted_mean")
        assert grad.tobytes() == ((2.0 * (w * (y_pred - y_true))) / tiny).tobytes()
    zero = np.array([0.1, 0.2, 0.3, -0.1, -0.2, -0.3, 0.0], dtype)
    with pytest.raises(ValueError, match="the weights sum to 0"):
        fastl2.mse(y_true, y_pred, zero, reduction="weighted_mean")
    with pytest.raises(ValueError, match=r"the weights sum to 0 at output index \(1,\)"):
        fastl2.mse(stack(y_true), stack(y_pred), np.stack([w, zero]), reduction="weighted_mean", axis=1)
    with pytest.raises(ValueError, match="the weights sum to 0"):
        fastl2.mse_grad(y_true, y_pred, zero, reduction="weighted_mean")


def test_the_exact_weight_sum_is_the_exact_sum_rounded_once_for_every_dtype_and_range():
    """fastl2._exact.exact_weight_sum, the gradient divisor's fallback: ties, integers past
    2**53, partial sums past float64's range whose total is not, totals past it."""
    from fastl2._exact import exact_weight_sum

    big = np.finfo(np.float64).max
    cases = [np.array([1.0, 2.0 ** -53, 2.0 ** -110]), np.array([1.0, 2.0 ** -53, -(2.0 ** -110)]),
             np.array([2 ** 60 + 1, 2 ** 60 + 1, 1], np.int64), np.array([big, big, -big]),
             np.array([big, big]), np.array([-big, -big, 1.0]), np.array([0.1, 0.2], np.float32),
             np.broadcast_to(np.array([0.1, 0.3]), (3, 2)), np.zeros((0, 4))]
    for weights in cases:
        exact = sum((Fraction(int(x)) if weights.dtype.kind == "i" else Fraction(float(x))
                     for x in np.asarray(weights).reshape(-1)), Fraction(0))
        want = (math.inf if exact > 0 else -math.inf) if abs(exact) > Fraction(big) else ref.round_exact(exact, F64)
        assert exact_weight_sum(weights) == want, weights


@pytest.mark.parametrize("layout", ["contiguous", "reversed", "2-d", "and_grad"])
def test_a_weighted_mean_gradient_divides_by_the_exact_weight_sum(backend, layout):
    """The gradient of a "weighted_mean" divides by the exact weight sum (its double-double:
    the sum rounded once and its rest), also where the kernels' double-double of it lies
    within their bound of a tie (here the exact sum 1 + 2**-53 + 2**-110 rounds up; a
    double-double of it can hold the tie itself, which rounds to even: 1), on the fast paths
    and the planned one: each element is the exact one rounded once
    (test_float64_gradients.py: but within 2**-90 of a midpoint, not here)."""
    rng = np.random.default_rng(8)
    for n, tail in ((3, 2.0 ** -110), (3, -(2.0 ** -110)), (1000, 2.0 ** -120)):
        weights = np.zeros(n)
        weights[:3] = [1.0, 2.0 ** -53, tail]
        weights = weights[rng.permutation(n)]
        y_true = rng.standard_normal(n)
        y_pred = y_true + rng.standard_normal(n)
        exact = sum((Fraction(float(w)) for w in weights), Fraction(0))
        expected = np.array([float(2 * Fraction(w) * (Fraction(p) - Fraction(t)) / exact)
                             for w, p, t in zip(weights.tolist(), y_pred.tolist(), y_true.tolist())])
        if layout == "reversed":
            y_true, y_pred, weights = (a[::-1].copy()[::-1] for a in (y_true, y_pred, weights))
        if layout == "2-d":
            y_true, y_pred, weights = (a.reshape(1, n) for a in (y_true, y_pred, weights))
        if layout == "and_grad":
            _, grad = fastl2.mse_and_grad(y_true, y_pred, weights, reduction="weighted_mean")
        else:
            grad = fastl2.mse_grad(y_true, y_pred, weights, reduction="weighted_mean")
        # (== : a zero weight's element is a zero of the difference's sign, the exact value 0)
        assert np.array_equal(np.asarray(grad).reshape(-1), expected), (n, tail, layout)


@settings(max_examples=int(os.environ.get("FASTL2_FLOAT64_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2 ** 32 - 1), kind=st.sampled_from(KINDS),
       reduction=st.sampled_from(("sum", "mean", "weighted_mean")),
       family=st.sampled_from(("plain", "wide", "cancel", "int64", "grid")), path=st.sampled_from(PATHS))
def test_float64_results_of_hypothesis_inputs_are_correctly_rounded(backend, seed, kind, reduction, family, path):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    y_true, y_pred = _data(rng, family, n)
    weights = rng.uniform(0, 4, n) if reduction == "weighted_mean" or seed % 2 else None
    if kind == "rmse" and reduction == "sum":
        reduction = "mean"
    with np.errstate(all="ignore"):
        result = _call(kind, y_true, y_pred, weights, reduction, path)
    ref.assert_ulp(result, _expected(kind, y_true, y_pred, weights, reduction), 0)
