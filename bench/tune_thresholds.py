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


def compare(title: str, dtype, sizes, calls, threshold, set_threshold, labels) -> None:
    """Print, per size, the median time of each of ``calls`` (name: function of the arrays
    ``a, b, out`` of ``dtype``) with the threshold off (``1 << 62``) and at 0 (``labels``: the
    two variants' names), and the ratio of the second to the first."""
    header = "".join(f" {name + ' ' + labels[0]:>14} {labels[1]:>10} {'ratio':>6}" for name in calls)
    print(f"\n{title}, {np.dtype(dtype).name}\n{'n':>10} {'MiB':>6}{header}")
    rng = np.random.default_rng(0)
    saved = threshold()
    try:
        for n in sizes:
            a, b = rng.random(n).astype(dtype), rng.random(n).astype(dtype)
            out = np.empty_like(b)
            line = ""
            for function in calls.values():
                def call():
                    return function(a, b, out)
                set_threshold(1 << 62)
                off = median_time(call)
                set_threshold(0)
                on = median_time(call)
                line += f" {off * 1e6:>12.1f}us {on * 1e6:>8.1f}us {on / off:>6.2f}"
            print(f"{n:>10} {b.nbytes / 2**20:>6.1f}{line}")
    finally:
        set_threshold(saved)


def parallel_threshold(dtype) -> None:
    compare(f"threads vs serial ({fastl2.get_num_threads()} threads)", dtype, SIZES,
            {"mse": lambda a, b, out: fastl2.mse(a, b),
             "grad(out=)": lambda a, b, out: fastl2.mse_and_grad(a, b, out=out)},
            _core.parallel_threshold, _core.set_parallel_threshold, ("serial", "threaded"))


def stream_threshold(dtype) -> None:
    compare("streaming vs plain stores, mse_and_grad", dtype, SIZES[4:] + [2**25, 2**26],
            {"fresh": lambda a, b, out: fastl2.mse_and_grad(a, b),
             "out=": lambda a, b, out: fastl2.mse_and_grad(a, b, out=out)},
            _core.stream_threshold, _core.set_stream_threshold, ("plain", "stream"))


if __name__ == "__main__":
    fastl2.set_backend("cython")
    print(f"fastl2 {fastl2.__version__}, simd {_core.simd_level()}, python {sys.version.split()[0]}")
    for dtype in (np.float32, np.float64):
        parallel_threshold(dtype)
    for dtype in (np.float32, np.float64):
        stream_threshold(dtype)
