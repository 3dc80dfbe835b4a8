"""The numba backend's kernels: one function per specialisation, made on first use.

Each combination of (loss, y_true or not, weights or not, what is computed, compensated,
gradient dtype, 1-d or strided) is its own kernel, made by :func:`_make_kernel` with the
choices as closure constants, so no branch is left per element; Numba compiles it once per
dtype combination, with LLVM's SLP vectorizer on.  A kernel's block code is a function of its
own (block_template.py), called once per block (compiled in about half the time of a kernel
that inlines it), shared by the 1-d and strided kernels of its specialisation and cached on
disk by itself (:func:`_shared_block`: compiled once per operand dtypes, not once per kernel).
The 1-d kernel (csrc/fastl2.c) runs the blocks of a serial call.  The strided kernel
(csrc/strided.c) walks N-d arrays in any layout through the same block code, a range of work
items (blocks of outputs) per call: each output's run is cut into blocks that are read where
they lie when contiguous, else gathered into the call's buffers by address and byte strides
(never a copy of a whole array).  Threads (pool.py) only decide which thread runs which range:
every block writes its own partial, so the result does not depend on the thread count.
No kernel is compiled with Numba's ``parallel=True``: its parallel lowering took three times
as long to compile as the serial code, and its fork/join launch waits for every thread (see
pool.py).  The columns kernel is block_columns.py's.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit

from .._losses import LOSSES
from .. import _halves, _losses
from .._plan import BLOCK_SIZE
from .block_template import _make_block, _with_globals
from .cache import _jit, _slp_dispatcher
from .combine import _combine_lane_groups, _combine_outputs, _combine_partials, _rounded_dd
from .config import (_MODE_NAMES, _NOPS, _STREAMING_STORES, GRAD_EXACT, GRAD_HALF, GRAD_QUOTIENT, LANE_GROUP,
                     LANES, STACK_BLOCKS, STREAM_MIN_BYTES, _wants)
from .memory import (_block_gathered, _block_place, _copy_run, _element_at, _flag_set,
                     _stack_buffer)

#: A kernel's block function (block_template._make_block): each kernel function has its own
#: in its globals (_make_kernel); this name only stands for it here.
_block = None
#: The block functions made so far, by _shared_block's arguments.
_blocks: dict = {}


def _shared_block(loss, has_true, has_weights, mode, compensated, grad64):
    """The block function of these constants, one for the two kernels that run it (1-d and
    strided), cached on disk by itself: Numba compiles it once per operand dtypes, not once
    per kernel and process (it is most of a kernel's compile time).  The kernels call it with
    the same argument types (no literal constants), so that one code serves them both.  It is
    named after the constants (``block_`` + the 1-d kernel's name), which are all of its
    code: blocks that share a symbol in code loaded from the cache share the code."""
    key = (loss, has_true, has_weights, mode, compensated, grad64)
    block = _blocks.get(key)
    if block is None:
        block = _blocks[key] = _make_block(_block_name(*key), *key)
    return block


def _block_name(loss, has_true, has_weights, mode, compensated, grad64):
    """The name of _shared_block's block (without its ``block_`` prefix): its 1-d kernel's."""
    return _kernel_name(loss, has_true, has_weights, mode, compensated, grad64)


def _kernel_name(loss, has_true, has_weights, mode, compensated, grad64, strided=False):
    """The name (and qualified name) of _make_kernel's kernel of this specialisation: one
    name per code (grad64 counts only with a gradient)."""
    want_grad = _wants(mode)[1]
    return "_".join(
        (
            LOSSES[loss].name,
            "true" if has_true else "penalty",
            "weighted" if has_weights else "unweighted",
            _MODE_NAMES[mode],
            "compensated" if compensated else "plain",
            ("grad32", "grad64", "gradhalf", "gradexact")[grad64] if want_grad else "nograd",
        )
        + (("strided",) if strided else ())
    )


def _make_kernel(loss, has_true, has_weights, mode, compensated, grad64, strided=False):
    """The kernel of one specialisation; every argument is a compile-time constant in it.

    ``kernel(y_true, y_pred, weights, repeat, grad, scale, divisor, divisor_lo, elem, param) -> (loss,
    weights, loss lo, weights lo)`` (combine._combine_partials) where the arrays not used are None and ``param`` is the loss's parameter.
    Numba prunes the branches on these constants, so none is left in the loops.

    With ``strided`` (csrc/strided.c fl2_run_strided) the arrays only give the operands' dtypes
    (see run_strided) and ``repeat`` is the layout instead (an argument of its own, even one
    with a default, would slow every call of the 1-d kernels): ``(addresses, shape, strides,
    itemsizes, nkept, loss_sums, weight_sums, loss_lo, weight_lo, all_partials, first, end,
    finish, cancel)``, where
    the operands are (byte address of element (0, ...), byte strides and item size per
    operand, 0 for those not used); the call runs work items [first, end) (item w is block
    w % nblocks of output w // nblocks), writing the block partials of outputs of several
    blocks into all_partials (items x 4, else empty) and the sums of one-block outputs where
    they go; ``finish`` then combines every output's partials (pool.py runs the ranges, then
    an empty range with ``finish``); ``cancel``, a one-element uint8 array, stops the work
    (between groups of blocks) once it is nonzero (pool.py: Ctrl-C).  It returns (0.0, 0.0)
    and fills loss_sums[o] and loss_lo[o] (but with weights_only) and weight_sums[o] and
    weight_lo[o] (with weights) per output: the rounded sum and the exact rest of its
    double-double (combine._rounded_dd).  Both kinds run each block
    through ``block`` (block_template._make_block).
    """
    grad64 = int(grad64) if _wants(mode)[1] else GRAD_QUOTIENT  # (no gradient: one code)
    name = _kernel_name(loss, has_true, has_weights, mode, compensated, grad64, strided)
    block = _shared_block(loss, has_true, has_weights, mode, compensated, grad64)
    if strided:
        kernel = _make_strided_kernel(mode, has_true, has_weights, grad64)
    else:
        kernel = _make_run_kernel(mode, grad64)
    # One cache index file per specialisation (the constants are also in each entry's key).
    kernel.__name__ = kernel.__qualname__ = name
    # ``_block`` is a global of the kernel, not a closure variable: Numba's cache keys hold the
    # pickled closure variables, and a pickled dispatcher differs in every process.
    kernel = _with_globals(kernel, dict(globals(), _block=block))
    return _slp_dispatcher(_jit(kernel, nogil=True, error_model="numpy"))


#: fastl2._halves.quotient_tail, compiled (the same float64 operations: the same bits), with
#: its helper compiled too.
_split = njit(inline="always")(_halves._split)
_remainder = njit(inline="always")(_with_globals(_halves._remainder, dict(vars(_halves), _split=_split)))
_quotient_tail = njit(inline="always")(_with_globals(
    _halves.quotient_tail, dict(vars(_halves), _remainder=_remainder)))


_gradient_inverse = njit(inline="always")(_losses.gradient_inverse)


@njit(inline="always")
def _quotients(scale, divisor, grad64):
    """(quotient, divisor) as the block function takes them: a half's gradient (GRAD_HALF)
    gets the quotient's two parts in their place (fastl2._halves.quotient_tail), a float64
    one (GRAD_EXACT) the divisor's reciprocal as its quotient (fastl2._losses.exact_gradient's
    ``inverse``)."""
    if grad64 == GRAD_HALF:
        return _quotient_tail(scale, divisor)
    if grad64 == GRAD_EXACT:
        return _gradient_inverse(divisor), divisor
    return scale / divisor, divisor


def _make_run_kernel(mode, grad64):
    """_make_kernel's 1-d kernel (csrc/fastl2.c) of a serial call: the blocks of the n
    elements, their partials combined by the tree.  (Calls on several threads, and long calls
    of the main thread, run the strided kernel instead: driver._launch.)"""
    want_sums, want_grad, _, _ = _wants(mode)
    grad_form = grad64
    block_size = BLOCK_SIZE
    stack_blocks = STACK_BLOCKS
    stack_slots = 4 * STACK_BLOCKS
    streaming = _STREAMING_STORES
    stream_min_bytes = STREAM_MIN_BYTES

    def kernel(y_true, y_pred, weights, repeat, grad, scale, divisor, divisor_lo, elem, param):
        quotient, divisor = _quotients(scale, divisor, grad_form)
        n = y_pred.shape[0]
        nblocks = (n + block_size - 1) // block_size
        # Large gradients are written with streaming stores, 16-byte aligned ones as in C.
        stream = False
        if want_grad and streaming:
            stream = n * grad.itemsize >= stream_min_bytes and grad.ctypes.data % 16 == 0
        # Block partials: loss hi, lo, weights hi, lo; on the stack when few (as csrc/driver.h).
        if nblocks > stack_blocks:
            partials = np.empty((nblocks if want_sums else 0, 4))
        else:
            partials = numba.carray(_stack_buffer(stack_slots, np.float64), (nblocks, 4))

        no_lanes = numba.carray(_stack_buffer(4, np.float64), (4, 1, 1))  # (not written)
        for b in range(nblocks):
            start = b * block_size
            end = min(start + block_size, n)
            # (the scalars typed as the strided kernel's call types them: one block code for
            # both kernels; see _shared_block)
            _block(y_true, y_pred, weights, np.int64(repeat), grad, elem, np.int64(start),
                   np.int64(end), np.bool_(stream), partials, np.int64(b), np.bool_(False),
                   no_lanes, scale, divisor, divisor_lo, quotient, param)

        if want_sums:
            return _combine_partials(partials)
        return 0.0, 0.0, 0.0, 0.0

    return kernel


def _make_strided_kernel(mode, has_true, has_weights, grad64):
    """_make_kernel's strided kernel (csrc/strided.c fl2_run_strided), ``repeat`` the layout."""
    want_sums, want_grad, want_elem, weights_only = _wants(mode)
    grad_form = grad64
    read_true = has_true and not weights_only
    block_size = BLOCK_SIZE
    lanes = LANES
    nops = _NOPS
    lane_group = LANE_GROUP
    streaming = _STREAMING_STORES
    stream_min_bytes = STREAM_MIN_BYTES

    def kernel(y_true, y_pred, weights, repeat, grad, scale, divisor, divisor_lo, elem, param):
        quotient, divisor = _quotients(scale, divisor, grad_form)
        # csrc/strided.c fl2_run_strided: work item w is block w % nblocks of output
        # w // nblocks; each block is gathered into the call's buffers (or read where it
        # lies when it is one contiguous, aligned piece of every operand), run through
        # ``block`` and its gradient and element losses scattered back.  The lanes of
        # LANE_GROUP items at a time are combined together (_combine_lane_groups).
        (addresses, shape, strides, itemsizes, nkept, loss_sums, weight_sums, loss_lo,
         weight_lo, all_partials, first_item, end_item, finish, cancel) = repeat
        ndim = shape.shape[0]
        last = ndim - 1
        outputs = 1
        for dim in range(nkept):
            outputs *= shape[dim]
        reduced = 1
        for dim in range(nkept, ndim):
            reduced *= shape[dim]
        nblocks = (reduced + block_size - 1) // block_size
        many = nblocks > 1
        # Large gradients: blocks written where they lie, 16-byte aligned, with streaming
        # stores (as the 1-d kernel; the bits do not change).
        stream_all = False
        if want_grad and streaming:
            stream_all = outputs * reduced * itemsizes[3] >= stream_min_bytes
        # Operands of another item size than their dtype's (float32 ones where the others
        # are float64: strided.py) are converted into the buffers, so every block is.
        # (each test under its constant: operands not given are None, and untyped)
        converting = False
        if read_true:
            converting = converting or itemsizes[0] != y_true.itemsize
        if not weights_only:
            converting = converting or itemsizes[1] != y_pred.itemsize
        if has_weights:
            converting = converting or itemsizes[2] != weights.itemsize
        if want_grad:
            converting = converting or itemsizes[3] != grad.itemsize
        if want_elem:
            converting = converting or itemsizes[4] != elem.itemsize
        # The call's buffers, of each operand's dtype.
        if read_true:
            true_buffer = np.empty(block_size, y_true.dtype)
        if not weights_only:
            pred_buffer = np.empty(block_size, y_pred.dtype)
        if has_weights:
            weights_buffer = np.empty(block_size, weights.dtype)
        if want_grad:
            grad_buffer = np.empty(block_size, grad.dtype)
        if want_elem:
            elem_buffer = np.empty(block_size, elem.dtype)
        group_lanes = np.zeros((4, lanes, lane_group))
        group_counts = np.empty(lane_group)
        group_sums = np.empty((4, lane_group))
        # each operand's element (o, 0, ..., 0) and the block's first element
        bases = numba.carray(_stack_buffer(nops, np.int64), nops)
        heres = numba.carray(_stack_buffer(nops, np.int64), nops)
        group_first = first_item
        while group_first < end_item:
            if _flag_set(cancel):  # (pool.py: Ctrl-C; nothing of this call is used)
                break
            group = min(lane_group, end_item - group_first)
            for j in range(group):
                w = group_first + j
                if many:
                    o = w // nblocks
                    b = w - o * nblocks
                else:
                    o = w
                    b = 0
                start = b * block_size
                count = min(block_size, reduced - start)
                group_counts[j] = count
                # The index of o in the kept dims (the first of them needs no division:
                # o < outputs).
                for k in range(nops):
                    bases[k] = addresses[k]
                rest = o
                for dim in range(nkept - 1, 0, -1):
                    index = rest % shape[dim]
                    rest //= shape[dim]
                    for k in range(nops):
                        bases[k] += index * strides[k, dim]
                if nkept:
                    for k in range(nops):
                        bases[k] += rest * strides[k, 0]
                # One contiguous piece of every operand: the block lies in one row of the
                # last dim, which every operand steps through by its item size.
                direct = ((start % shape[last] if start else 0) + count <= shape[last]
                          and not converting)
                for k in range(nops):
                    size = itemsizes[k]
                    if size and direct:
                        at = bases[k]
                        if start:
                            at = _element_at(at, shape, strides[k], nkept, ndim, start)
                        heres[k] = at
                        if (strides[k, last] != size and count > 1) or at & (size - 1):
                            direct = False
                # Each operand's run of the block: where it lies when direct, else the
                # call's buffer (the inputs gathered into it first).
                t_arr = (_block_gathered(direct, heres[0], true_buffer, y_true, bases[0],
                                         shape, strides[0], nkept, start, count, itemsizes[0])
                         if read_true else y_true)
                p_arr = (_block_gathered(direct, heres[1], pred_buffer, y_pred, bases[1],
                                         shape, strides[1], nkept, start, count, itemsizes[1])
                         if not weights_only else y_pred)
                w_arr = (_block_gathered(direct, heres[2], weights_buffer, weights, bases[2],
                                         shape, strides[2], nkept, start, count, itemsizes[2])
                         if has_weights else weights)
                g_arr = (_block_place(direct, heres[3], grad_buffer, grad, count)
                         if want_grad else grad)
                e_arr = (_block_place(direct, heres[4], elem_buffer, elem, count)
                         if want_elem else elem)
                stream = stream_all and direct and heres[3] % 16 == 0
                # (typed as the 1-d kernel's call: one block code for both)
                _block(t_arr, p_arr, w_arr, np.int64(1), g_arr, e_arr, np.int64(0),
                       np.int64(count), np.bool_(stream), all_partials, np.int64(j),
                       np.bool_(True), group_lanes, scale, divisor, divisor_lo, quotient, param)
                if not direct:
                    if want_grad:
                        _copy_run(grad_buffer, bases[3], shape, strides[3], nkept, start,
                                  count, True, itemsizes[3])
                    if want_elem:
                        _copy_run(elem_buffer, bases[4], shape, strides[4], nkept, start,
                                  count, True, itemsizes[4])
            if want_sums:
                _combine_lane_groups(group_lanes, 0, group, group_sums)
                if has_weights:
                    _combine_lane_groups(group_lanes, 2, group, group_sums)
                else:
                    for j in range(group):
                        group_sums[2, j] = group_counts[j]
                        group_sums[3, j] = 0.0
                for j in range(group):
                    w = group_first + j
                    if many:
                        for h in range(4):
                            all_partials[w, h] = group_sums[h, j]
                    else:
                        # (csrc/strided.c finish_output of one partial: hi + lo, and
                        # the rest)
                        if not weights_only:
                            loss_sums[w], loss_lo[w] = _rounded_dd(group_sums[0, j],
                                                                   group_sums[1, j])
                        if has_weights:
                            weight_sums[w], weight_lo[w] = _rounded_dd(group_sums[2, j],
                                                                       group_sums[3, j])
            group_first += group
        if want_sums and many and finish and not _flag_set(cancel):
            _combine_outputs(all_partials, nblocks, outputs, loss_sums, weight_sums, loss_lo,
                             weight_lo, not weights_only, has_weights)
        return 0.0, 0.0

    return kernel
