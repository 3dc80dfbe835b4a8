"""float16 or bfloat16 operands read in place against float32 arrays of the same values, and
against the float32 copies a caller would otherwise make, on the compiled backend (one
process, medians of rounds that call every case in turn)::

    uptime; python bench/half_precision.py                      # float16, one thread
    python bench/half_precision.py --dtype bfloat16 --threads 2 --sizes 1e7 1e8

(bfloat16 arrays are ``ml_dtypes.bfloat16``: pip install ml_dtypes.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastl2


def medians_us(cases, rounds):
    """Each case's median time in microseconds, the cases called in turn, round after round
    (so that a slow moment of a shared machine falls on all of them alike)."""
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, call in cases.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: sorted(t)[rounds // 2] * 1e6 for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6, 1e7, 1e8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="cython")
    args = parser.parse_args()
    if args.dtype == "bfloat16":
        import ml_dtypes

        half = np.dtype(ml_dtypes.bfloat16)
    else:
        half = np.dtype(np.float16)
    fastl2.set_backend(args.backend)
    fastl2.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    short = {"float16": "f16", "bfloat16": "bf16"}[args.dtype]
    print(f"{args.dtype}, backend {args.backend}, {args.threads} thread(s)")
    print(f"{'n':>6} {'mse ' + short + ' us':>12} {'f32 us':>9} {short + ' vs f32':>11} {'copies us':>10} "
          f"{'vs copies':>9} {'and_grad ' + short + ' vs f32':>20}")
    for n in (int(size) for size in args.sizes):
        a = rng.standard_normal(n).astype(half)
        b = rng.standard_normal(n).astype(half)
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        rounds = 101 if n <= 10**6 else 21
        cases = {
            "half": lambda: fastl2.mse(a, b),
            "f32": lambda: fastl2.mse(a32, b32),
            "copies": lambda: fastl2.mse(a.astype(np.float32), b.astype(np.float32)),
            "g_half": lambda: fastl2.mse_and_grad(a, b),
            "g32": lambda: fastl2.mse_and_grad(a32, b32),
        }
        for call in cases.values():  # (first-call setup, page faults of the results: untimed)
            call()
        median = medians_us(cases, rounds)
        print(f"{n:>6.0e} {median['half']:>12.1f} {median['f32']:>9.1f} {median['f32'] / median['half']:>10.2f}x "
              f"{median['copies']:>10.1f} {median['copies'] / median['half']:>8.1f}x "
              f"{median['g32'] / median['g_half']:>19.2f}x", flush=True)


if __name__ == "__main__":
    main()
