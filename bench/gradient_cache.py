"""Is the gradient memory cache worth keeping?  Times fresh gradients with it and without it.

A fresh gradient of tens of megabytes costs page faults (the kernel zeroing each new page);
with the cache, the memory of the last gradient freed is handed to the next one.  Each size
is timed in interleaved rounds, cache on (the default 1 GiB limit) and off (limit 0), in one
process; the medians and their ratio are printed.

    python bench/gradient_cache.py [--sizes 1e6 1e7] [--rounds 5] [--calls 30]
"""
import argparse

import numpy as np

import fastl2
from fastl2._bench.timing import time_call


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=30)
    args = parser.parse_args()
    limit = fastl2.get_gradient_cache_limit()
    if fastl2._backends.compiled_module() is None:
        raise SystemExit("the gradient cache lives in the compiled module, which is not built here")
    rng = np.random.default_rng(0)
    try:
        for n in map(int, args.sizes):
            y_true, y_pred = rng.random(n, np.float32), rng.random(n, np.float32)
            medians = {True: [], False: []}
            for _ in range(args.rounds):
                for cached in (True, False):
                    fastl2.set_gradient_cache_limit(max(limit, 1 << 30) if cached else 0)
                    fastl2.empty_cache()
                    fastl2.mse_grad(y_true, y_pred)  # (fills the cache when on)
                    # each gradient is dropped as soon as it is returned, inside the timing
                    timing = time_call(lambda: fastl2.mse_grad(y_true, y_pred), repeat=args.calls)
                    medians[cached].append(timing.seconds)
            on, off = np.median(medians[True]), np.median(medians[False])
            print(f"n={n:>11,} float32 mse_grad: cache on {on * 1e3:8.3f} ms, off {off * 1e3:8.3f} ms, "
                  f"off/on {off / on:.2f}x")
    finally:
        fastl2.set_gradient_cache_limit(limit)


if __name__ == "__main__":
    main()
