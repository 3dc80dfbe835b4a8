"""What the field-fault tests (test_field_faults_*.py) share: the carriers that hand array data
over through one protocol alone (DLPackOnly also serves test_dtypes_carriers_huge.py), PyTorch
where it is installed, their hypothesis settings, a bit-for-bit comparison and rounding to
float64."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

try:
    import torch
except ImportError:  # an optional peer: its carriers and tests are not generated without it
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is an optional peer (pip install torch==2.13.0)")

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class DLPackOnly:
    """An object that offers its data through DLPack alone; counts the exports."""

    def __init__(self, array):
        self._array = array
        self.exports = 0

    def __dlpack__(self, *args, **kwargs):
        self.exports += 1
        return self._array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()

    def __repr__(self):  # (a stable test id)
        return f"DLPackOnly({self._array!r})"


class ArrayLike:
    """An object that offers its data through ``__array__`` alone (as pandas or xarray do)."""

    def __init__(self, array):
        self._array = array

    def __array__(self, dtype=None, copy=None):
        return self._array


CARRIERS = {
    "ndarray-view": lambda a: a.view(),
    "dlpack": DLPackOnly,
    "__array__": ArrayLike,
    "memoryview": memoryview,
}
if torch is not None:
    CARRIERS["torch"] = lambda a: torch.from_numpy(a)


def bits_equal(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return np.array_equal(a, b)
    same_nan = np.isnan(a) == np.isnan(b)
    a_, b_ = np.where(np.isnan(a), 0, a), np.where(np.isnan(b), 0, b)
    return bool(np.all(same_nan) and np.all(a_ == b_) and np.all(np.signbit(a_) == np.signbit(b_)))


def to_float(value: Fraction) -> float:
    """``value`` rounded to float64, inf beyond its range."""
    try:
        return float(value)
    except OverflowError:
        return -math.inf if value < 0 else math.inf
