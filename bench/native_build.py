"""Is the portable build (what a wheel holds) as fast as a ``-march=native`` build here?

Builds the extension a second time with ``CFLAGS=-march=native`` into a temporary directory,
loads both builds into this one process, and times ``mse`` and ``mse_and_grad`` with each,
alternating, at 10^5 and 10^7 elements::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/native_build.py

It prints the median time of each build and the ratio portable/native (below 1.05 means the
portable build is at least 0.95x the native one's speed).  Run it from the repository root, on
a quiet machine, with fastl2 installed from this checkout.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import fastl2
from fastl2 import _core as portable
from fastl2._bench.timing import time_call

ROOT = Path(__file__).resolve().parent.parent


def build_native(directory: str):
    """fastl2._core built with -march=native, loaded as a module of its own."""
    env = dict(os.environ, CFLAGS="-march=native -mtune=native")
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", directory,
         "--build-temp", os.path.join(directory, "tmp"), "--force"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
    )
    (path,) = Path(directory, "fastl2").glob("_core*.so")
    # The module's init function is named after the last part of its name (_core), so the
    # second build loads beside the first under another package name.
    loader = importlib.machinery.ExtensionFileLoader("fastl2_native._core", str(path))
    spec = importlib.util.spec_from_file_location("fastl2_native._core", path, loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    # Its fast paths answer these calls; anything else would go to fastl2's planned functions.
    module._set_fast_path(True)
    return module


def median_time(call, budget_s: float = 0.3) -> float:
    """Median seconds per call, batching calls so one sample lasts at least 0.2 ms (7 samples
    at least)."""
    call()
    return time_call(call, budget_s, min_samples=7).seconds


def main() -> None:
    fastl2.set_backend("cython")
    with tempfile.TemporaryDirectory() as directory:
        native = build_native(directory)
        print(f"fastl2 {fastl2.__version__}: portable build at simd level {portable.simd_level()}, "
              f"native build at {native.simd_level()}, {fastl2.get_num_threads()} threads")
        print(f"{'op':>13} {'dtype':>8} {'n':>10} {'portable':>11} {'native':>11} {'ratio':>6}")
        rng = np.random.default_rng(0)
        for n in (10**5, 10**7):
            for dtype in (np.float32, np.float64):
                a, b = rng.random(n).astype(dtype), rng.random(n).astype(dtype)
                out = np.empty_like(b)
                for op in ("mse", "mse_and_grad"):
                    calls = {}
                    for name, module in (("portable", portable), ("native", native)):
                        if op == "mse":
                            calls[name] = lambda m=module: m.mse(a, b)
                        else:
                            calls[name] = lambda m=module: m.mse_and_grad(a, b, out=out)
                    # The two builds alternate, three rounds; each keeps its best median.
                    times = {name: median_time(calls[name]) for name in calls}
                    for _ in range(2):
                        for name in calls:
                            times[name] = min(times[name], median_time(calls[name]))
                    ratio = times["portable"] / times["native"]
                    print(f"{op:>13} {np.dtype(dtype).name:>8} {n:>10} "
                          f"{times['portable'] * 1e6:>9.1f}us {times['native'] * 1e6:>9.1f}us "
                          f"{ratio:>6.2f}")


if __name__ == "__main__":
    main()
