"""Float32 and float64 results are correctly rounded: the exact value of the inputs, rounded
once (to nearest, ties to even), bit for bit, on every backend and path.

What can break: a result whose computed value lies within the kernels' error of a rounding
boundary (a tie, or a hair beside one) and is rounded the wrong way; a path (fast 1-d,
planned strided, per-output axis, loss beside a gradient, L2 penalty) that skips the
certificate (float32: on the float64 value; float64: on the sums' double-doubles) or the
exact slow path (fastl2._exact); a slow path that is not exact.

The adversarial cases are built, not searched for: a target sum ``T`` that is a float32 or
float64 midpoint, or one a hair (2**-1 .. 2**-60 ulp) above or below it, written exactly as a sum of
element losses (each a power of two: ``d**2`` for d a power of two, ``|d|``, Huber's ``d**2 / 2``),
padded to a power-of-two count so that the mean keeps the tie.  Plain float64 summation
rounds most of them the wrong way.  The expected value is tests/reference.py's exact one,
rounded by tests/ulp.py: independent of fastl2._exact.
"""
from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastl2
import reference as ref

F32 = np.float32
F64 = np.float64
PATHS = ("contiguous", "reversed", "shuffled", "column", "and_grad", "and_grad_out", "strided_and_grad")
KINDS = ("mse", "mae", "huber", "rmse", "l2_penalty")
HUBER_INSIDE = 2.0 ** 70  # a delta above every |d| here: every element is d**2 / 2


def _powers(target: Fraction) -> list[int]:
    """The exponents e with sum(2**e) == target (a dyadic rational > 0): its binary digits."""
    num, den = target.numerator, target.denominator
    shift = den.bit_length() - 1
    assert den == 1 << shift
    return [bit - shift for bit in range(num.bit_length()) if num >> bit & 1]


def _differences(kind: str, target: Fraction) -> list[float]:
    """Differences d (float32 values) whose element losses sum to ``target`` exactly."""
    out = []
    for e in _powers(target):
        if kind == "mae":
            out.append(2.0 ** e)
        else:  # d**2 == 2**e (Huber inside: d**2 / 2 == 2**e, so d**2 == 2**(e + 1))
            e += kind == "huber"
            out += [2.0 ** (e // 2)] if e % 2 == 0 else [2.0 ** ((e - 1) // 2)] * 2
    return out


def _target(x: float, offset_bits: int | None, sign: int, root: bool, dtype=F32) -> Fraction:
    """A midpoint of ``dtype`` above x (or its square, for rmse), moved by sign * 2**-offset_bits ulp."""
    ulp = Fraction(float(np.spacing(dtype(x))))
    middle = Fraction(x) + ulp / 2
    t = middle * middle if root else middle
    if offset_bits is not None:
        t += sign * ulp * Fraction(1, 2 ** offset_bits) * (middle if root else 1)
    return t


@st.composite
def adversarial(draw):
    kind = draw(st.sampled_from(KINDS))
    reduction = "sum" if kind == "l2_penalty" else draw(
        st.sampled_from(("mean", "weighted_mean") if kind == "rmse" else ("sum", "mean", "weighted_mean")))
    dtype = draw(st.sampled_from((F32, F64)))
    bits = np.finfo(dtype).nmant  # (the stored bits: 23 or 52)
    mantissa = draw(st.integers(2 ** bits, 2 ** (bits + 1) - 1))
    x = float(Fraction(mantissa, 2 ** bits) * Fraction(2) ** draw(st.integers(-20, 20)))
    offset = draw(st.one_of(st.none(), st.integers(1, 60)))
    sign = draw(st.sampled_from((-1, 1)))
    target = _target(x, offset, sign, kind == "rmse", dtype)
    n = 1
    while n < len(_differences(kind, target)) + 1:
        n *= 2  # (count and weight sum powers of two: the mean of a tie is a tie)
    scale = n if reduction != "sum" else 1
    d = _differences(kind, target * scale)
    weights = None
    if reduction == "weighted_mean":  # weights 4**a (d / 2**a keeps w * d**2), zeros pad W to 2**k
        a = draw(st.lists(st.integers(-3, 3), min_size=len(d), max_size=len(d)))
        if kind == "mae":
            a = [0] * len(d)  # (|d| * w: w = 1 keeps the terms)
        d = [di / 2.0 ** ai for di, ai in zip(d, a)]
        w = [4.0 ** ai for ai in a]
        total = Fraction(sum(Fraction(v) for v in w))
        big = 1
        while big <= total:
            big *= 2
        pad = [float(2.0 ** e) for e in _powers(big - total)] if big > total else []
        w += pad
        d += [0.0] * len(pad)
        weights = np.array(w, dtype)  # (the weighted mean: target * n / big, a tie kept)
    else:
        d += [0.0] * (n - len(d))
    d = np.array(d, dtype)
    signs = np.array(draw(st.lists(st.sampled_from((-1.0, 1.0)), min_size=d.size, max_size=d.size)), dtype)
    d = d * signs
    order = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1))).permutation(d.size)
    swap = draw(st.booleans())  # (y_true = -d against zeros, or y_pred = d)
    y_true, y_pred = (-d, np.zeros_like(d)) if swap else (np.zeros_like(d), d)
    return dict(kind=kind, reduction=reduction, y_true=y_true, y_pred=y_pred, weights=weights,
                order=order, path=draw(st.sampled_from(PATHS)), dtype=dtype)


