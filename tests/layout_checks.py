"""What test_layouts_nocopy.py and test_dtypes_carriers_huge.py share: the public functions by
name, calls that must not warn, snapshots and C-contiguous copies of inputs, and the traced
memory peak of a call."""
from __future__ import annotations

import tracemalloc
import warnings

import numpy as np

import fastl2
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS

MB = 1 << 20
DTYPES = [np.float32, np.float64]

# Every loss of the table and rmse; each loss's <name>_grad and <name>_and_grad.
LOSSES = {name: getattr(fastl2, name) for name in LOSS_FUNCTIONS + ("rmse",)}
GRADS = {
    name: getattr(fastl2, name)
    for pair in zip(GRAD_FUNCTIONS, AND_GRAD_FUNCTIONS)
    for name in pair
}
LOSS_REDUCTIONS = [
    (kind, reduction)
    for kind in LOSSES
    for reduction in ("mean", "weighted_mean", "sum", "none")
    if not (kind == "rmse" and reduction in ("sum", "none"))
]


def kind_of(name):
    """The loss of a gradient function: "mse" for "mse_grad" and "mse_and_grad"."""
    return name.removesuffix("_and_grad").removesuffix("_grad")


def quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return func(*args, **kwargs)


def snapshot(*arrays):
    return [None if a is None else (np.asarray(a).shape, np.ascontiguousarray(a).tobytes()) for a in arrays]


def contiguous(*arrays):
    return [None if a is None else np.ascontiguousarray(a) for a in arrays]


def traced_peak(call):
    """(the peak of traced memory during ``call()``, its result), after a first call outside."""
    call()  # first call outside: JIT compilation, lazy imports, the kernels' caches
    tracemalloc.start()
    try:
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result
