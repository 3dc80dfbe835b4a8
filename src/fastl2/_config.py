"""What this installation is: ``fastl2.show_config()`` and ``python -m fastl2 info``."""

from __future__ import annotations

import platform
import sys

import numpy as np

from . import _backends


def config() -> dict[str, object]:
    """The facts show_config prints, as a dict."""
    from . import __version__

    core = _backends.compiled_module()
    facts: dict[str, object] = {
        "fastl2": __version__,
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "platform": platform.platform(),
        "backends available": ", ".join(_backends.available_backends()),
        "backend in use": _backends.get_backend(),
        "threads": _backends.get_num_threads(),
    }
    numba = sys.modules.get("numba")
    if numba is not None:
        facts["numba"] = numba.__version__
        pool = sys.modules.get("fastl2._numba.pool")
        config = sys.modules.get("fastl2._numba.config")
        if pool is not None and config is not None:  # (the numba backend has been loaded)
            facts["numba backend threads"] = (
                f"fastl2's pool of Python threads ({pool._helpers} helpers started), "
                f"parallel from {config.PARALLEL_THRESHOLD} elements")
    if core is None:
        facts["compiled kernels"] = "not built (NumPy backend)"
        tag = _wheel_build_tag()
        if tag:
            facts["compiled kernels"] += f": the wheel was built without them (build tag {tag!r}; README, Install)"
    else:
        facts["compiled kernels"] = "built"
        facts["compiler"] = core.compiler()
        facts["thread pool"] = (
            f"yes, {core.pool_size()} helper threads started" if core.threads_available()
            else "no (serial kernels: no POSIX threads)")
        facts["openmp"] = ("yes (the default thread count follows it)" if core.openmp_enabled()
                           else "no (the default thread count is the CPUs')")
        facts["simd level"] = core.simd_level()
        if core.float32_run_level() != core.simd_level():
            facts["simd level"] += (f" ({core.float32_run_level()} kernels for float32 1-d passes: faster "
                                    "where 512-bit operations run in two halves, as on AMD Zen 4)")
        facts["bfloat16 gradients"] = f"rounded by {core.bfloat16_rounding()}"
        facts["baseline level"] = core.baseline_isa()
        facts["simd levels on this cpu"] = ", ".join(core.simd_levels_available())
        facts["parallel from"] = f"{core.parallel_threshold()} elements"
        facts["streaming stores from"] = f"{core.stream_threshold() >> 20} MiB of gradient"
        facts["block size"] = core.BLOCK_SIZE
        facts["gradient cache"] = (
            f"{core.cached_gradient_bytes() >> 20} MiB held, limit "
            f"{core.gradient_cache_limit_bytes() >> 20} MiB (fastl2.set_gradient_cache_limit)"
        )
        if core.in_forked_child():
            facts["forked child"] = "yes: its thread pool started over"
    return facts


def _wheel_build_tag() -> str | None:
    """The build tag of the wheel this install came from: setup.py gives a wheel built without
    the compiled extension one that names the cause (``0nocompiler``, ``0compileerror``, ...)."""
    from importlib import metadata

    try:
        wheel = metadata.distribution("fastl2").read_text("WHEEL") or ""
    except metadata.PackageNotFoundError:
        return None
    for line in wheel.splitlines():
        if line.startswith("Build:"):
            return line.partition(":")[2].strip()
    return None


def show_config() -> None:
    """Print fastl2's version, backends, threads, compiler, OpenMP and SIMD level."""
    facts = config()
    width = max(len(k) for k in facts)
    for key, value in facts.items():
        print(f"{key:<{width}} : {value}")
