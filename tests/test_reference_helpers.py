"""The oracle is checked too: the exact reference and the ulp assertion (no fastl2 computation)."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import reference as ref


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_ulp_distance_counts_representable_values(dtype):
    one = np.array([1.0], dtype)
    up = np.nextafter(one, dtype(2))
    down = np.nextafter(one, dtype(0))
    assert ref.ulp_distance(one, up)[0] == 1
    assert ref.ulp_distance(down, up)[0] == 2  # across a binade boundary
    assert ref.ulp_distance(np.array([0.0], dtype), np.array([-0.0], dtype))[0] == 0
    tiny = np.array([np.finfo(dtype).smallest_subnormal], dtype)
    assert ref.ulp_distance(tiny, -tiny)[0] == 2  # across zero
    inf, big = np.array([np.inf], dtype), np.array([np.finfo(dtype).max], dtype)
    assert ref.ulp_distance(inf, big)[0] == 1
    nan = np.array([np.nan], dtype)
    assert ref.ulp_distance(nan, nan)[0] == 0
    assert ref.ulp_distance(nan, one)[0] == np.inf
    assert ref.ulp_distance(inf, -inf)[0] > 1e3


def test_assert_ulp_accepts_within_and_rejects_beyond_tolerance():
    x = np.float64(0.1)
    ref.assert_ulp(np.nextafter(x, 1.0), Fraction(1, 10), 1)
    with pytest.raises(AssertionError, match="ulp"):
        ref.assert_ulp(np.nextafter(np.nextafter(x, 1.0), 1.0), Fraction(1, 10), 1)
    ref.assert_ulp(np.float32(np.nan), float("nan"), 0)
    with pytest.raises(AssertionError):
        ref.assert_ulp(np.float32(np.nan), 1.0, 1000)
    ref.assert_ulp(np.array([0.0, np.inf], np.float32), np.array([-0.0, np.inf]), 0)


def test_exact_sum_is_exact_where_naive_sums_fail():
    values = np.array([1e16, 1.0, -1e16, 1.0, 1e-30])
    assert ref.exact_sum(values) == Fraction(2) + Fraction(1e-30)
    assert ref.exact_sum(np.array([])) == 0


def test_two_product_is_error_free():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(1000) * 1e5, rng.standard_normal(1000) * 1e-7
    p, e = ref.two_product(a, b)
    for x, y, hi, lo in zip(a.tolist(), b.tolist(), p.tolist(), e.tolist()):
        assert Fraction(x) * Fraction(y) == Fraction(hi) + Fraction(lo)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "weighted_mean", "sum"])
@pytest.mark.parametrize("kind", ["mse", "mae"])
def test_reference_loss_matches_a_fraction_computation(kind, reduction, dtype):
    # The exact difference of the inputs for both dtypes (reduced results are correctly
    # rounded, docs/api.md); values of wide range, so that float32 differences are often not
    # exact in float32 and float64 ones not in float64.
    rng = np.random.default_rng(1)
    t = (rng.standard_normal(50) * 2.0 ** rng.uniform(-40, 40, 50)).astype(dtype)
    p = (rng.standard_normal(50) * 2.0 ** rng.uniform(-40, 40, 50)).astype(dtype)
    w = rng.uniform(0.1, 2, 50)
    d = [Fraction(float(b)) - Fraction(float(a)) for a, b in zip(t, p)]
    assert dtype == np.float32 or any(Fraction(float(x)) != di for x, di in zip(p - t, d))
    fw = [Fraction(float(x)) for x in w]
    element = [wi * (di * di if kind == "mse" else abs(di)) for wi, di in zip(fw, d)]
    divisor = {"mean": Fraction(50), "weighted_mean": sum(fw), "sum": Fraction(1)}[reduction]
    exact = sum(element) / divisor
    assert ref.loss(kind, t, p, w, reduction) == exact  # (exact: fsum until nothing is left)


@pytest.mark.parametrize("reduction", ["mean", "weighted_mean", "sum", "none"])
@pytest.mark.parametrize("kind", ["mse", "mae"])
def test_reference_grad_is_correctly_rounded(kind, reduction):
    rng = np.random.default_rng(2)
    t, p = rng.standard_normal(200), rng.standard_normal(200)
    w = rng.uniform(0.1, 2, 200)
    fw = [Fraction(float(x)) for x in w]
    divisor = {"mean": Fraction(200), "weighted_mean": sum(fw), "sum": Fraction(1), "none": Fraction(1)}[reduction]
    got = ref.grad(kind, t, p, w, reduction)
    for i, (ti, pi) in enumerate(zip(t.tolist(), p.tolist())):
        di = Fraction(pi) - Fraction(ti)  # (the exact difference: docs/api.md)
        sign = (di > 0) - (di < 0)
        exact = fw[i] * (2 * di if kind == "mse" else sign) / divisor
        assert got[i] == float(exact)  # float(Fraction) rounds correctly


def test_reference_dtype_rules():
    f16, f32, f64 = np.zeros(1, np.float16), np.zeros(1, np.float32), np.zeros(1)
    assert ref.loss_dtype(f32, f32, None) == np.float32
    assert ref.loss_dtype(f16, f32, f16) == np.float32
    assert ref.loss_dtype(f32, f32, f64) == np.float64
    assert ref.loss_dtype(f32, np.zeros(1, np.int32)) == np.float64
    assert ref.loss_dtype(np.zeros(1, bool), f32) == np.float64
    assert ref.grad_dtype(f16) == np.float16
    assert ref.grad_dtype(np.zeros(1, np.int64)) == np.float64
