"""fastl2 in cache, against a hand-written bandwidth-limit kernel, in one process.

A training loss is mostly a batch the model has just written: 10**5 to 3*10**6 float32
elements, in L2 or L3.  This script times ``fastl2.mse`` and ``fastl2.mse_and_grad(...,
out=g)`` beside a reference C kernel (one pass, OpenMP, AVX-512, float64 accumulation with
fused multiply-adds, fixed 8192-element blocks) with the same inputs, threads and cache state,
in interleaved phases, and prints throughput ratios fastl2 / reference (1.0: as fast).

The reference kernel is not part of fastl2: give the path of its source, a C file that defines
``double mse(const float *a, const float *b, long n)`` and ``double mse_grad(const float *a,
const float *b, float *g, long n, int nt)``.  It is compiled
here with ``gcc -O3 -march=native -fopenmp`` beside a small timing loop, so that each of its
calls is timed in C, without Python's call overhead::

    uptime; env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \\
        python bench/in_cache.py --reference path/to/reference.c

Each phase makes ``--calls`` calls of one method back to back after a pause of ``--pause``
seconds (the time a training step spends elsewhere) and keeps their median; the ratio of a
cell is the median over ``--rounds`` rounds of the two methods' phase medians.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import fastl2

# The timing loop compiled beside the reference kernel: each call timed by CLOCK_MONOTONIC.
_TIMER = r"""
#include <omp.h>
#include <time.h>
static double fl2_bench_now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec;
}
void fl2_bench_threads(int n) { omp_set_num_threads(n); }
/* what: 0 mse, 1 mse_grad (plain stores); times[k] the k-th call's seconds */
double fl2_bench_run(int what, const float *a, const float *b, float *g, long n, int calls,
                     double *times) {
    double r = 0.0;
    for (int k = 0; k < calls; k++) {
        double t = fl2_bench_now();
        r += what == 0 ? mse(a, b, n) : mse_grad(a, b, g, n, 0);
        times[k] = fl2_bench_now() - t;
    }
    return r;
}
"""


def build_reference(source: pathlib.Path, workdir: pathlib.Path) -> ctypes.CDLL:
    """Compile the reference kernel (its ``main`` renamed away) and the timer into a library."""
    combined = workdir / "reference.c"
    combined.write_text(f'#define main fl2_reference_main\n#include "{source.resolve()}"\n#undef main\n{_TIMER}')
    library = workdir / "reference.so"
    command = ["gcc", "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", str(combined), "-o", str(library)]
    built = subprocess.run(command, capture_output=True, text=True)
    if built.returncode != 0:
        sys.exit(f"in_cache.py: the reference kernel {source} did not compile ({' '.join(command)}):\n{built.stderr}")
    lib = ctypes.CDLL(str(library))
    pointer = ctypes.c_void_p
    lib.fl2_bench_run.restype = ctypes.c_double
    lib.fl2_bench_run.argtypes = [ctypes.c_int, pointer, pointer, pointer, ctypes.c_long, ctypes.c_int, pointer]
    lib.fl2_bench_threads.argtypes = [ctypes.c_int]
    return lib


def reference_phase(lib: ctypes.CDLL, what: int, a, b, g, calls: int) -> float:
    """Median seconds of ``calls`` reference calls timed in C."""
    times = np.zeros(calls)
    lib.fl2_bench_run(what, a.ctypes.data, b.ctypes.data, g.ctypes.data, a.size, calls, times.ctypes.data)
    return float(np.median(times))


def fastl2_phase(call, calls: int) -> float:
    """Median seconds of ``calls`` fastl2 calls, each timed by perf_counter."""
    times = []
    clock = time.perf_counter
    for _ in range(calls):
        start = clock()
        call()
        times.append(clock() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=pathlib.Path, required=True, metavar="FILE.c",
                        help="source of the reference kernel (defines mse and mse_grad)")
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e5, 3e5, 1e6])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--calls", type=int, default=200, help="calls per phase")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per cell")
    parser.add_argument("--pause", type=float, default=0.15, help="seconds before each phase")
    args = parser.parse_args()

    if not args.reference.is_file():
        parser.error(f"--reference: no such file: {args.reference}")
    with tempfile.TemporaryDirectory() as tmp:
        lib = build_reference(args.reference, pathlib.Path(tmp))
        load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
        core = fastl2._backends.compiled_module()
        kernels = f"SIMD level {core.simd_level()}" if core is not None else "no compiled kernels"
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; fastl2 {fastl2.__version__}, "
              f"backend {fastl2.get_backend()}, {kernels}; {os.cpu_count()} CPUs")
        print("throughput ratio fastl2 / reference (median of rounds; min-max), fastl2 and reference median us")
        rng = np.random.default_rng(0)
        for threads in args.threads:
            fastl2.set_num_threads(threads)
            lib.fl2_bench_threads(threads)
            for size in args.sizes:
                n = int(size)
                a = rng.random(n, dtype=np.float32)
                b = rng.random(n, dtype=np.float32)
                g = np.zeros(n, dtype=np.float32)
                cells = {
                    "mse": (lambda: fastl2.mse(a, b), 0),
                    "mse_and_grad": (lambda: fastl2.mse_and_grad(a, b, out=g), 1),
                }
                for name, (call, what) in cells.items():
                    ratios, ours, theirs = [], [], []
                    for _ in range(args.rounds):
                        time.sleep(args.pause)
                        mine = fastl2_phase(call, args.calls)
                        time.sleep(args.pause)
                        ref = reference_phase(lib, what, a, b, g, args.calls)
                        ratios.append(ref / mine)
                        ours.append(mine)
                        theirs.append(ref)
                    print(f"threads {threads}  n {n:>9,}  {name:<13} {statistics.median(ratios):5.2f} "
                          f"({min(ratios):.2f}-{max(ratios):.2f})  "
                          f"{statistics.median(ours) * 1e6:8.1f} {statistics.median(theirs) * 1e6:8.1f}",
                          flush=True)
    return None


if __name__ == "__main__":
    sys.exit(main())
