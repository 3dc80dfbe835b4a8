"""Deterministic test data shared by the test modules (no fastl2 imports other than BLOCK_SIZE,
but for the backend list in ``with_backends``)."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from fastl2._losses import LOSSES
from fastl2._plan import BLOCK_SIZE

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)

#: The public loss functions, from fastl2's declaration of the losses (fastl2._losses): every
#: test that runs over losses takes them from here, so a new loss is tested everywhere.  Each
#: has ``<name>_grad`` and ``<name>_and_grad`` beside it, and tests call it with its
#: parameter's default (tests/reference.py's reference of the same name uses the same).
LOSS_FUNCTIONS = tuple(loss.function for loss in LOSSES)
GRAD_FUNCTIONS = tuple(f"{name}_grad" for name in LOSS_FUNCTIONS)
AND_GRAD_FUNCTIONS = tuple(f"{name}_and_grad" for name in LOSS_FUNCTIONS)

# Element counts around the deterministic reduction block, plus the degenerate ones.
SIZES = (0, 1, 2, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1)

# name -> (y_true dtype, y_pred dtype, weights dtype)
FLOAT_DTYPE_CASES = {
    "float32": (F32, F32, F32),
    "float64": (F64, F64, F64),
    "f32_true_f64_pred": (F32, F64, F32),
    "f64_true_f32_pred": (F64, F32, F64),
}

# The dtype rule's less common corners: integers and bools count as float64, float16 as float32.
OTHER_DTYPE_CASES = {
    "int64": (np.dtype(np.int64), np.dtype(np.int64), None),
    "float16": (F16, F16, F16),
    "f16_true_f32_pred": (F16, F32, None),
    "bool_true_f32_pred": (np.dtype(bool), F32, None),
    "f32_true_int32_pred": (F32, np.dtype(np.int32), None),
    "int32_true_f16_pred": (np.dtype(np.int32), F16, None),
    "float32_with_f64_weights": (F32, F32, F64),
    "float32_with_int_weights": (F32, F32, np.dtype(np.int64)),
}

DTYPE_CASES = {**FLOAT_DTYPE_CASES, **OTHER_DTYPE_CASES}

# "none": no weights, 1-D; "full": weights of y's shape, 1-D; "per_sample": 2-D y of shape
# (size, 3) with 1-D weights of length size, applied to every output of a row.
WEIGHTS_KINDS = ("none", "full", "per_sample")


def values(rng, dtype, shape, scale=3.0):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        return rng.integers(-20, 21, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _stable_seed(parts) -> int:
    text = "|".join(str(p) for p in parts).encode()
    seed = 0
    for byte in text:
        seed = (seed * 131 + byte) % (2**32)
    return seed


def shape_for(weights_kind, size):
    return (size, 3) if weights_kind == "per_sample" else (size,)


@functools.lru_cache(maxsize=None)
def _make(dtype_case, weights_kind, size):
    t_dt, p_dt, w_dt = DTYPE_CASES[dtype_case]
    rng = np.random.default_rng(_stable_seed((dtype_case, weights_kind, size)))
    shape = shape_for(weights_kind, size)
    y_true = values(rng, t_dt, shape)
    y_pred = values(rng, p_dt, shape)
    if y_true.size and t_dt.kind == "f" and p_dt.kind == "f":
        # Some exact ties (d == 0: MAE's gradient is 0 there), representable in both dtypes.
        tie = rng.random(shape) < 0.05
        tied = (rng.standard_normal(int(tie.sum())) * 3).astype(np.float16)
        y_true[tie] = tied
        y_pred[tie] = tied
    if weights_kind == "none":
        weights = None
    else:
        w_dt = w_dt if w_dt is not None else F64
        w_shape = shape if weights_kind == "full" else (size,)
        if w_dt.kind in "iu":
            weights = rng.integers(0, 5, size=w_shape).astype(w_dt)
        else:
            weights = rng.uniform(0.1, 2.0, size=w_shape).astype(w_dt)
        if weights.size:
            weights.flat[::17] = 0  # zero weights are legal as long as they don't all sum to 0
            weights.flat[-1] = 1
    for a in (y_true, y_pred, weights):
        if a is not None:
            a.flags.writeable = False
    return y_true, y_pred, weights


def make_inputs(dtype_case, weights_kind, size):
    """(y_true, y_pred, weights) for a case: fresh writable copies of cached, deterministic data."""
    return tuple(None if a is None else a.copy() for a in _make(dtype_case, weights_kind, size))


def cached_inputs(dtype_case, weights_kind, size):
    """The cached read-only arrays themselves (for computing references without copying)."""
    return _make(dtype_case, weights_kind, size)


def random_pair(n, dtype=F64, seed=0, scale=3.0, shape=None):
    rng = np.random.default_rng(seed)
    shape = (n,) if shape is None else shape
    y_true = values(rng, dtype, shape, scale)
    y_pred = values(rng, dtype, shape, scale)
    return y_true, y_pred


def random_weights(shape, dtype=F64, seed=1):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.1, 2.0, size=shape).astype(dtype)


# --------------------------------------------------------------------------- numba dtype mixes
# The numba backend compiles one specialisation per kernel variant and per combination of the
# dtypes of the arrays it is handed (not per read-only flag: see fastl2._numba.driver._entry_point):
# ~1.5-2 s each on a cold cache, which is most of a cold test run.  Its kernels read y_true /
# y_pred / weights as float32 or float64 (the dtype rule below); a mix of the two compiles the
# float64 (compensated) kernels once more for each further mix, with nothing new but a float32
# load, which the float32 kernels already test.  So on numba the tests run, besides float32-only
# and float64-only data, one mix per kernel family:
#   * 1-d (C-contiguous) kernels: float64 y_true, float32 y_pred, float64 weights (if any) -- the
#     only mix with a kernel variant of its own: compensated sums writing a float32 gradient;
#   * strided kernels (other layouts, axis reductions): float32 y_true, float64 y_pred, float32
#     weights, the "mixed_float32_float64" layout -- and the 1-d mix above, which the float16 /
#     integer / bool cases bring (float64 y_true, float32 y_pred: the float32 gradient again).
# Every other mix still runs on cython and numpy (the dtype rule itself is backend-independent:
# fastl2._plan converts before any backend runs).
_F32_MIX = (F32, F64, F32)
_F64_MIX = (F64, F32, F64)


def kernel_dtype(dtype):
    """The dtype the kernels read for an input of ``dtype``: float16 -> float32, integers and
    bools -> float64 (None stays None)."""
    if dtype is None:
        return None
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return F32 if dtype.itemsize <= 4 else F64
    return F64


def numba_runs_mix(y_true, y_pred, weights=None, strided=False):
    """Whether a case of these dtypes (y_true's, y_pred's, weights' or None) runs on numba:
    one dtype throughout, or the mix of its kernel family (see above)."""
    t, p, w = kernel_dtype(y_true), kernel_dtype(y_pred), kernel_dtype(weights)
    if w is not None and w != t:
        return False  # weights always share y_true's kernel dtype in the mixes above
    if t == p:
        return True
    mixes = (_F64_MIX, _F32_MIX) if strided else (_F64_MIX,)
    return (t, p) in [m[:2] for m in mixes]


def with_backends(argnames, cases, on_numba):
    """``pytest.mark.parametrize`` of ``backend`` (conftest's fixture, indirectly) with
    ``argnames``: every case on every backend but numba, which runs the cases for which
    ``on_numba(*values)`` is true -- for cases whose numba specialisations are tested elsewhere.

    A case is a value, a tuple of values (several ``argnames``) or a ``pytest.param`` with an
    id; plain values must be strings or numbers (they make the id).
    """
    import fastl2

    names = [n.strip() for n in argnames.split(",")] if isinstance(argnames, str) else list(argnames)
    params = []
    for backend in fastl2.available_backends():
        for case in cases:
            if isinstance(case, type(pytest.param(None))):
                values, marks, case_id = tuple(case.values), case.marks, case.id
            else:
                values = tuple(case) if len(names) > 1 else (case,)
                marks, case_id = (), "-".join(str(v) for v in values)
            if backend == "numba" and not on_numba(*values):
                continue
            params.append(pytest.param(backend, *values, marks=marks, id=f"{backend}-{case_id}"))
    return pytest.mark.parametrize(["backend"] + names, params, indirect=["backend"])