def _call(kind, y_true, y_pred, weights, reduction, path, order):
    if kind == "l2_penalty":
        params = {"contiguous": y_pred, "reversed": y_pred[::-1], "shuffled": y_pred[order],
                  "column": np.stack([y_pred, y_pred[order]], 1)[:, 0]}.get(path, y_pred)
        return fastl2.l2_penalty(params, 1.0)
    extra = {"delta": HUBER_INSIDE} if kind == "huber" else {}
    function = getattr(fastl2, kind)
    if path in ("and_grad", "and_grad_out", "strided_and_grad") and kind != "rmse":
        both = getattr(fastl2, kind + "_and_grad")
        if path == "and_grad_out":  # (a gradient written into a buffer of the caller's)
            return both(y_true, y_pred, weights, reduction=reduction, out=np.empty_like(y_pred), **extra)[0]
        if path == "strided_and_grad":
            views = [a[::-1] if a is not None else None for a in (y_true, y_pred, weights)]
            return both(*views, reduction=reduction, **extra)[0]
        return both(y_true, y_pred, weights, reduction=reduction, **extra)[0]
    if path == "reversed":
        y_true, y_pred = y_true[::-1], y_pred[::-1]
        weights = weights[::-1] if weights is not None else None
    elif path == "shuffled":
        y_true, y_pred = y_true[order], y_pred[order]
        weights = weights[order] if weights is not None else None
    elif path == "column":  # output 1 of axis=0 over (n, 3): the other outputs are the shuffle
        stack = lambda a: None if a is None else np.ascontiguousarray(np.stack([a[order], a, a[::-1]], 1))
        return function(stack(y_true), stack(y_pred), stack(weights), axis=0, reduction=reduction, **extra)[1]
    return function(y_true, y_pred, weights, reduction=reduction, **extra)


def _expected(kind, y_true, y_pred, weights, reduction):
    if kind == "l2_penalty":
        return ref.l2_penalty(y_pred, 1.0)
    if kind == "huber":
        return ref.loss("huber", y_true, y_pred, weights, reduction, delta=HUBER_INSIDE)
    return ref.loss(kind, y_true, y_pred, weights, reduction)


