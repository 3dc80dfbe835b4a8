"""Two builds of the compiled module in one process: the median time of each call, and the ratio.

How a change of the C or Cython code is measured (the float32 certificate of correct rounding
was measured so): build the other revision in a clone, then

    git clone -q . /tmp/other && git -C /tmp/other checkout -q REV
    (cd /tmp/other && python setup.py build_ext --inplace)
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/ab_builds.py /tmp/other/src/fastl2/_core*.so

The other build's ``_core`` is loaded beside this checkout's (each has its own thread pool and
settings); both run on one thread (two pools spinning beside each other would disturb each
other), in interleaved rounds (each build first in turn); the table gives the medians and the
median of the rounds' ratios ``this / other`` with its quartiles.  ``--sizes``, ``--dtypes``,
``--calls`` and ``--rounds`` choose the cells (``--help``).  Its calls take
the compiled fast paths only (1-d calls and unweighted axis calls), which never reach Python.
Check ``uptime`` first: an unchanged call's ratio shows the noise level.
"""

from __future__ import annotations

import argparse
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
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other", help="the other build's compiled module (_core*.so)")
    parser.add_argument("--sizes", default="1e5,1e6,1e7,1e8", help="element counts (default %(default)s)")
    parser.add_argument("--dtypes", default="float32,float64", help="default %(default)s")
    parser.add_argument("--calls", default=",".join(CALLS), help="default: all of %(default)s")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1, help="threads of both builds (default %(default)s)")
    parser.add_argument("--simd", help="the SIMD level of both builds (default: each its best)")
    args = parser.parse_args(argv)
    other = load_other(args.other)
    this = sys.modules["fastl2._core"]
    fastl2.set_backend("cython")
    other.set_num_threads(args.threads)
    this.set_num_threads(args.threads)
    if args.simd:
        other.set_simd_level(args.simd)
        this.set_simd_level(args.simd)
    rng = np.random.default_rng(0)
    print(f"{'dtype':8s} {'n':>10s} {'call':26s} {'other':>12s} {'this':>12s}  this/other [quartiles]")
    for dtype in args.dtypes.split(","):
        for n in (int(float(size)) for size in args.sizes.split(",")):
            a = rng.standard_normal(n).astype(dtype)
            b = rng.standard_normal(n).astype(dtype)
            w = rng.random(n).astype(dtype)
            repeats = max(3, min(400, int(4e7 // (n * 10))))
            for name in args.calls.split(","):
                call = CALLS[name]
                ratios, before, after = [], [], []
                for r in range(args.rounds):  # interleaved rounds, each build first in turn
                    order = (other, this) if r % 2 == 0 else (this, other)
                    t = {id(m): median_time(lambda: call(m, a, b, w), repeats) for m in order}
                    before.append(t[id(other)])
                    after.append(t[id(this)])
                    ratios.append(t[id(this)] / t[id(other)])
                q1, _, q3 = statistics.quantiles(ratios, n=4)
                print(f"{dtype:8s} {n:>10d} {name:26s} {statistics.median(before) * 1e6:10.1f}us "
                      f"{statistics.median(after) * 1e6:10.1f}us  {statistics.median(ratios):5.3f} "
                      f"[{q1:.3f}, {q3:.3f}]", flush=True)


CALLS = {
    "mse": lambda m, a, b, w: m.mse(a, b),
    "mse_weighted": lambda m, a, b, w: m.mse(a, b, w),
    "mae": lambda m, a, b, w: m.mae(a, b),
    "huber": lambda m, a, b, w: m.huber(a, b),
    "mse_and_grad": lambda m, a, b, w: m.mse_and_grad(a, b),
    "mse_grad": lambda m, a, b, w: m.mse_grad(a, b),
    "mse_grad_weighted": lambda m, a, b, w: m.mse_grad(a, b, w, reduction="weighted_mean"),
    "mae_grad": lambda m, a, b, w: m.mae_grad(a, b),
    "huber_and_grad": lambda m, a, b, w: m.huber_and_grad(a, b),
    "mse_axis0": lambda m, a, b, w: m.mse(a.reshape(-1, 8), b.reshape(-1, 8), axis=0),
    "mse_axis-1": lambda m, a, b, w: m.mse(a.reshape(-1, 100), b.reshape(-1, 100), axis=-1),
}


if __name__ == "__main__":
    main(sys.argv[1:])
