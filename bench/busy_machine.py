"""fastl2 on a busy machine: the same calls alone and beside CPU-bound processes.

A DataLoader's workers, a second job or a container's CPU quota leave fewer free cores than
threads.  A fork/join thread team then waits at its join for a thread the scheduler has not run
yet, a whole time slice; fastl2's pool (csrc/pool.c) lets the calling thread compute every block
no helper has claimed, so a call never waits for a thread that has not started.

Run it in one process, as is (it starts and stops the background processes itself)::

    uptime; python bench/busy_machine.py                     # the compiled backend
    python bench/busy_machine.py --backend numba --busy 2    # the numba backend, 2 spinners

For each size it prints the median and the 99th percentile of single calls (not batches: a
stall is one call's), first on the machine as it is, then with ``--busy`` spinning processes
(default: one per CPU), with ``set_num_threads(1)`` and with every core, and NumPy's
``d = a - b; d @ d / n`` beside them; the ratios are to fastl2's own single-thread median
measured first.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import numpy as np

import fastl2
from fastl2._bench.timing import percentile


def spin(stop) -> None:
    """A CPU-bound process: pure-Python arithmetic until told to stop."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def samples(call, count: int) -> tuple[float, float]:
    """Median and 99th percentile of ``count`` single calls, in seconds."""
    for _ in range(5):
        call()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return percentile(times, 0.5), percentile(times, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="cython", help="cython (default) or numba")
    parser.add_argument("--busy", type=int, default=os.cpu_count(), metavar="K", help="spinning processes")
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e5, 1e6])
    parser.add_argument("--calls", type=int, default=400, metavar="N", help="single calls per row")
    args = parser.parse_args()
    fastl2.set_backend(args.backend)
    cores = os.cpu_count() or 1
    rng = np.random.default_rng(0)
    cases = []
    for n in map(int, args.sizes):
        a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        scratch = np.empty_like(a)
        cases.append((n, {
            "mse": lambda a=a, b=b: fastl2.mse(a, b),
            "mse_and_grad": lambda a=a, b=b: fastl2.mse_and_grad(a, b),
            "numpy d@d/n": lambda a=a, b=b, d=scratch, n=n: (np.subtract(a, b, out=d), d @ d / n),
        }))

    def table(title: str, quiet: dict | None) -> dict:
        print(f"\n{title} (load average {os.getloadavg()[0]:.1f} on {cores} CPUs)")
        print(f"{'n':>9} {'call':<13} {'threads':>7} {'median':>10} {'p99':>10} {'median/quiet 1t':>16} {'p99/quiet 1t':>13}")
        measured = {}
        for n, calls in cases:
            for name, call in calls.items():
                for threads in ([1] if name.startswith("numpy") else [1, cores]):
                    fastl2.set_num_threads(threads)
                    med, p99 = samples(call, args.calls)
                    measured[n, name, threads] = med
                    base = (quiet or measured).get((n, name, 1), med)
                    print(f"{n:>9} {name:<13} {threads:>7} {med * 1e6:>8.1f}µs {p99 * 1e6:>8.1f}µs "
                          f"{med / base:>15.2f}× {p99 / base:>12.2f}×", flush=True)
        return measured

    print(f"fastl2 {fastl2.__version__}, backend {fastl2.get_backend()}, {cores} CPUs")
    quiet = table("as the machine is", None)
    stop = multiprocessing.Event()
    spinners = [multiprocessing.Process(target=spin, args=(stop,), daemon=True) for _ in range(args.busy)]
    try:
        for process in spinners:
            process.start()
        time.sleep(0.5)
        table(f"beside {args.busy} CPU-bound processes", quiet)
    finally:
        stop.set()
        for process in spinners:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


if __name__ == "__main__":
    main()