@settings(max_examples=int(os.environ.get("FASTL2_ROUNDING_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])  # (the backend: set once)
@given(case=adversarial())
def test_results_at_and_beside_rounding_ties_are_correctly_rounded(backend, case):
    kind, reduction = case["kind"], case["reduction"]
    result = _call(kind, case["y_true"], case["y_pred"], case["weights"], reduction, case["path"], case["order"])
    assert np.asarray(result).dtype == case["dtype"]
    ref.assert_ulp(result, _expected(kind, case["y_true"], case["y_pred"], case["weights"], reduction), 0)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_a_tie_broken_below_float64_precision_rounds_up(backend, reduction):
    # 1 + 2**-24 is the midpoint between 1 and its float32 successor; the 2**-80 beyond it is
    # lost by any float64 sum (which then rounds the tie to even: 1.0); exactly it rounds up.
    y_pred = np.array([1.0, 2.0 ** -12, 2.0 ** -40, 0.0], F32)
    expected = F32(1 + 2.0 ** -23) / (4 if reduction == "mean" else 1)
    assert fastl2.mse(np.zeros(4, F32), y_pred, reduction=reduction) == expected
    assert fastl2.mse(np.zeros((4, 2), F32), np.stack([y_pred, y_pred], 1), axis=0, reduction=reduction)[1] == expected


def test_random_float32_results_are_correctly_rounded(backend):
    """Random float32 inputs (normal, wide exponent ranges, non-negative weights) on every
    function and reduction; FASTL2_ROUNDING_CASES sets the count (10**5 per backend was run
    for the README figure)."""
    rng = np.random.default_rng(16)
    cases = int(os.environ.get("FASTL2_ROUNDING_CASES", "1500"))
    for case in range(cases):
        n = int(rng.integers(1, 40))
        spread = float(rng.choice([1.0, 8.0, 40.0]))
        y_true = (rng.standard_normal(n) * 2.0 ** rng.uniform(-spread, spread, n)).astype(F32)
        y_pred = (y_true + rng.standard_normal(n) * 2.0 ** rng.uniform(-spread, spread, n)).astype(F32)
        weights = rng.uniform(0, 4, n).astype(F32) if case % 3 else None
        kind = ("mse", "mae", "huber", "rmse", "l2_penalty")[case % 5]
        reduction = ("sum", "mean", "weighted_mean")[case // 5 % 3]
        if kind == "rmse" and reduction == "sum":
            reduction = "mean"
        if reduction == "weighted_mean" and weights is None:
            weights = np.ones(n, F32)
        if kind == "l2_penalty":
            result, expected = fastl2.l2_penalty(y_pred, 0.5), ref.l2_penalty(y_pred, 0.5)
        elif kind == "huber":
            result = fastl2.huber(y_true, y_pred, weights, delta=0.75, reduction=reduction)
            expected = ref.loss("huber", y_true, y_pred, weights, reduction, delta=0.75)
        else:
            result = getattr(fastl2, kind)(y_true, y_pred, weights, reduction=reduction)
            expected = ref.loss(kind, y_true, y_pred, weights, reduction)
        ref.assert_ulp(result, expected, 0)


def test_the_exact_slow_path_agrees_with_the_reference_where_it_is_used():
    # fastl2._exact on its own (the certificate bypassed): exact sums and roundings of random
    # cases, float32 and float64, against tests/reference.py.
    from fastl2 import _exact
    rng = np.random.default_rng(7)
    for case in range(300):
        n = int(rng.integers(1, 30))
        y_true = (rng.standard_normal(n) * 2.0 ** rng.uniform(-60, 60, n)).astype(F32)
        y_pred = (rng.standard_normal(n) * 2.0 ** rng.uniform(-60, 60, n)).astype(F32)
        weights = rng.uniform(-2, 4, n).astype(F32) if case % 2 else None
        code, kind = [(0, "mse"), (1, "mae"), (2, "huber")][case % 3]
        param = 2.0 ** float(rng.integers(-250, 250)) if kind == "huber" and case % 4 == 0 else 0.5
        loss, weight, count = _exact.exact_sums(code, param, y_true, y_pred, weights)
        assert loss == _fraction_sum(kind, param, y_true, y_pred, weights)
        if kind != "huber" or param == 0.5:
            assert loss == ref.loss(kind, y_true, y_pred, weights, "sum", **(
                {"delta": param} if kind == "huber" else {}))
        for dtype in (np.float32, np.float64):
            ref.assert_ulp(np.dtype(dtype).type(_exact.round_fraction(loss, dtype)), loss, 0)
            if loss >= 0:
                ref.assert_ulp(np.dtype(dtype).type(_exact.round_sqrt(loss, dtype)), ref.sqrt_fraction(loss), 0)


def _fraction_sum(kind, delta, y_true, y_pred, weights):
    """sum(w * l(y_pred - y_true)) in Fractions, element by element."""
    total = Fraction(0)
    for i in range(y_pred.size):
        a = abs(Fraction(float(y_pred[i])) - Fraction(float(y_true[i])))
        loss = ref.fraction_loss(kind, a, delta)
        total += loss * (Fraction(float(weights[i])) if weights is not None else 1)
    return total


def test_the_compiled_certificate_uses_the_bound_derived_in_python():
    from fastl2 import _exact
    core = pytest.importorskip("fastl2._core", reason="the compiled module is not built here")
    for count in (0, 1, 2, 100, 8191, 8192, 8193, 10**12):
        assert core.float32_bound(count) == _exact.float32_bound(count)
    assert _exact.float32_bound(10**12) == 16400 * 2.0 ** -53 < 2.0 ** -38


def test_a_loss_beside_a_gradient_written_over_y_pred_is_within_the_bound(backend):
    # The documented exception: out=y_pred leaves no y_pred to compute again, so a value near
    # a float32 boundary is the float64 value rounded once (here the tie rounds to even, where
    # the exact sum lies 2**-80 above it); y_pred holds the gradient afterwards.
    y_pred = np.array([1.0, 2.0 ** -12, 2.0 ** -40, 0.0], F32)
    loss, grad = fastl2.mse_and_grad(np.zeros(4, F32), y_pred, reduction="sum", out=y_pred)
    assert grad is y_pred and y_pred[0] == 2.0
    assert loss == F32(1.0)  # (the float64 value 1 + 2**-24, rounded to even: not 1 + 2**-23)
    # ... and the same call with a gradient buffer of its own is correctly rounded:
    y_pred = np.array([1.0, 2.0 ** -12, 2.0 ** -40, 0.0], F32)
    assert fastl2.mse_and_grad(np.zeros(4, F32), y_pred, reduction="sum", out=np.empty(4, F32))[0] == F32(1 + 2.0 ** -23)


@pytest.mark.parametrize("path", ["contiguous", "column", "and_grad"])
def test_weights_whose_exact_sum_is_zero_give_the_float64_value_everywhere(backend, path):
    # Mixed-sign weights whose exact sum is 0 while their float64 sum is not (2**60 + 1 -
    # 2**60 - 1 in blocks: the 1 is lost): there is no exact weighted mean; the slow path
    # once divided by the exact 0 (ZeroDivisionError).  Now every backend and path gives the
    # float64 value rounded once, the same bits.
    w = np.zeros(49, F32)
    w[[0, 16, 32, 48]] = [2.0 ** 60, 1.0, -(2.0 ** 60), -1.0]
    y_pred = np.zeros(49, F32)
    y_pred[48] = 1 + 2.0 ** -12
    y_true = np.zeros(49, F32)
    if path == "column":
        stack = lambda a: np.ascontiguousarray(np.stack([a, a], 1))
        result = fastl2.mse(stack(y_true), stack(y_pred), stack(w), axis=0, reduction="weighted_mean")[1]
    elif path == "and_grad":
        result = fastl2.mse_and_grad(y_true, y_pred, w, reduction="weighted_mean")[0]
    else:
        result = fastl2.mse(y_true, y_pred, w, reduction="weighted_mean")
    assert result == F32(1.0004883)


@pytest.mark.parametrize("kind, reduction", [("mse", "mean"), ("mse", "weighted_mean"), ("mae", "sum"),
                                             ("rmse", "mean"), ("huber", "mean")])
def test_integer_valued_rows_that_sit_on_ties_are_correctly_rounded(backend, kind, reduction):
    # 8-bit pixel values: per-row sums are integers, and a quarter of the per-row means of
    # 4096 elements are exact float32 ties (the slow path's integer shortcut, in groups).
    rng = np.random.default_rng(int(reduction == "sum") + 3 * len(kind))
    y_true = rng.integers(0, 256, (40, 4096)).astype(F32)
    y_pred = rng.integers(0, 256, (40, 4096)).astype(F32)
    weights = rng.integers(0, 4, (40, 4096)).astype(F32) if reduction == "weighted_mean" else None
    extra = {"delta": 100.0} if kind == "huber" else {}
    result = getattr(fastl2, kind)(y_true, y_pred, weights, axis=-1, reduction=reduction, **extra)
    expected = ref.loss_axis(kind, y_true, y_pred, weights, reduction, axis=-1, **extra)
    ref.assert_ulp(result, expected, 0)
