"""The float64 kernels' sums carry every term's own rounding error (csrc/losses.h, "exact element
terms"): a float64 ``reduction="sum"`` result is the exact sum rounded once, unless the exact
sum lies within the kernels' error bound of a rounding boundary (``fastl2._exact.float64_bound``:
about 2**-80 of the sum of the terms' magnitudes, below which the result is one of the
two floats around it).

What can break: a path whose difference, square, Huber branch or weight product is rounded
before the sum (the 513-ulp example of weights of mixed sign below, the 1-2 ulp of every float64
sum before); a backend whose error terms differ from the C kernels' (the bits are compared by the
cross-backend tests; here each backend is held to the exact value); a lane whose errors are
dropped on one path (the 1-d fast path, the strided walk, the rows and columns kernels).

The reference is exact rationals (``fractions.Fraction``), independent of fastl2; the bound is
written here from its derivation (fastl2._exact.float64_bound's docstring), not read from
fastl2.
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

FUNCTIONS = {"mse": "squared", "mae": "absolute", "huber": "huber"}


def bound(count: int, magnitude: Fraction, weights: Fraction | None = None) -> Fraction:
    """The documented error of a float64 kernel sum over ``count`` elements whose terms' sum of
    magnitudes is ``magnitude`` and weights' ``weights`` (None: unweighted, count):
    (m (m + 17) + 1024) u**2 of it plus (sum(|w|) + count) * 2**-1072."""
    m = min(max(count, 1), 8192)
    count = max(count, 1)
    weights = Fraction(count) if weights is None else weights
    return Fraction(m * (m + 17) + 1024, 2 ** 106) * magnitude + (weights + count) / 2 ** 1072


def exact_terms(kind, y_true, y_pred, weights, delta):
    """The exact sum of the terms w * l(y_pred - y_true), the sum of their magnitudes and the
    sum of the weights' (None without weights)."""
    total = magnitude = Fraction(0)
    weight_magnitude = None if weights is None else Fraction(0)
    for i in range(len(y_pred)):
        term = ref.fraction_loss(kind, abs(Fraction(y_pred[i].item()) - Fraction(y_true[i].item())), delta)
        if weights is not None:
            term *= Fraction(float(weights[i]))
            weight_magnitude += abs(Fraction(float(weights[i])))
        total += term
        magnitude += abs(term)
    return total, (magnitude, weight_magnitude)


def check(result, total: Fraction, magnitudes, count: int) -> bool:
    """Asserts the promise for one result; returns whether the exact sum was far enough from a
    rounding boundary to decide the result (then it must be the exact sum rounded once; else
    it is a float within the bound and half an ulp of the exact sum)."""
    result = float(result)
    nearest = float(total)  # (Python rounds a Fraction to nearest, ties to even)
    below = math.nextafter(nearest, -math.inf)
    above = math.nextafter(nearest, math.inf)
    gap = min(abs(total - (Fraction(nearest) + Fraction(side)) / 2) for side in (below, above))
    error = bound(count, *magnitudes)
    if gap > error:
        assert result == nearest, (result.hex(), nearest.hex(), float(total))
        return True
    assert math.isfinite(result), (result, float(total))
    half_ulp = (Fraction(above) - Fraction(below)) / 4
    assert abs(Fraction(result) - total) <= error + half_ulp, (result.hex(), nearest.hex())
    return False


