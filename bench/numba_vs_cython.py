"""The numba backend's time against the compiled (cython) backend's, one process.

For 10^5 and 10^7 elements, float32 and float64: ``mse``, ``mse_and_grad`` and weighted
``mse``; each backend timed twice, interleaved, keeping its better median::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/numba_vs_cython.py
"""

from __future__ import annotations

import numpy as np

import fastl2
from fastl2._bench.timing import time_call


def main() -> None:
    rng = np.random.default_rng(0)
    calls = {
        "mse": lambda a, b, w: fastl2.mse(a, b),
        "mse_and_grad": lambda a, b, w: fastl2.mse_and_grad(a, b),
        "weighted mse": lambda a, b, w: fastl2.mse(a, b, w, reduction="weighted_mean"),
    }
    print(f"{'n':>10} {'dtype':8} {'op':13} {'cython':>10} {'numba':>10} {'numba/cython':>13}")
    for n in (10**5, 10**7):
        reps = 2000 if n <= 10**5 else 60
        for dtype in (np.float32, np.float64):
            a, b, w = (rng.standard_normal(n).astype(dtype) for _ in range(3))
            for name, call in calls.items():
                best = {}
                for _ in range(2):
                    for backend in ("cython", "numba"):
                        fastl2.set_backend(backend)
                        call(a, b, w)
                        t = time_call(lambda: call(a, b, w), repeat=reps).seconds
                        best[backend] = min(best.get(backend, t), t)
                print(f"{n:>10} {np.dtype(dtype).name:8} {name:13} {best['cython'] * 1e6:8.1f}us "
                      f"{best['numba'] * 1e6:8.1f}us {best['numba'] / best['cython']:13.2f}")


if __name__ == "__main__":
    main()
