"""The MSE of two float32 arrays stored on disk in chunks, on a Dask LocalCluster: fastl2.dask.mse
beside Dask's own ``((a - b) ** 2).mean()``.

    python bench/dask_mse.py                      # 10**9 elements (8 GB of .npy files)
    python bench/dask_mse.py --elements 1e8 --in-memory

The arrays are written once (``dask.array.to_npy_stack``: one .npy file per chunk, in
``--data``, default a ``fastl2-dask-example`` directory in the system's temporary directory) and
read back as memory maps (``dask.array.from_npy_stack``).  A LocalCluster of ``--workers`` worker
processes (one thread each) computes both, alternately, ``--repeat`` times; the medians and
their ratio are printed.  ``--in-memory`` first loads the arrays into the workers' memory
(``persist``), so that only the computations are timed, not the disk or the page cache.
Needs Dask: ``pip install ".[dask]"`` in fastl2's checkout.
"""

import argparse
import os
import statistics
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elements", type=float, default=1e9, help="elements per array (default 1e9)")
    parser.add_argument("--chunk", type=float, default=2.5e7, help="elements per chunk (default 2.5e7: 100 MB)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--repeat", type=int, default=3, help="timings of each (default 3)")
    parser.add_argument("--data", default=os.path.join(tempfile.gettempdir(), "fastl2-dask-example"),
                        help="where the .npy chunks are (written if missing)")
    parser.add_argument("--in-memory", action="store_true", help="persist the arrays in the workers first")
    args = parser.parse_args()

    import dask.array as da
    import numpy as np
    from distributed import Client, LocalCluster, wait

    import fastl2.dask

    n, chunk = int(args.elements), int(args.chunk)
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        arrays = []
        for name, seed in (("y_true", 1), ("y_pred", 2)):
            path = os.path.join(args.data, f"{name}-{n}-{chunk}")
            if not os.path.exists(os.path.join(path, "info")):
                os.makedirs(args.data, exist_ok=True)
                print(f"writing {path} ({n * 4 / 1e9:.1f} GB) ...", flush=True)
                random = da.random.default_rng(seed).standard_normal(n, chunks=chunk, dtype=np.float32)
                da.to_npy_stack(path, random, axis=0)
            arrays.append(da.from_npy_stack(path, mmap_mode="r"))
        y_true, y_pred = arrays
        if args.in_memory:
            y_true, y_pred = (a.map_blocks(np.array).persist() for a in arrays)
            wait([y_true, y_pred])

        def fastl2_mse():
            return fastl2.dask.mse(y_true, y_pred)

        def dask_mean():
            return ((y_pred - y_true) ** 2).mean().compute()

        times = {fastl2_mse: [], dask_mean: []}
        values = {}
        for _ in range(args.repeat):
            for function in times:
                start = time.perf_counter()
                values[function] = function()
                times[function].append(time.perf_counter() - start)
        where = "in the workers' memory" if args.in_memory else "on disk (.npy memory maps)"
        print(f"{n:.3g} float32 elements per array, {where}, chunks of {chunk:.3g}, "
              f"{args.workers} worker processes x 1 thread; load average {os.getloadavg()[0]:.2f}")
        for function, label in ((fastl2_mse, "fastl2.dask.mse(y_true, y_pred)"),
                                (dask_mean, "((y_pred - y_true) ** 2).mean().compute()")):
            print(f"  {label:44s} {statistics.median(times[function]):8.3f} s   = {values[function]!r}")
        ratio = statistics.median(times[dask_mean]) / statistics.median(times[fastl2_mse])
        print(f"  Dask's time / fastl2.dask's time: {ratio:.2f} (ratio of medians of {args.repeat})")


if __name__ == "__main__":
    main()