@st.composite
def problems(draw):
    n = draw(st.integers(1, 48))
    family = draw(st.sampled_from(["plain", "cancel", "wide", "tiny", "huge", "integers", "int64",
                                   "int64_float64"]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    if family == "wide":
        exponents = rng.integers(-480, 480, n)
    elif family == "tiny":
        exponents = rng.integers(-1070, -500, n)  # squares far below the subnormals; |d| in them
    elif family == "huge":
        exponents = rng.integers(490, 500, n)  # squares near 2**1000, no overflow
    else:
        exponents = np.full(n, rng.integers(-40, 40))
    y_true = np.ldexp(rng.standard_normal(n), exponents)
    if family.startswith("int64"):  # past 2**53: the difference's rounding error carried too
        y_true = rng.integers(-2 ** 62, 2 ** 62, n)
        y_pred = y_true + rng.integers(-2 ** 40, 2 ** 40, n) * rng.integers(0, 2, n)
        if family == "int64_float64":
            y_true = np.ldexp(rng.standard_normal(n), 61)
    elif family == "integers":
        y_true = np.round(rng.standard_normal(n) * 2.0 ** 60)  # beyond 2**53: the differences round
        y_pred = y_true + np.round(rng.standard_normal(n) * 2.0 ** 8)
    elif family == "cancel":  # y_pred a few ulp from y_true: differences exact, squares not
        y_pred = y_true * (1.0 + rng.integers(-9, 9, n) * 2.0 ** -52) + np.ldexp(
            rng.standard_normal(n), exponents - 60)
    else:
        y_pred = np.ldexp(rng.standard_normal(n), exponents + rng.integers(-3, 3, n))
    kind = draw(st.sampled_from(sorted(FUNCTIONS)))
    if family.startswith("int64"):
        exponents = np.full(n, 40)
    delta = float(np.ldexp(1.0 + rng.random(), int(np.median(exponents)) + int(rng.integers(-4, 4))))
    if family == "huge" and kind == "huber":
        delta = min(delta, 2.0 ** 495)
    weighting = draw(st.sampled_from([None, "positive", "mixed"]))
    weights = None
    if weighting == "positive":
        weights = rng.random(n) * 2.0 ** float(rng.integers(-20, 20))
    elif weighting == "mixed":
        weights = rng.standard_normal(n)
    return kind, delta, y_true, y_pred, weights


def _call(kind, delta, y_true, y_pred, weights, path):
    function = getattr(fastl2, kind)
    extra = {"delta": delta} if kind == "huber" else {}
    if path == "reversed":  # the planned strided walk over negative strides
        y_true, y_pred = y_true[::-1].copy()[::-1], y_pred[::-1].copy()[::-1]
        weights = None if weights is None else weights[::-1].copy()[::-1]
    if path in ("rows", "columns"):  # one output of an axis reduction (rows / columns kernels)
        stack = (lambda a: np.stack([a, a[::-1]])) if path == "rows" else (lambda a: np.stack([a, a[::-1]], 1))
        axis = 1 if path == "rows" else 0
        w = None if weights is None else stack(weights)
        return function(stack(y_true), stack(y_pred), w, axis=axis, reduction="sum", **extra)[0]
    return function(y_true, y_pred, weights, reduction="sum", **extra)


@settings(max_examples=int(os.environ.get("FASTL2_FLOAT64_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(problem=problems(), path=st.sampled_from(["contiguous", "reversed", "rows", "columns"]))
def test_float64_sums_are_the_exact_sum_rounded_once_off_the_boundaries(backend, problem, path):
    kind, delta, y_true, y_pred, weights = problem
    total, magnitude = exact_terms(kind, y_true, y_pred, weights, delta)
    with np.errstate(all="ignore"):
        result = _call(kind, delta, y_true, y_pred, weights, path)
    check(result, total, magnitude, len(y_pred))


def test_most_random_float64_sums_are_decided_and_exact(backend):
    """Not a vacuous promise: on random data nearly every sum lies far from a boundary (the
    bound is about 2**-80 relative; a boundary is 2**-53 away), and each of those is exact, where
    rounding the difference and the square first is off in a large share of them."""
    rng = np.random.default_rng(7)
    decided = 0
    for trial in range(200):
        n = int(rng.integers(1, 200))
        y_true = rng.standard_normal(n)
        y_pred = y_true + rng.standard_normal(n) * 2.0 ** -float(rng.integers(0, 30))
        weights = rng.random(n) if trial % 2 else None
        kind = ("mse", "mae", "huber")[trial % 3]
        total, magnitude = exact_terms(kind, y_true, y_pred, weights, 1.0)
        result = getattr(fastl2, kind)(y_true, y_pred, weights, reduction="sum")
        decided += check(result, total, magnitude, n)
    assert decided >= 195


def test_weights_of_mixed_sign_cancel_exactly(backend):
    """The issue's example: each weight times its loss was rounded before a sum that cancels
    (513 ulp off); the products' errors are now summed with them."""
    y_true, y_pred, weights = [0.0, 0.0, 0.0], [1.0, 1 + 2 ** -30, 0.1], [1.0, -1.0, 1e-3]
    total, magnitude = exact_terms("mse", np.array(y_true), np.array(y_pred), np.array(weights), 1.0)
    assert check(fastl2.mse(y_true, y_pred, weights, reduction="sum"), total, magnitude, 3)


@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
@pytest.mark.parametrize("n", [1000, 12345])
def test_a_sum_whose_terms_round_the_same_way_is_exact(backend, kind, n):
    """Every difference rounds the same way (2**-54 - (1 + 2**-52) = -(1 + 0.75 * 2**-52) rounds
    to -(1 + 2**-52)): summing the rounded terms drifts by a quarter ulp of each term, past the
    sum's rounding boundary at these sizes; the exact terms do not drift."""
    y_true = np.full(n, 1.0 + 2.0 ** -52)
    y_pred = np.full(n, 2.0 ** -54)
    total, magnitude = exact_terms(kind, y_true, y_pred, None, 0.5)
    extra = {"delta": 0.5} if kind == "huber" else {}
    assert check(getattr(fastl2, kind)(y_true, y_pred, reduction="sum", **extra), total, magnitude, n)


def test_the_documented_bound_is_the_one_fastl2_states():
    from fastl2 import _exact

    for count in (1, 16, 8191, 8192, 10 ** 9):
        for weights in (None, 3.5, 2.0 ** 1000):
            relative, absolute = _exact.float64_bound(count, weights)
            exact_absolute = bound(count, Fraction(0), None if weights is None else Fraction(weights))
            assert Fraction(relative) == bound(count, Fraction(1), Fraction(0)) - Fraction(count, 2 ** 1072)
            assert abs(Fraction(absolute) - exact_absolute) <= exact_absolute / 2 ** 50 + Fraction(1, 2 ** 1074)


def test_large_weights_of_terms_below_the_subnormals_stay_within_the_bound(backend):
    """A square below 2**-1022 has its error rounded to the subnormals' grid before the weight
    multiplies it: the bound's absolute part grows with sum(|w|) (a review found the fixed
    count * 2**-1072 of the first version broken by these)."""
    for y_pred, w in ((2.0 ** -537 * 0.87, 2.0 ** 1000), (1e-160, 1e300), (1.5e-154, -3e10), (1e-160, 1024.0)):
        for kind in ("mse", "huber"):
            args = ([0.0], [y_pred], [w])
            total, magnitudes = exact_terms(kind, *map(np.array, args), 1e-160)
            extra = {"delta": 1e-160} if kind == "huber" else {}
            check(getattr(fastl2, kind)(*args, reduction="sum", **extra), total, magnitudes, 1)


def _fraction_fma(a: float, b: float, c: float) -> float:
    """IEEE 754's fusedMultiplyAdd of three floats, from exact rationals."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return a * b + c
    if not math.isfinite(c):
        return c  # (a finite product beside an infinite or nan c)
    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        product_sign = math.copysign(1.0, a) * math.copysign(1.0, b)
        return -0.0 if product_sign < 0 and math.copysign(1.0, c) < 0 else 0.0
    try:
        value = float(exact)
    except OverflowError:
        return math.inf if exact > 0 else -math.inf
    return value if value != 0.0 else (-0.0 if exact < 0 else 0.0)


def test_the_numpy_backends_fma_is_ieee_fma_for_every_kind_of_input():
    """fastl2._halves.fma_array (the NumPy backend's exact terms) against exact rationals: zero
    signs, ties, subnormal results, products that overflow in float64 beside an infinite c (a
    review found nan there), c far above or below the product."""
    from fastl2._halves import fma_array

    rng = np.random.default_rng(11)
    n = 4000
    exponents = rng.integers(-560, 560, (2, n))
    a = np.ldexp(rng.standard_normal(n), exponents[0])
    b = np.ldexp(rng.standard_normal(n), exponents[1])
    with np.errstate(over="ignore"):
        product = a * b
        c = np.select([rng.random(n) < 0.3, rng.random(n) < 0.3, rng.random(n) < 0.1, rng.random(n) < 0.1],
                      [-product, np.ldexp(rng.standard_normal(n), rng.integers(-1074, 1023, n)),
                       np.copysign(np.inf, rng.standard_normal(n)), np.copysign(0.0, rng.standard_normal(n))],
                      np.ldexp(product, rng.integers(-60, 60, n)))
    big = np.array([2.0 ** 1000, -(2.0 ** 1000), 1e300, 2.0 ** -537, 3.0, 0.0, -0.0])
    a = np.concatenate([a, big, big])
    b = np.concatenate([b, big, big[::-1]])
    c = np.concatenate([c, [-np.inf, np.inf, -np.inf, 2.0 ** -1074, -0.0, 0.0, -0.0] * 2])
    result = fma_array(a, b, c)
    for x, y, z, r in zip(a, b, c, result):
        expected = _fraction_fma(float(x), float(y), float(z))
        assert (r == expected and math.copysign(1, r) == math.copysign(1, expected)) or (
            math.isnan(r) and math.isnan(expected)), (x, y, z, r, expected)


# ---- the unweighted kernels' checked stretches -----------------------------------------------
# csrc/block_run.h adds the unweighted float64 terms STRETCH (16) chunks of 16 elements at a time
# with a Fast2Sum that is exact only while each lane's sum is at least its term (or 0), and
# redoes a stretch from its start with the general form when a lane's sum at least doubled in
# it.  Data that outgrows its lanes' sums anywhere in a block (a spike, a growing sequence,
# values after a run of zeros, inf and nan) must leave the lanes' double-doubles with the bits
# of the general form, which the numba and NumPy backends compute term by term.

_STRETCH_SIZE = 2 * 8192 + 16 * 16 * 3 + 37  # (two whole blocks, then stretches and a tail)


def _stretch_family(kind: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.standard_normal(n)
    y_pred = y_true + rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))
    if kind == "spikes":  # terms 2**40 to 2**200 times the rest, past each block's first 512
        at = rng.choice(np.arange(n)[np.arange(n) % 8192 >= 512], 40, replace=False)
        y_pred[at] = y_true[at] + np.exp2(rng.integers(20, 100, at.size))
    elif kind == "growing":  # every term larger than its lane's sum: every stretch is redone
        y_pred = y_true + np.exp2(np.arange(n) / 16.0 % 900.0 - 450.0)
    elif kind == "zeros first":  # lanes at 0, then terms that grow within one stretch
        start = 8192 + 700
        y_pred[:start] = y_true[:start]
        y_pred[start:start + 64] = y_true[start:start + 64] + np.exp2(np.arange(64.0))
    elif kind == "inf":
        y_pred[[600, 9000, 9100]] = np.inf
    elif kind == "nan":
        y_pred[[1000, 8192 + 3000]] = np.nan
    return y_true, y_pred


def _same_bits(a, b) -> bool:
    a, b = (np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (a, b))
    return a.shape == b.shape and bool(np.all((a.view(np.int64) == b.view(np.int64))
                                              | (np.isnan(a) & np.isnan(b))))


STRETCH_FAMILIES = ["random", "spikes", "growing", "zeros first", "inf", "nan"]


@pytest.mark.parametrize("family", STRETCH_FAMILIES)
@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_the_checked_stretches_give_the_general_forms_bits(family, kind):
    """The lanes' double-doubles (the backends' ``run``: sum and rest) of every backend and
    every SIMD level are the same bits, for contiguous data and every other element (a[::2]):
    a stretch left to the fast Fast2Sum where a term outgrew its lane's sum gives other bits
    (its rest loses the addition's error)."""
    from fastl2 import _backends
    from fastl2._losses import LOSSES
    from fastl2._passes import first_sums
    from fastl2._plan import loss_plan, strided_pass

    def sums(module, plan):  # (a[::2] is a strided plan: the walk's step-2 blocks)
        return module.run(plan, True) if plan.flat else first_sums(module.run_strided(strided_pass(plan), True))

    loss = next(entry for entry in LOSSES if entry.name == FUNCTIONS[kind])
    y_true, y_pred = _stretch_family(family, _STRETCH_SIZE, 11)
    names = [name for name in ("numpy", "numba", "cython") if name in fastl2.available_backends()]
    core = _backends.compiled_module()
    for view in (slice(None), slice(None, None, 2)):
        plan = loss_plan(loss, y_true[view], y_pred[view], None, "sum", 1.0 if kind == "huber" else 0.0)
        expected = sums(_backends._load("numpy"), plan)
        runs = [(name, _backends._load(name)) for name in names]
        if core is not None:
            level = core.simd_level()
            try:
                for simd in core.simd_levels_available():
                    core.set_simd_level(simd)
                    got = sums(core, plan)
                    for part in (0, 2):
                        assert _same_bits(got[part], expected[part]), (family, kind, view, simd, part)
            finally:
                core.set_simd_level(level)
        for name, module in runs:
            got = sums(module, plan)
            for part in (0, 2):
                assert _same_bits(got[part], expected[part]), (family, kind, view, name, part)


@pytest.mark.parametrize("family", STRETCH_FAMILIES[:4])
@pytest.mark.parametrize("kind", sorted(FUNCTIONS))
def test_the_checked_stretches_sums_are_the_exact_sums_rounded_once(backend, family, kind):
    """The same data's ``reduction="sum"`` and ``"mean"`` results against exact rationals."""
    y_true, y_pred = _stretch_family(family, _STRETCH_SIZE, 12)
    total, magnitudes = exact_terms(FUNCTIONS[kind], y_true, y_pred, None, 1.0)
    function = getattr(fastl2, kind)
    extra = {"delta": 1.0} if kind == "huber" else {}
    assert check(function(y_true, y_pred, reduction="sum", **extra), total, magnitudes, y_pred.size)
    assert float(function(y_true, y_pred, **extra)) == float(total / y_pred.size)
