"""Two builds of the compiled module in one process: the median time of each call, and the ratio.

How a change of the C or Cython code is measured (the float32 certificate of correct rounding
was measured so): build the other revision in a clone, then

    git clone -q . /tmp/other && git -C /tmp/other checkout -q REV
    (cd /tmp/other && python setup.py build_ext --inplace)
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_builds.py /tmp/other/src/fastl2/_core*.so

The other build's ``_core`` is loaded beside this checkout's (each has its own thread pool and
settings); both run on one thread (two pools spinning beside each other would disturb each
other), in interleaved rounds; the table gives medians and ``after / before``.  Its calls take
the compiled fast paths only (1-d calls and unweighted axis calls), which never reach Python.
Check ``uptime`` first: an unchanged call's ratio shows the noise level.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import statistics
import sys
import time

import numpy as np

import fastl2


def load_other(path: str):
    loader = importlib.machinery.ExtensionFileLoader("_core", path)
    spec = importlib.util.spec_from_file_location("_core", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module._set_fast_path(True)  # (fastl2._backends turns it on for its own module)
    return module


def median_time(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit(__doc__)
    other = load_other(argv[0])
    this = sys.modules["fastl2._core"]
    fastl2.set_backend("cython")
    other.set_num_threads(1)
    this.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"{'dtype':8s} {'n':>10s} {'call':26s} {'other':>12s} {'this':>12s}  this/other")
    for dtype in (np.float32, np.float64):
        for n in (10**5, 10**6, 10**7, 10**8):
            a = rng.standard_normal(n).astype(dtype)
            b = rng.standard_normal(n).astype(dtype)
            repeats = max(5, min(2000, int(2e8 // (n * 40))))
            calls = {
                "mse": lambda m: m.mse(a, b),
                "mae": lambda m: m.mae(a, b),
                "mse_and_grad": lambda m: m.mse_and_grad(a, b),
                "mse axis=0 (n/8, 8)": lambda m: m.mse(a.reshape(-1, 8), b.reshape(-1, 8), axis=0),
                "mse axis=-1 (n/100, 100)": lambda m: m.mse(a.reshape(-1, 100), b.reshape(-1, 100), axis=-1),
            }
            for name, call in calls.items():
                before, after = [], []
                for _ in range(5):  # interleaved rounds
                    before.append(median_time(lambda: call(other), repeats))
                    after.append(median_time(lambda: call(this), repeats))
                t0, t1 = statistics.median(before), statistics.median(after)
                print(f"{np.dtype(dtype).name:8s} {n:>10d} {name:26s} {t0 * 1e6:10.1f}us {t1 * 1e6:10.1f}us"
                      f"  {t1 / t0:5.3f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
