"""fastl2.metrics against sklearn.metrics: the same calls, timed in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/metrics.py [--rows 1e3 1e5 1e7 1e8]
        [--outputs 1 8] [--dtypes float32 float64] [--budget 1.0]

Each cell times ``metric(y_true, y_pred)`` (and ``multioutput="raw_values"`` with several
outputs) of random C-contiguous arrays of shape (rows,) or (rows, outputs), scikit-learn's
call and fastl2's interleaved, repeated until ``--budget`` seconds (at least 3 calls each);
it prints the medians and their ratio.  Cells whose arrays and scikit-learn's two temporaries
would not fit in 60% of the machine's memory are left out, with a line saying so.  Needs
scikit-learn (``pip install ".[bench]"``).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import fastl2
import fastl2.metrics as fm


def _median_times(calls, budget: float) -> list[float]:
    times = [[] for _ in calls]
    start = time.perf_counter()
    while min(len(t) for t in times) < 3 or time.perf_counter() - start < budget:
        for call, kept in zip(calls, times):
            t = time.perf_counter()
            call()
            kept.append(time.perf_counter() - t)
        if min(len(t) for t in times) >= 101:
            break
    return [statistics.median(t) for t in times]


def _memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=float, nargs="+", default=[1e3, 1e4, 1e5, 1e6, 1e7, 1e8])
    parser.add_argument("--outputs", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    parser.add_argument("--metrics", nargs="+", default=["mean_squared_error", "mean_absolute_error",
                                                        "root_mean_squared_error"])
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per cell (default 1)")
    args = parser.parse_args(argv)
    import sklearn
    import sklearn.metrics as sk

    print(f"# scikit-learn {sklearn.__version__}, NumPy {np.__version__}, fastl2 {fastl2.__version__} "
          f"(backend {fastl2.get_backend()}, {fastl2.get_num_threads()} threads); "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| metric | multioutput | rows | outputs | dtype | scikit-learn | fastl2 | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for dtype in map(np.dtype, args.dtypes):
        for outputs in args.outputs:
            for rows in map(int, args.rows):
                shape = (rows,) if outputs == 1 else (rows, outputs)
                nbytes = rows * outputs * dtype.itemsize
                if 4 * nbytes > 0.6 * _memory():
                    print(f"(left out: {rows} x {outputs} {dtype}: {4 * nbytes / 2**30:.1f} GiB with "
                          "scikit-learn's temporaries)")
                    continue
                y_true = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
                y_pred = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)
                forms = ["uniform_average"] + (["raw_values"] if outputs > 1 else [])
                for name in args.metrics:
                    for multioutput in forms:
                        theirs, ours = getattr(sk, name), getattr(fm, name)
                        budget = args.budget if rows < 10**7 else max(args.budget, 0.0)
                        t_sk, t_fl = _median_times(
                            [lambda: theirs(y_true, y_pred, multioutput=multioutput),
                             lambda: ours(y_true, y_pred, multioutput=multioutput)], budget)
                        print(f"| {name} | {multioutput} | {rows:.0e} | {outputs} | {dtype} | "
                              f"{t_sk * 1e3:.3f} ms | {t_fl * 1e3:.3f} ms | {t_sk / t_fl:.1f}x |", flush=True)
                y_true = y_pred = None  # (freed before the next cell allocates)


if __name__ == "__main__":
    main()
