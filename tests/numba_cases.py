"""What the numba backend's tests (test_numba_backend_*.py, test_numba_cache_dirs.py) share:
switching the computing backend and numba's thread count (fixtures: each test module takes
them as its own, ``switch = numba_cases.switch``), the bits of a result, the data compared
with the cython backend, and a Python run in a fresh process.

fastl2._numba mirrors csrc/ operation for operation (same blocks, lanes, compensation and combine
tree), so its results are compared with the cython backend's byte for byte, not within ulps.
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba", reason="numba is not installed: pip install numba, or pip install '.[numba]' in fastl2's checkout")

import fastl2  # noqa: E402
from fastl2 import _backends  # noqa: E402
from fastl2._plan import BLOCK_SIZE  # noqa: E402
from cases import numba_runs_mix  # noqa: E402

numba_backend_module = pytest.importorskip(
    "fastl2._numba", reason="fastl2._numba does not import with this numba"
)
from fastl2._numba import config as numba_backend_config  # noqa: E402

HAVE_CYTHON = "cython" in fastl2.available_backends()
NO_CYTHON = "the compiled (cython) backend is not built here: nothing bit-identical to compare with"
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(fastl2.__file__)))


# --------------------------------------------------------------------------- backend switching


def _activate(name: str) -> None:
    """Make ``name`` the computing backend; "numba" also before _backends knows about it."""
    if name in _backends.KNOWN_BACKENDS:
        fastl2.set_backend(name)
        return
    assert name == "numba"
    _backends._active = numba_backend_module
    _backends._active_name = "numba"
    core = _backends.compiled_module()
    if core is not None:
        core._set_fast_path(False)


@pytest.fixture
def switch():
    """``switch(name)`` activates a backend; the previous one is restored afterwards.  Meanwhile
    the numba backend runs calls from PARALLEL_SIZE elements on on its threads (pool.py; its
    default threshold, 2**21 elements, would make each such case seven times larger)."""
    previous_name, previous = _backends._active_name, _backends._active
    threshold = numba_backend_config.PARALLEL_THRESHOLD
    numba_backend_config.PARALLEL_THRESHOLD = PARALLEL_SIZE
    yield _activate
    numba_backend_config.PARALLEL_THRESHOLD = threshold
    if previous_name in _backends.KNOWN_BACKENDS:
        fastl2.set_backend(previous_name)
    else:
        _backends._active_name, _backends._active = previous_name, previous


@pytest.fixture
def numba_threads():
    """``numba_threads(n)`` sets the numba backend's thread count; restored afterwards."""
    previous = numba_backend_config._requested_threads
    yield numba_backend_module.set_num_threads
    numba_backend_module.set_num_threads(previous)


def on(switch, backend, func, *args, **kwargs):
    switch(backend)
    return func(*args, **kwargs)


def bits(result):
    """Dtype, shape and bytes of a result, or of each part of a (loss, grad) tuple."""
    parts = result if isinstance(result, tuple) else (result,)
    return tuple(
        (type(p).__name__, np.asarray(p).dtype.str, np.shape(p), np.asarray(p).tobytes()) for p in parts
    )


# --------------------------------------------------------------------------- data

F32, F64 = np.float32, np.float64
DTYPES = {  # name -> (y_true, y_pred, weights)
    "float32": (F32, F32, F32),
    "float64": (F64, F64, F64),
    "f32_true_f64_pred": (F32, F64, F32),
    "f64_true_f32_pred": (F64, F32, F64),
}
SIZES = (1, BLOCK_SIZE - 1, BLOCK_SIZE + 1, 300_001)  # 300_001: the parallel path (switch)
PARALLEL_SIZE = SIZES[-1]
WEIGHTS = ("none", "full", "per_sample")
# The dtypes compared with cython: float32, float64 and the 1-d kernels' float32 / float64 mix
# (cases.py, "numba dtype mixes"): f64_true_f32_pred, whose gradients are the only kernels of their
# own a mix compiles (compensated sums, float32 gradient).  f32_true_f64_pred would compile the
# float64 kernels once more with a float32 y_true; numba runs that mix on its strided kernels
# (test_axis.py, test_layouts_nocopy.py's mixed_float32_float64 layout).
BIT_DTYPES = [name for name, dtypes in DTYPES.items() if numba_runs_mix(*dtypes)]


def _mixed(dtypes):
    return len({np.dtype(d) for d in dtypes}) > 1


def _sizes(func, dtypes):
    """SIZES; the mix on the parallel path only for the functions with a gradient (mixed
    calls run the strided kernel at every size: the parallel path differs only in how its
    work items are shared out, the same for every dtype)."""
    if _mixed(dtypes) and "grad" not in func:
        return SIZES[:-1]
    return SIZES


def make_data(size, dtypes, weights_kind, seed=7, columns=3):
    """y_true, y_pred, weights; "per_sample" gives 2-D y (size, columns) and 1-D weights."""
    rng = np.random.default_rng(seed)
    shape = (size, columns) if weights_kind == "per_sample" else (size,)
    y_true = (rng.standard_normal(shape) * 4).astype(dtypes[0])
    y_pred = (rng.standard_normal(shape) * 4).astype(dtypes[1])
    y_pred.reshape(-1)[::5] = y_true.reshape(-1)[::5]  # d == 0: the sign's zero and -0 cases
    weights = None
    if weights_kind == "full":
        weights = rng.uniform(0.0, 3.0, shape).astype(dtypes[2])
    elif weights_kind == "per_sample":
        weights = rng.uniform(0.0, 3.0, size).astype(dtypes[2])
    return y_true, y_pred, weights


def run_python(code, env=None, timeout=600):
    """``code`` run by this Python in a fresh process that imports this fastl2."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_PARENT, full_env.get("PYTHONPATH")) if p)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True,
                          timeout=timeout)
