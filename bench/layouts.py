"""Axis reductions and strided layouts against ``axis=None`` on contiguous data, and their memory.

Prints, for each fastl2 backend (or the one named), the throughput of

* ``mse(..., axis=0)`` on a (10^6, 8) float32 matrix and ``axis=-1`` on (10^5, 100), each
  against ``axis=None`` on the same arrays;
* ``mse`` of a step-2 slice (every other element of 2*10^6, in the caches here, and of
  2*10^7, beyond them) against the same number of contiguous elements, and against the
  whole parent array (the same memory);
* peers where installed: NumPy's ``((a - b) ** 2).mean(axis=...)`` and scikit-learn's
  ``mean_squared_error(..., multioutput="raw_values")``;

as ratios of medians in one process (the median of five rounds, each timing both in turn),
and the peak memory traced during one call beyond its inputs (``tracemalloc``)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/layouts.py [cython|numba|numpy]
"""

from __future__ import annotations

import statistics
import sys
import tracemalloc

import numpy as np

import fastl2
from fastl2._bench.timing import time_call


def median_time(call, budget_s: float = 0.5) -> float:
    """Median seconds per call over ``budget_s`` seconds of samples (at least 7)."""
    call()
    return time_call(call, budget_s, min_samples=7).seconds


def ratio_of_medians(fast, slow, rounds: int = 5) -> tuple[float, float, float]:
    """(median time of fast, of slow, median over rounds of fast/slow), the two timed in
    turn within each round, so that a machine whose speed drifts (shared, noisy) gives both
    the same conditions."""
    fast_times, slow_times, ratios = [], [], []
    for _ in range(rounds):
        f = median_time(fast, budget_s=0.2)
        s = median_time(slow, budget_s=0.2)
        fast_times.append(f)
        slow_times.append(s)
        ratios.append(f / s)
    return statistics.median(fast_times), statistics.median(slow_times), statistics.median(ratios)


def traced_peak(call) -> int:
    """Bytes allocated at the peak of one call (its result included)."""
    call()
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def peers(axis):
    calls = {"numpy ((b-a)**2).mean(axis)": lambda a, b: ((b - a) ** 2).mean(axis=axis)}
    if axis == 0:
        try:
            from sklearn.metrics import mean_squared_error
        except ImportError:
            pass
        else:
            calls["sklearn raw_values"] = lambda a, b: mean_squared_error(a, b, multioutput="raw_values")
    return calls


def main(backends) -> None:
    rng = np.random.default_rng(0)
    print(f"fastl2 {fastl2.__version__}, threads {fastl2.get_num_threads()}")
    for shape, axis in (((10**6, 8), 0), ((10**5, 100), -1)):
        a = rng.standard_normal(shape).astype(np.float32)
        b = rng.standard_normal(shape).astype(np.float32)
        print(f"\nmse float32 {shape}, axis={axis} vs axis=None")
        for backend in backends:
            fastl2.set_backend(backend)
            whole, along, ratio = ratio_of_medians(lambda: fastl2.mse(a, b),
                                                   lambda: fastl2.mse(a, b, axis=axis))
            peak = traced_peak(lambda: fastl2.mse(a, b, axis=axis))
            result = 4 * a.size // shape[axis]
            print(f"  fastl2[{backend}]  axis=None {whole * 1e3:8.3f} ms  axis={axis} {along * 1e3:8.3f} ms"
                  f"  throughput ratio {ratio:5.2f}  peak {peak / 1e6:.2f} MB"
                  f" ({result / 1e6:.2f} MB result)")
        for name, call in peers(axis).items():
            t = median_time(lambda: call(a, b), budget_s=0.3)
            print(f"  {name:28s} {t * 1e3:8.3f} ms")

    for n in (10**6, 10**7):
        step2(rng, n, backends)


def step2(rng, n: int, backends) -> None:
    """A step-2 slice against the same number of contiguous elements, and against its whole
    parent (the same memory).  The slice's elements lie in every cache line of its parent:
    where the arrays outgrow the caches (10^7 here), the first ratio's bound is the parent's
    pass over twice the bytes, which the second ratio compares with."""
    parent_a = rng.standard_normal(2 * n).astype(np.float32)
    parent_b = rng.standard_normal(2 * n).astype(np.float32)
    a, b = parent_a[:n].copy(), parent_b[:n].copy()
    print(f"\nmse float32, {n} elements: a step-2 slice of {2 * n} vs contiguous")
    for backend in backends:
        fastl2.set_backend(backend)
        contiguous, strided, ratio = ratio_of_medians(lambda: fastl2.mse(a, b),
                                                      lambda: fastl2.mse(parent_a[::2], parent_b[::2]))
        peak = traced_peak(lambda: fastl2.mse(parent_a[::2], parent_b[::2]))
        print(f"  fastl2[{backend}]  contiguous {contiguous * 1e3:8.3f} ms  [::2] {strided * 1e3:8.3f} ms"
              f"  throughput ratio {ratio:5.2f}  peak {peak / 1e6:.3f} MB")
        parent, strided, ratio = ratio_of_medians(lambda: fastl2.mse(parent_a, parent_b),
                                                  lambda: fastl2.mse(parent_a[::2], parent_b[::2]))
        print(f"  fastl2[{backend}]  whole parent {parent * 1e3:6.3f} ms  [::2] {strided * 1e3:8.3f} ms"
              f"  bytes per second, slice/parent {ratio:5.2f}")
    t = median_time(lambda: np.mean((parent_b[::2] - parent_a[::2]) ** 2), budget_s=0.3)
    print(f"  {'numpy mean((b-a)**2) [::2]':28s} {t * 1e3:8.3f} ms")


if __name__ == "__main__":
    main(sys.argv[1:] or fastl2.available_backends())
