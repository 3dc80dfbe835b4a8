"""Measure the two size thresholds of the compiled kernels on this machine.

* from how many elements threads pay off (csrc/fastl2.c: FL2_DEFAULT_PARALLEL_THRESHOLD);
* from how many gradient bytes streaming stores pay off (FL2_DEFAULT_STREAM_MIN_BYTES).

Run it on a quiet machine, in one process::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/tune_thresholds.py

It prints the median time of each variant per size and the ratio threaded/serial (and
streaming/plain); the thresholds are the smallest sizes from which the ratio stays below 1.
"""

from __future__ import annotations

import sys

import numpy as np

import fastl2
from fastl2 import _core
from fastl2._bench.timing import time_call

SIZES = [2**k for k in range(12, 25)] + [2**26]


def median_time(call, budget_s: float = 0.15) -> float:
    """Median seconds per call, batching calls so one sample lasts at least 0.2 ms (5 samples
    at least)."""
    call()
    return time_call(call, budget_s, min_samples=5).seconds


def parallel_threshold(dtype) -> None:
    print(f"\nthreads vs serial, mse and mse_and_grad(out=...), {np.dtype(dtype).name}, "
          f"{fastl2.get_num_threads()} threads")
    print(f"{'n':>10} {'mse serial':>12} {'threaded':>10} {'ratio':>6} {'grad serial':>12} {'threaded':>10} {'ratio':>6}")
    rng = np.random.default_rng(0)
    saved = _core.parallel_threshold()
    try:
        for n in SIZES:
            a, b = rng.random(n).astype(dtype), rng.random(n).astype(dtype)
            out = np.empty_like(b)
            row = []
            for call in (lambda: fastl2.mse(a, b), lambda: fastl2.mse_and_grad(a, b, out=out)):
                _core.set_parallel_threshold(1 << 62)
                serial = median_time(call)
                _core.set_parallel_threshold(0)
                threaded = median_time(call)
                row += [serial, threaded]
            print(f"{n:>10} {row[0]*1e6:>10.1f}us {row[1]*1e6:>8.1f}us {row[1]/row[0]:>6.2f} "
                  f"{row[2]*1e6:>10.1f}us {row[3]*1e6:>8.1f}us {row[3]/row[2]:>6.2f}")
    finally:
        _core.set_parallel_threshold(saved)


def stream_threshold(dtype) -> None:
    print(f"\nstreaming vs plain stores, mse_and_grad (fresh gradient and out=...), {np.dtype(dtype).name}")
    print(f"{'n':>10} {'MiB':>6} {'fresh plain':>12} {'stream':>10} {'ratio':>6} {'out= plain':>12} {'stream':>10} {'ratio':>6}")
    rng = np.random.default_rng(0)
    saved = _core.stream_threshold()
    try:
        for n in SIZES[4:] + [2**25, 2**26]:
            a, b = rng.random(n).astype(dtype), rng.random(n).astype(dtype)
            out = np.empty_like(b)
            row = []
            for call in (lambda: fastl2.mse_and_grad(a, b), lambda: fastl2.mse_and_grad(a, b, out=out)):
                _core.set_stream_threshold(1 << 62)
                plain = median_time(call)
                _core.set_stream_threshold(0)
                stream = median_time(call)
                row += [plain, stream]
            print(f"{n:>10} {b.nbytes / 2**20:>6.1f} {row[0]*1e6:>10.1f}us {row[1]*1e6:>8.1f}us "
                  f"{row[1]/row[0]:>6.2f} {row[2]*1e6:>10.1f}us {row[3]*1e6:>8.1f}us {row[3]/row[2]:>6.2f}")
    finally:
        _core.set_stream_threshold(saved)


if __name__ == "__main__":
    fastl2.set_backend("cython")
    print(f"fastl2 {fastl2.__version__}, simd {_core.simd_level()}, python {sys.version.split()[0]}")
    for dtype in (np.float32, np.float64):
        parallel_threshold(dtype)
    for dtype in (np.float32, np.float64):
        stream_threshold(dtype)
