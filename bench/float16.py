"""float16 operands read in place against float32 arrays of the same values, and against the
former float32 copies made by NumPy, on the compiled backend (one process, medians)::

    uptime; python bench/float16.py                  # one thread
    python bench/float16.py --threads 2 --sizes 1e7 1e8
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastl2


def median_us(call, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeat // 2] * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e4, 1e5, 1e6, 1e7, 1e8])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="cython")
    args = parser.parse_args()
    fastl2.set_backend(args.backend)
    fastl2.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"{'n':>6} {'mse f16 us':>11} {'f32 us':>9} {'f16 vs f32':>10} {'former copies us':>16} "
          f"{'vs former':>9} {'and_grad f16 vs f32':>19}")
    for n in (int(size) for size in args.sizes):
        a = rng.standard_normal(n).astype(np.float16)
        b = rng.standard_normal(n).astype(np.float16)
        a32, b32 = a.astype(np.float32), b.astype(np.float32)
        repeat = 51 if n <= 10**6 else 5
        cases = {
            "f16": lambda: fastl2.mse(a, b),
            "f32": lambda: fastl2.mse(a32, b32),
            "former": lambda: fastl2.mse(a.astype(np.float32), b.astype(np.float32)),
            "g16": lambda: fastl2.mse_and_grad(a, b),
            "g32": lambda: fastl2.mse_and_grad(a32, b32),
        }
        best = {name: min(median_us(call, repeat) for _ in range(2)) for name, call in cases.items()}
        print(f"{n:>6.0e} {best['f16']:>11.1f} {best['f32']:>9.1f} {best['f32'] / best['f16']:>9.2f}x "
              f"{best['former']:>16.1f} {best['former'] / best['f16']:>8.1f}x {best['g32'] / best['g16']:>18.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
