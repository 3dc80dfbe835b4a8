"""float64 gradient elements are the exact gradient rounded once, but within about 2**-90 of a
midpoint between two float64 (there within an ulp), on every backend, loss, reduction, layout
and path: ``scale * w * l'(y_pred - y_true) / D`` of the exact difference, the exact product
with the weight and the exact divisor (the count, or the exact weight sum: not its rounding).

What can break: a kernel that rounds the difference, the weight's product or the quotient
before the last rounding (the gradient within 1.5-2 ulp: one element in three or four of
random data is not the correctly rounded one); one that divides by the weight sum rounded
(ties decided the wrong way); the Huber derivative's clip decided on the rounded difference
where the exact one lies on the other side of delta; a backend or a path (the 1-d fast path,
the strided walk, numba's, NumPy's, the planned path, ``out=``, ``*_and_grad``) that does
other operations (other bits); the vector form's rare lanes (the divisor outside [2**-1000,
2**1000], a quotient near overflow, inf and nan) that differ from the scalar one.

The reference is exact rationals (``fractions.Fraction``: tests/reference.py's exact gradient
element), rounded by ``float()`` (correctly rounded), independent of fastl2 and of
tests/reference.py's float arithmetic.
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

F64 = np.float64
KINDS = ("mse", "mae", "huber")
#: the relative distance from a midpoint within which an element may be the other neighbour
TIE_BAND = Fraction(1, 2 ** 90)
#: ... of a "weighted_mean" gradient, whose divisor's rest is the kernels' double-double's
#: (within about 2**-80 of the weights' magnitudes, times their condition number, where the
#: weight sum is certified: csrc/losses.h fl2_grad_exact)
WEIGHTED_TIE_BAND = Fraction(1, 2 ** 64)


def _exact(value) -> Fraction:
    return Fraction(int(value)) if isinstance(value, (int, np.integer)) else Fraction(float(value))


def exact_gradient(kind, y_true, y_pred, weights, reduction, delta=0.75, divide_by_rounded_sum=False):
    """The exact gradient of each element (a list of Fractions, flat, in y_pred's C order)."""
    t = np.asarray(y_true).reshape(-1).tolist()
    p = np.asarray(y_pred).reshape(-1).tolist()
    w = None if weights is None else np.broadcast_to(weights, np.shape(y_pred)).reshape(-1).tolist()
    if reduction == "mean":
        divisor = Fraction(len(p))
    elif reduction == "weighted_mean":
        divisor = sum((_exact(x) for x in w), Fraction(0)) if w is not None else Fraction(len(p))
        if divide_by_rounded_sum:
            divisor = Fraction(float(divisor))
    else:
        divisor = Fraction(1)
    return [ref._exact_grad_element(kind, _exact(pi) - _exact(ti), None if w is None else _exact(w[i]),
                                    divisor, delta)
            for i, (ti, pi) in enumerate(zip(t, p))]


def assert_correctly_rounded(actual, exact, context="", band=TIE_BAND):
    """Each element of ``actual`` (float64) is its exact value rounded once, to nearest even;
    but one within ``band`` (relative) of a midpoint may be the other neighbour of it."""
    values = np.asarray(actual, dtype=F64).reshape(-1)
    assert values.size == len(exact), context
    bad = []
    for i, (a, e) in enumerate(zip(values.tolist(), exact)):
        r = float(e)  # (correctly rounded)
        if a == r:
            continue
        neighbours = (np.nextafter(r, np.inf), np.nextafter(r, -np.inf))
        if a in neighbours and abs(e - (Fraction(a) + Fraction(r)) / 2) <= band * abs(e):
            continue
        bad.append((i, a, r))
    assert not bad, f"{len(bad)} of {values.size} not correctly rounded {context}: {bad[:4]}"


def _data(rng, family, n, delta):
    """(y_true, y_pred) of one family of float64 inputs (int64 y_true for "int64")."""
    if family == "wide":  # differences over 2**-300 .. 2**300
        e = rng.integers(-300, 300, n)
        t = np.ldexp(rng.standard_normal(n), e)
        return t, t + np.ldexp(rng.standard_normal(n), e + rng.integers(-60, 3, n))
    if family == "cancel":  # differences of a few ulp: the difference is exact
        t = rng.standard_normal(n)
        return t, t * (1.0 + rng.integers(-9, 9, n) * 2.0 ** -52)
    if family == "near_delta":  # differences that round to +-delta or next to it
        t = rng.uniform(-2, 2, n)
        target = delta * rng.choice([-1.0, 1.0], n) + rng.integers(-2, 3, n) * 2.0 ** -52 * delta
        return t, t + target
    if family == "int64":  # integers past 2**53: their difference's rounding carried
        t = rng.integers(-2 ** 62, 2 ** 62, n)
        return t, (t + rng.integers(-2 ** 40, 2 ** 40, n)).astype(F64)
    t = rng.standard_normal(n) * 2.0 ** float(rng.integers(-30, 30))
    return t, t + rng.standard_normal(n) * 2.0 ** float(rng.integers(-30, 3))


def _weights(rng, kind, n):
    if kind == "none":
        return None
    w = rng.uniform(0.01, 4.0, n)
    if kind == "inexact_sum":  # a weight sum that no float64 holds
        w[0] = 2.0 ** -60
    if kind == "mixed":
        w[: n // 3] *= -0.5
    return w


def _gradient(kind, y_true, y_pred, weights, reduction, path, delta):
    """The gradient by one path, as a flat float64 array in y_pred's element order."""
    extra = {"delta": delta} if kind == "huber" else {}
    grad_fn = getattr(fastl2, kind + "_grad")
    if path == "and_grad":
        return getattr(fastl2, kind + "_and_grad")(y_true, y_pred, weights, reduction=reduction, **extra)[1]
    if path == "reversed":  # negative strides: the strided walk
        w = None if weights is None else weights[::-1]
        return grad_fn(y_true[::-1], y_pred[::-1], w, reduction=reduction, **extra)[::-1]
    if path == "column":  # a column of a C-ordered array, read in place
        n = y_pred.size
        t2, p2 = np.zeros((n, 3), y_true.dtype), np.zeros((n, 3))
        t2[:, 1] = y_true
        p2[:, 1] = y_pred
        w = None if weights is None else weights.copy()
        return grad_fn(t2[:, 1], p2[:, 1], w, reduction=reduction, **extra)
    if path == "out":
        out = np.full(y_pred.shape, np.nan)
        assert grad_fn(y_true, y_pred, weights, reduction=reduction, out=out, **extra) is out
        return out
    return grad_fn(y_true, y_pred, weights, reduction=reduction, **extra)


PATHS = ("contiguous", "reversed", "column", "out", "and_grad")
FAMILIES = ("plain", "wide", "cancel", "near_delta", "int64")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reduction", ("mean", "sum", "weighted_mean", "none"))
def test_float64_gradient_elements_are_correctly_rounded(backend, kind, reduction):
    """Every family, weights (none, positive, an inexact sum, mixed signs) and path."""
    rng = np.random.default_rng(hash((kind, reduction)) % 2 ** 32)
    delta = 0.75
    checked = 0
    for family in FAMILIES:
        for weight_kind in ("none", "positive", "inexact_sum", "mixed"):
            if reduction == "weighted_mean" and weight_kind == "none":
                continue
            for path in PATHS:
                n = int(rng.integers(1, 40)) if path != "contiguous" else 300
                y_true, y_pred = _data(rng, family, n, delta)
                weights = _weights(rng, weight_kind, n)
                grad = _gradient(kind, y_true, y_pred, weights, reduction, path, delta)
                assert grad.dtype == F64
                expected = exact_gradient(kind, y_true, y_pred, weights, reduction, delta)
                band = WEIGHTED_TIE_BAND if reduction == "weighted_mean" else TIE_BAND
                assert_correctly_rounded(grad, expected, (family, weight_kind, path), band)
                checked += n
    assert checked > 5000


@pytest.mark.parametrize("path", PATHS)
def test_a_tie_is_decided_by_the_exact_difference_and_the_exact_weight_sum(backend, path):
    """Constructed ties: 2 (y_pred - y_true) / 3 is exactly the midpoint 1 + 2**-53 (ties to
    even: 1) where y_pred - y_true, 1.5 + 3 * 2**-54, is not a float64 (its rounding, 1.5 +
    2**-52, gives 1 + 2**-52); and with weights whose sum is 3 - 2**-60, not a float64, the
    exact quotient lies just above the midpoint (1 + 2**-52) where the sum rounded, 3, would
    put it on the tie (1).  Both signs."""
    t0 = 0.5 - 3 * 2.0 ** -54
    for sign in (1.0, -1.0):
        y_true = np.array([sign * t0, 0.25, -1.0])
        y_pred = np.array([sign * 2.0, 0.25, -1.0])
        grad = _gradient("mse", y_true, y_pred, None, "mean", path, 0.75)
        assert grad[0] == sign * 1.0 and grad[1] == 0.0 and grad[2] == 0.0, grad
        y_true4, y_pred4 = np.append(y_true, 0.0), np.append(y_pred, 1.0)
        weights = np.array([1.0, 1.0, 1.0, -(2.0 ** -60)])
        grad = _gradient("mse", y_true4, y_pred4, weights, "weighted_mean", path, 0.75)
        assert grad[0] == sign * (1.0 + 2.0 ** -52), grad
        exact = exact_gradient("mse", y_true4, y_pred4, weights, "weighted_mean")
        rounded_sum = exact_gradient("mse", y_true4, y_pred4, weights, "weighted_mean",
                                     divide_by_rounded_sum=True)
        assert float(exact[0]) == sign * (1.0 + 2.0 ** -52) and float(rounded_sum[0]) == sign * 1.0


def test_the_huber_clip_is_decided_on_the_exact_difference(backend):
    """|y_pred - y_true| rounds to delta exactly but lies just inside it (the gradient is the
    exact difference) or just outside (delta): with weight 1.5, 1.5 delta is a midpoint, and
    the exact difference's side decides (inside, delta = 1 + 2**-52: below the midpoint, 1.5 +
    2**-52 where delta itself would tie to 1.5 + 2**-51; outside, delta = 1 + 3 * 2**-52: the
    tie, to even 1.5 + 4 * 2**-52, where the unclipped difference would give 1.5 + 5 * 2**-52).
    Both signs, every path."""
    cases = (
        (1 + 2.0 ** -52, 2.0 ** -60, 1.5 + 2.0 ** -52),  # inside
        (1 + 3 * 2.0 ** -52, -(2.0 ** -60), 1.5 + 4 * 2.0 ** -52),  # outside
    )
    for delta, t0, want in cases:
        for sign in (1.0, -1.0):
            y_true = np.array([sign * t0, 0.5, -2.0])
            y_pred = np.array([sign * delta, 0.25, 1.0])
            weights = np.array([1.5, 1.5, 1.0])
            for path in PATHS:
                grad = _gradient("huber", y_true, y_pred, weights, "sum", path, delta)
                assert grad[0] == sign * want, (delta, sign, path, grad[0])
                assert_correctly_rounded(grad, exact_gradient("huber", y_true, y_pred, weights, "sum", delta))


def test_l2_penalty_gradient_is_correctly_rounded(backend):
    """2 * lam * theta rounded once (its scale, 2 lam, not a power of two)."""
    rng = np.random.default_rng(5)
    params = np.ldexp(rng.standard_normal(500), rng.integers(-200, 200, 500))
    for lam in (0.3, 1e-7, 12345.678, 2.0 ** 600 / 3):
        grad = fastl2.l2_penalty_grad(params, lam)
        assert_correctly_rounded(grad, [2 * Fraction(lam) * Fraction(float(x)) for x in params], lam)
        strided = fastl2.l2_penalty_grad(params[::-1], lam)[::-1]
        assert strided.tobytes() == grad.tobytes()


EDGE_VALUES = (0.0, -0.0, 1.0, -3.5, 2.0 ** -1074, 2.0 ** -1022, 1e300, -1.7e308, np.inf, -np.inf, np.nan)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scale", ("plain", "huge_divisor", "tiny_divisor", "near_overflow", "inf_weight"))
def test_every_backend_gives_the_same_bits_on_edge_values(kind, scale):
    """Zeros of both signs, subnormals, values near overflow, inf and nan, with divisors inside
    and outside [2**-1000, 2**1000] (where the kernels divide instead of multiplying by the
    reciprocal) and quotients past the range: the bits of every backend and layout agree
    (nan's payload aside), and no warning is raised."""
    grid = np.array(EDGE_VALUES)
    y_true = np.repeat(grid, grid.size)
    y_pred = np.tile(grid, grid.size)
    n = y_true.size
    if scale == "plain":
        weights = np.linspace(0.5, 2.0, n)
    elif scale == "huge_divisor":
        weights = np.full(n, 2.0 ** 1000)
    elif scale == "tiny_divisor":
        weights = np.full(n, 2.0 ** -1070)
    elif scale == "near_overflow":  # a weight sum below 1: s * (1 / D) past the range
        weights = np.full(n, 0.75 / n)
    else:  # an infinite weight: an infinite weight sum
        weights = np.linspace(0.5, 2.0, n)
        weights[3] = np.inf
    results = {}
    for backend in fastl2.available_backends():
        previous = fastl2.get_backend()
        fastl2.set_backend(backend)
        try:
            for reduction in ("mean", "sum", "weighted_mean", "none"):
                w = weights if reduction != "mean" else None
                for path in ("contiguous", "reversed", "and_grad"):
                    with np.errstate(all="raise"):
                        grad = _gradient(kind, y_true, y_pred, w, reduction, path, 0.75)
                    bits = np.where(np.isnan(grad), np.nan, grad).tobytes()
                    results.setdefault((reduction, path), {})[backend] = (bits, grad)
        finally:
            fastl2.set_backend(previous)
    for key, by_backend in results.items():
        (first, first_grad), *rest = by_backend.values()
        for other, other_grad in rest:
            assert other == first, (key, first_grad, other_grad)


def test_products_past_the_range_with_finite_gradients_and_an_infinite_weight_sum(backend):
    """2 * y_pred overflows but 2 * y_pred / 4 does not: the element is computed at a scale
    where it fits (7.5e307, not inf; NumPy's 2 * d / n gives inf); an infinite weight makes
    the weight sum infinite: its own element nan, the others 0 (IEEE's quotients), not nan."""
    top = np.finfo(F64).max
    y_pred = np.array([1.5e308, 1.0, -top, top * (1 - 2.0 ** -52)])
    y_true = np.array([0.0, 0.0, 0.0, -(2.0 ** 970)])
    for path in PATHS:
        grad = _gradient("mse", y_true, y_pred, None, "mean", path, 0.75)
        assert grad[0] == 7.5e307 and grad[2] == -top / 2, (path, grad)
        assert_correctly_rounded(grad, exact_gradient("mse", y_true, y_pred, None, "mean"), path)
        weights = np.array([np.inf, 1.0, 1.0, 1.0])
        with np.errstate(all="ignore"):
            grad = _gradient("mse", np.zeros(4), np.array([1.0, 2.0, 3.0, -1.0]), weights,
                             "weighted_mean", path, 0.75)
        assert np.isnan(grad[0]) and grad[1:].tolist() == [0.0, 0.0, -0.0], (path, grad)


def test_near_overflow_quotients_are_correctly_rounded(backend):
    """A weight sum below 1 (0.75): s * (1 / D) rounds past the range where s / D does not;
    the quotient decides (the largest float64, or what lies just below it)."""
    top = np.finfo(F64).max
    weights = np.array([0.75, 0.0, 0.0])
    for k in range(6):
        y_pred = np.array([top / 2 * (1 - k * 2.0 ** -53), 1.0, -3.0])
        y_true = np.zeros(3)
        for path in PATHS:
            grad = _gradient("mse", y_true, y_pred, weights, "weighted_mean", path, 0.75)
            exact = exact_gradient("mse", y_true, y_pred, weights, "weighted_mean")
            assert np.isfinite(grad[0]), (k, path)
            assert_correctly_rounded(grad, exact, (k, path))


@settings(max_examples=int(os.environ.get("FASTL2_FLOAT64_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), kind=st.sampled_from(KINDS),
       reduction=st.sampled_from(("mean", "sum", "weighted_mean", "none")),
       path=st.sampled_from(PATHS))
def test_float64_gradients_of_hypothesis_inputs_are_correctly_rounded(backend, data, kind, reduction, path):
    """Values of every exponent from 2**-400 to 2**400 (and zeros), near-equal pairs, weights
    from 2**-60 to 2**60 of either sign: the gradient elements where |w * l'| >= 2**-969, the
    weight sum in [2**-1000, 2**1000] and its condition number up to 1024 (the documented
    range of the promise)."""
    n = data.draw(st.integers(1, 30))
    finite = st.one_of(st.just(0.0), st.floats(2.0 ** -400, 2.0 ** 400).map(float),
                       st.floats(-(2.0 ** 400), -(2.0 ** -400)).map(float))
    y_true = np.array(data.draw(st.lists(finite, min_size=n, max_size=n)))
    nudge = np.array(data.draw(st.lists(st.integers(-4, 4), min_size=n, max_size=n)))
    others = np.array(data.draw(st.lists(finite, min_size=n, max_size=n)))
    y_pred = np.where(nudge % 2 == 0, y_true * (1 + nudge * 2.0 ** -52), others)
    weights = None
    if reduction == "weighted_mean" or data.draw(st.booleans()):
        weights = np.array(data.draw(st.lists(
            st.floats(2.0 ** -60, 2.0 ** 60).map(float), min_size=n, max_size=n)))
        weights *= np.array(data.draw(st.lists(st.sampled_from([1.0, 1.0, -1.0]), min_size=n, max_size=n)))
        if reduction == "weighted_mean" and float(sum(Fraction(x) for x in weights)) == 0.0:
            weights[0] = abs(weights[0]) + 1.0
    delta = data.draw(st.sampled_from([0.75, 1.0, 2.0 ** -300, 2.0 ** 300]))
    with np.errstate(all="ignore"):
        grad = _gradient(kind, y_true, y_pred, weights, reduction, path, delta)
    expected = exact_gradient(kind, y_true, y_pred, weights, reduction, delta)
    w_flat = np.ones(n) if weights is None else weights
    divisor = (sum((Fraction(x) for x in w_flat), Fraction(0)) if reduction == "weighted_mean" else Fraction(1))
    in_range = Fraction(2) ** -1000 <= abs(divisor) <= Fraction(2) ** 1000
    if reduction == "weighted_mean":
        in_range = in_range and sum(abs(Fraction(x)) for x in w_flat) <= 1024 * abs(divisor)
    keep = [i for i in range(n) if in_range and (expected[i] == 0 or abs(expected[i] * divisor) >= Fraction(2) ** -969)]
    finite_expected = []
    for i in keep:
        try:
            float(expected[i])
            finite_expected.append(i)
        except OverflowError:
            pass
    band = WEIGHTED_TIE_BAND if reduction == "weighted_mean" else TIE_BAND
    assert_correctly_rounded(grad[finite_expected], [expected[i] for i in finite_expected],
                             (kind, reduction, path), band)


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("name", ["mse_grad", "mae_grad", "huber_grad", "mse_and_grad"])
@pytest.mark.parametrize("strided", [False, True])  # (the fast path; the planned, strided one)
def test_a_non_finite_weight_beside_weights_whose_sum_overflows(backend, name, special, strided):
    """A weighted_mean gradient divides by the exact weight sum; where its partial sums pass
    float64's range and a weight is nan or inf, that sum is IEEE's (nan, or the inf), as the
    NumPy backend's, and not an error from the exact sum's Fractions (.ci/run: 'cannot
    convert NaN to integer ratio' on the compiled and numba backends)."""
    weights = np.array([special, 1e308, 1e308, -1e308])
    y_true, y_pred = np.zeros(4), np.array([0.0, 1.0, -1.0, 2.0])
    if strided:
        weights, y_true, y_pred = (np.repeat(a, 2)[::2] for a in (weights, y_true, y_pred))
    result = getattr(fastl2, name)(y_true, y_pred, weights, reduction="weighted_mean")
    grad = result[1] if isinstance(result, tuple) else result
    fastl2.set_backend("numpy")
    expected = getattr(fastl2, name)(y_true, y_pred, weights, reduction="weighted_mean")
    expected = expected[1] if isinstance(expected, tuple) else expected
    assert grad.dtype == expected.dtype and np.array_equal(np.isnan(grad), np.isnan(expected))
    assert np.array_equal(grad[~np.isnan(grad)], expected[~np.isnan(expected)])
