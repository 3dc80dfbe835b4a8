"""The numba backend's N-d driver (csrc/strided.c fl2_run_strided): arrays in any layout and
reductions along axes, through the strided kernel (kernels.py) or, for outputs that are the
columns of rows, the columns kernel (block_columns.py), which reads the rows once (as C's).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .._halves import round_half
from .._plan import BLOCK_SIZE, strided_without_half
from .config import (_FLOAT32, _FLOAT64, _MAX_COLUMNS, _MAX_DIMS, _NOPS, _SUMS, _WEIGHTS,
                     _WEIGHTS_LOSS, GRAD_EXACT, GRAD_HALF, GRAD_QUOTIENT, _mode, _wants)
from .driver import _converted_gradient, _launch_columns, _launch_strided, _witnesses




def _operand_dtype(array, name):
    dtype = array.dtype
    if dtype != _FLOAT32 and dtype != _FLOAT64:
        raise TypeError(f"fastl2: {name} must be native float32 or float64; got {dtype}")
    return dtype


def run_strided(s, want_sums: bool, grad_scale: float = 0.0, grad_divisor: float = 1.0,
                weights_only: bool = False, grad_divisor_lo: float = 0.0):
    """One pass over a ``fastl2._plan.Strided``; writes its grad and elementwise operands.

    As fastl2._core.run_strided (csrc/strided.c fl2_run_strided), bit for bit: returns float64
    arrays (loss sums, weight sums, loss lo, weight lo) of one element per output when
    ``want_sums``; (None, weight sums, None, weight lo) with ``weights_only`` (nothing else is
    computed); otherwise None.  Each sum is the rounded value of its double-double (as C's)
    and each lo the exact rest; without weights the weight sums are the element counts and
    their lo zeros.

    The arrays are read and written where they lie, never copied whole: the kernels get each
    operand's address of element (0, ..., 0) and its byte strides (any sign, zero, even not a
    multiple of the item size), as the C driver does, and a zero-length array of its dtype, so
    that no layout, alignment or read-only flag needs code of its own.  Each work item (one
    block of one output) is read where it lies when it is one contiguous aligned piece of
    every operand, else gathered into buffers of BLOCK_SIZE elements per task (and its
    gradient and element losses scattered back); outputs that are the columns of rows go to
    the columns kernel (sums only, as in C).

    Numba has no float16 or bfloat16 on the CPU: such inputs are converted to float32 first
    (fastl2._plan.strided_without_half), and such a gradient is computed in float64
    (GRAD_HALF) and rounded once (fastl2._halves: the compiled backend's bits).
    """
    s = strided_without_half(s)
    if s.grad is not None and s.grad.dtype.itemsize == 2:
        wide = np.empty(s.grad.shape, _FLOAT64)
        sums = _run_strided(replace(s, grad=wide), want_sums, grad_scale, grad_divisor,
                            weights_only, GRAD_HALF, 0.0)
        s.grad[...] = round_half(wide, s.grad.dtype)
        return sums
    return _run_strided(s, want_sums, grad_scale, grad_divisor, weights_only, None, grad_divisor_lo)


def _run_strided(s, want_sums, grad_scale, grad_divisor, weights_only, form, grad_divisor_lo):
    """run_strided, the half dtypes settled; ``form`` GRAD_HALF: ``s.grad`` is the float64
    buffer of a half gradient (else the gradient's form follows its dtype)."""
    shape = tuple(int(size) for size in s.shape)
    ndim = len(shape)
    if not 1 <= ndim <= _MAX_DIMS:
        raise ValueError(f"fastl2: arrays of up to {_MAX_DIMS} dimensions are supported")
    nkept = int(s.nkept)
    if not 0 <= nkept < ndim:
        raise ValueError(f"fastl2: nkept must be in [0, {ndim}); got {nkept}")
    outputs = math.prod(shape[:nkept])
    reduced = math.prod(shape[nkept:])
    y_true, y_pred, weights, grad, elem = s.y_true, s.y_pred, s.weights, s.grad, s.elementwise
    if y_true is None:
        weights = None  # as csrc/: the L2 penalty's kernels read no weights
    mode = _mode(want_sums, grad, elem)
    loss_sums = np.zeros(outputs) if want_sums else None
    weight_sums = None
    if (want_sums or weights_only) and weights is not None:
        weight_sums = np.zeros(outputs)
    elif want_sums or weights_only:  # every output's weight sum is its element count (as C)
        weight_sums = np.broadcast_to(np.float64(reduced), (outputs,))
    loss_lo = np.zeros(outputs) if want_sums else None
    weight_lo = None
    if (want_sums or weights_only) and weights is not None:
        weight_lo = np.zeros(outputs)
    elif want_sums or weights_only:
        weight_lo = np.broadcast_to(np.float64(0.0), (outputs,))

    def result():
        if want_sums:
            return loss_sums, weight_sums, loss_lo, weight_lo
        if weights_only:
            return None, weight_sums, None, weight_lo
        return None

    pred_dtype = _operand_dtype(y_pred, "y_pred")
    single = pred_dtype == _FLOAT32
    if y_true is not None:
        single = _operand_dtype(y_true, "y_true") == _FLOAT32 and single
    if weights is not None:
        single = _operand_dtype(weights, "weights") == _FLOAT32 and single
    if mode == _WEIGHTS:
        if not weights_only:
            return result()  # nothing is computed, nothing returned
        if weights is None:
            return result()
        y_true = y_pred = None
    if grad is not None and grad.dtype != pred_dtype and form != GRAD_HALF:
        raise ValueError(
            f"fastl2: the gradient must have y_pred's dtype {pred_dtype}; got {grad.dtype}"
        )
    if elem is not None and elem.dtype != (_FLOAT32 if single else _FLOAT64):
        raise ValueError(
            f"fastl2: elementwise losses must be {'float32' if single else 'float64'} here; "
            f"got {elem.dtype}"
        )
    if outputs == 0 or reduced == 0:
        return result()  # sums of nothing: zeros

    operands = (y_true, y_pred, weights, grad, elem)
    addresses = np.zeros(_NOPS, np.int64)
    strides = np.zeros((_NOPS, ndim), np.int64)
    itemsizes = np.zeros(_NOPS, np.int64)
    for k, array in enumerate(operands):
        if array is not None:
            if array.shape != shape:
                raise ValueError(
                    f"fastl2: every operand must have shape {shape}; got {array.shape}"
                )
            addresses[k] = array.__array_interface__["data"][0]
            strides[k] = array.strides
            itemsizes[k] = array.itemsize
    witnesses = _witnesses(operands, not single, form)
    # (float32 operands of a float64 result are converted per block: not the columns kernel's)
    converting = not single and any(a is not None and a.dtype == _FLOAT32 for a in operands)
    weighted = weight_sums is not None and weights is not None
    sums = (loss_sums if loss_sums is not None else np.empty(0),
            weight_sums if weighted else np.empty(0),
            loss_lo if loss_lo is not None else np.empty(0),
            weight_lo if weighted else np.empty(0))
    n = outputs * reduced
    loss, has_true, has_weights = s.loss.code, y_true is not None, weights is not None
    if mode == _WEIGHTS:
        loss = _WEIGHTS_LOSS  # (one kernel for weight sums, whatever the loss)
    nblocks = (reduced + BLOCK_SIZE - 1) // BLOCK_SIZE
    keep_partials = _wants(mode)[0] and nblocks > 1  # (outputs of several blocks)
    # (the arrays stay referenced here while the kernels read and write them by address)
    if mode in (_SUMS, _WEIGHTS) and not converting and _columns_apply(ndim, nkept, outputs, addresses, strides,
                                                     itemsizes):
        if nblocks == 1:
            n = 0  # one block of rows: nothing to share between threads
        row_steps = strides[:3, 1] // np.maximum(itemsizes[:3], 1)
        partials = np.empty((outputs * nblocks if keep_partials else 0, 4))
        head = (addresses, row_steps, 1 if strides[2, 0] else 0, reduced, outputs) + sums + (
            partials, float(s.param))
        _launch_columns(loss, has_true, has_weights, mode, not single, n, witnesses, head,
                        nblocks, min(reduced, BLOCK_SIZE) * outputs)
        return result()
    items = outputs * nblocks
    if items == 1:
        n = 0  # one work item: nothing to share between threads
    partials = np.empty((items if keep_partials else 0, 4))
    head = (addresses, np.array(shape, np.int64), strides, itemsizes, nkept) + sums + (partials,)
    if form is None:
        form = GRAD_EXACT if grad is not None and pred_dtype == _FLOAT64 else GRAD_QUOTIENT
    scale, divisor, grad64 = _converted_gradient(grad, not single, float(grad_scale),
                                                 float(grad_divisor), form)
    _launch_strided(loss, has_true, has_weights, mode, not single, grad64, n, witnesses, head,
                    scale, divisor, float(grad_divisor_lo), float(s.param), items, min(reduced, BLOCK_SIZE))
    return result()


def _columns_apply(ndim, nkept, outputs, addresses, strides, itemsizes):
    """Whether run_strided's outputs are the contiguous columns of rows, for the columns
    kernel (csrc/strided.c columns_apply, and aligned: its rows are read as arrays)."""
    if ndim != 2 or nkept != 1 or not 2 <= outputs <= _MAX_COLUMNS:
        return False
    for k in range(3):  # y_true, y_pred, weights
        size = int(itemsizes[k])
        if not size:
            continue
        column_step, row_step = int(strides[k, 0]), int(strides[k, 1])
        if not (column_step == size or (k == 2 and column_step == 0)):
            return False
        if row_step % size or int(addresses[k]) % size:
            return False
    return True
