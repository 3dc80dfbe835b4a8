"""Exact values rounded once, correctly, to a float dtype, and the ulp assertion the tests compare
with: how far, in units in the last place of the result's dtype, a result lies from the exact
reference (reference.py, which re-exports these names: tests call ``ref.assert_ulp``).

Nothing here imports fastl2 or computes a loss.
"""
from __future__ import annotations

import decimal
import math
from fractions import Fraction

import numpy as np

_INT_OF_SIZE = {2: np.int16, 4: np.int32, 8: np.int64}


def is_float(dtype) -> bool:
    """Whether dtype is a binary floating-point one: NumPy's (kind "f"), or ml_dtypes' bfloat16
    (kind "V" for NumPy)."""
    dtype = np.dtype(dtype)
    return dtype.kind == "f" or dtype.name == "bfloat16"


# --------------------------------------------------------------------------- correct rounding


def _round_one(value, dtype: np.dtype):
    """One exact value (Fraction, Decimal, int or float) rounded to nearest-even in dtype."""
    if isinstance(value, float) or not math.isfinite(float(value)):
        return dtype.type(value)
    exact = Fraction(value)
    candidate = np.float64(float(exact)).astype(dtype)  # at most one ulp of dtype away
    if not np.isfinite(candidate):
        return candidate
    best, best_distance = None, None
    for c in (np.nextafter(candidate, dtype.type(-np.inf)), candidate, np.nextafter(candidate, dtype.type(np.inf))):
        if not np.isfinite(c):
            continue
        distance = abs(Fraction(float(c)) - exact)
        if best is None or distance < best_distance or (
            distance == best_distance and int(np.asarray(c).view(_INT_OF_SIZE[dtype.itemsize])) % 2 == 0
        ):
            best, best_distance = c, distance
    return best


def round_exact(values, dtype) -> np.ndarray:
    """Exact values (an object array, or one value) correctly rounded (to nearest, ties to even) to
    float32 or float64: no double rounding through float64."""
    dtype = np.dtype(dtype)
    values = np.asarray(values, dtype=object)
    # float(Fraction) is correctly rounded to float64.
    as64 = np.array([float(v) for v in values.ravel().tolist()], dtype=np.float64).reshape(values.shape)
    if dtype == np.float64:
        return as64
    with np.errstate(over="ignore"):
        result = as64.astype(dtype)
    # Rounding the float64 value again goes wrong only where it lies exactly halfway between two
    # neighbours in dtype (the exact value may be on either side): those are redone exactly.
    back = result.astype(np.float64)
    with np.errstate(invalid="ignore"):
        toward = np.nextafter(result, np.where(as64 > back, dtype.type(np.inf), dtype.type(-np.inf)))
        halfway = (as64 != back) & np.isfinite(as64) & (2 * as64 == back + toward.astype(np.float64))
    for index in map(tuple, np.argwhere(halfway)):
        result[index] = _round_one(values[index], dtype)
    return result


# --------------------------------------------------------------------------- ulp comparison


def _ordered_keys(a: np.ndarray) -> np.ndarray:
    """Map floats to int64 keys whose differences count representable values (+0 and -0 both map to 0)."""
    bits = a.view(_INT_OF_SIZE[a.dtype.itemsize]).astype(np.int64)
    magnitude_mask = np.int64(np.iinfo(_INT_OF_SIZE[a.dtype.itemsize]).max)
    magnitude = bits & magnitude_mask
    return np.where(bits < 0, -magnitude, magnitude)


def ulp_distance(actual, expected) -> np.ndarray:
    """Number of representable values between actual and expected (same float dtype), as float64.

    nan vs nan counts as 0, nan vs a number as inf.
    """
    a = np.ascontiguousarray(actual)
    b = np.ascontiguousarray(expected)
    assert a.dtype == b.dtype and is_float(a.dtype), (a.dtype, b.dtype)
    a, b = np.broadcast_arrays(a, b)
    a = np.ascontiguousarray(a)
    b = np.ascontiguousarray(b)
    ka, kb = _ordered_keys(a), _ordered_keys(b)
    same_sign = (ka >= 0) == (kb >= 0)
    with np.errstate(over="ignore"):
        near = np.abs(ka - kb).astype(np.float64)
    far = np.abs(ka).astype(np.float64) + np.abs(kb).astype(np.float64)
    dist = np.where(same_sign, near, far)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    dist = np.where(nan_a & nan_b, 0.0, dist)
    dist = np.where(nan_a ^ nan_b, np.inf, dist)
    return dist


def round_to(expected, dtype) -> np.ndarray:
    """Round an exact expected value (Fraction, Decimal, float or float64 array) to dtype."""
    dtype = np.dtype(dtype)
    if isinstance(expected, np.ndarray) and expected.dtype == object:
        return round_exact(expected, dtype)  # loss_axis' exact values: rounded once, correctly
    if isinstance(expected, (Fraction, decimal.Decimal)):
        try:
            float(expected)
        except OverflowError:  # beyond float64: inf, as any narrower dtype rounds it
            expected = math.inf if expected > 0 else -math.inf
        else:  # rounded once, correctly (not through float64: a double rounding)
            return round_exact(np.array(expected, dtype=object), dtype)
    with np.errstate(over="ignore"):
        return np.asarray(expected, dtype=np.float64).astype(dtype)


def assert_ulp(actual, expected, max_ulp, *, dtype=None):
    """Assert that actual is within max_ulp units in the last place of expected.

    actual: a NumPy scalar, Python float or array; its dtype is the one ulps are counted in
    (or dtype, if given). expected: an exact value (Fraction / Decimal / float), a float64 array,
    or an object array of exact values (``loss_axis``), rounded once to that dtype before comparing.
    Handles zeros, signed zeros, inf and nan.
    """
    actual_arr = np.asarray(actual)
    dtype = np.dtype(dtype) if dtype is not None else actual_arr.dtype
    assert is_float(dtype), f"expected a float result, got dtype {actual_arr.dtype}"
    actual_arr = actual_arr.astype(dtype, copy=False)
    expected_arr = round_to(expected, dtype)
    assert actual_arr.shape == expected_arr.shape or expected_arr.ndim == 0, (
        f"shape {actual_arr.shape} != expected {expected_arr.shape}"
    )
    dist = ulp_distance(actual_arr, expected_arr)
    if dist.size == 0:
        return
    worst = int(np.argmax(dist))
    if dist.flat[worst] > max_ulp:
        a = actual_arr.ravel()[worst] if actual_arr.ndim else actual_arr[()]
        e = np.broadcast_to(expected_arr, actual_arr.shape).ravel()[worst] if actual_arr.ndim else expected_arr[()]
        bad = int(np.count_nonzero(dist > max_ulp))
        raise AssertionError(
            f"{bad} of {dist.size} values differ by more than {max_ulp} ulp ({dtype}); worst at flat "
            f"index {worst}: actual {a!r}, expected {e!r}, {dist.flat[worst]:.0f} ulp apart"
        )
