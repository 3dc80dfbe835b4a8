"""The block of the numba kernels (csrc/block_template.h, csrc/block_run.h): elements
start..end-1 of one run, accumulated into LANES float64 lanes (compensated when any input is
float64), the run's partial (or its uncombined lanes), gradient and element losses; and how a
kernel function gets its loss's element functions.

Every kernel mirrors csrc/ operation for operation: blocks of BLOCK_SIZE elements, element i
of a block accumulated into lane i % LANES, lanes and block partials combined by the same
bottom-up pairwise double-double tree (combine.py).  No fastmath: it would reorder the sums.
"""

from __future__ import annotations

from types import FunctionType

import numba
import numpy as np
from numba import njit

from .. import _losses
from .._losses import LOSSES
from .cache import _jit_block
from .combine import _combine_lanes, _two_sum, _two_sum_e, _two_sum_parts
from .config import GRAD_DIVIDE, GRAD_EXACT, GRAD_HALF, LANES, _wants
from .memory import _fma, _stack_buffer, _store_fence, _stream_store_16

#: The loss's scalar element functions, ``_loss_value(d, param)``, ``_loss_derivative(d,
#: param)``, ``_loss_value_err(d, de, param)``, ``_loss_value_parts(d, de, param)`` and
#: ``_loss_derivative_err(d, de, param)``: each kernel function has its own in its globals
#: (_element_globals); these names only stand for them here.
_loss_value = _loss_derivative = _loss_value_err = _loss_value_parts = _loss_derivative_err = None


def _element_globals(loss, namespace):
    """The globals of a kernel function of loss ``loss`` (a code): ``namespace`` (the globals
    of the module that defines the function, which imports every name the function uses), and
    ``_loss_value`` / ``_loss_derivative``, the loss's scalar element functions
    (fastl2._losses), compiled to be inlined.  (Globals, not closure variables: Numba's cache
    keys hold the pickled closure variables, and a pickled dispatcher differs in every
    process.)"""
    functions = _element_functions.get(loss)
    if functions is None:
        declared = LOSSES[loss]
        functions = _element_functions[loss] = (
            njit(inline="always")(declared.scalar_value),
            njit(inline="always")(declared.scalar_derivative),
            _exact_form(declared.scalar_value_err),
            _exact_form(declared.scalar_value_parts),
            _exact_form(declared.scalar_derivative_err),
        )
    return dict(namespace, _loss_value=functions[0], _loss_derivative=functions[1],
                _loss_value_err=functions[2], _loss_value_parts=functions[3],
                _loss_derivative_err=functions[4])


def _exact_form(function):
    """One of fastl2._losses' scalar exact-term functions compiled to be inlined, with LLVM's
    fma for its ``_fma`` (csrc/internal.h fl2_fma's bits)."""
    space = dict(vars(_losses), _fma=_fma)
    space["_signed"] = njit(inline="always")(_with_globals(_losses._signed, space))
    return njit(inline="always")(_with_globals(function, space))


_element_functions: dict = {}


def _with_globals(function, namespace):
    """``function`` with the globals ``namespace`` (and its name and closure)."""
    made = FunctionType(function.__code__, namespace, function.__name__, function.__defaults__,
                        function.__closure__)
    made.__qualname__ = function.__qualname__
    return made


_diff_err = njit(inline="always")(_losses.diff_err)
_weigh_err = _exact_form(_losses.weigh_err)
_exact_gradient = _exact_form(_losses.exact_gradient)


def _make_block(name, loss, has_true, has_weights, mode, compensated, grad64):
    """The block function of the kernels of ``name`` (kernels._shared_block), compiled by
    itself (cache._jit_block) and named ``block_`` + ``name``; every argument is a compile-time
    constant in it.

    ``block(t_arr, p_arr, w_arr, w_repeat, g_arr, e_arr, start, end, stream, partials, b,
    keep_lanes, lanes_out, scale, divisor, divisor_lo, quotient, param)``: elements start..end-1 of the
    arrays (weight ``row`` for elements row * w_repeat.. when ``w_repeat`` is not 1), with
    streaming stores of the gradient when ``stream``.
    """
    want_sums, want_grad, want_elem, weights_only = _wants(mode)
    # A float64 kernel's sums take each term's exact error too (csrc/block_run.h EXACT)
    exact = compensated and want_sums and not weights_only
    # ... and a float64 gradient the difference's error (csrc/block_run.h DIFF_EXACT)
    diff_exact = exact or (want_grad and grad64 == GRAD_EXACT and not weights_only)
    lanes = LANES
    # Chunk offsets are unsigned, so indexing needs no negative-index wraparound and the 16
    # loads of a chunk are seen as consecutive.
    u_lanes = np.uint64(LANES)

    def block(t_arr, p_arr, w_arr, w_repeat, g_arr, e_arr, start, end, stream, partials, b,
              keep_lanes, lanes_out, scale, divisor, divisor_lo, quotient, param):
        # csrc/block_run.h: elements start..end-1 of the arrays, one block; its
        # partial (loss hi, lo, weights hi, lo) goes to partials[b], or with keep_lanes (a
        # run-time flag: one code for the 1-d and strided kernels) its uncombined lanes to
        # lanes_out[:, :, b].
        # loss sums, loss errors, weight sums, weight errors: LANES each
        acc0 = numba.carray(_stack_buffer(16, np.float64), lanes)
        acc1 = numba.carray(_stack_buffer(16, np.float64), lanes)
        acc2 = numba.carray(_stack_buffer(16, np.float64), lanes)
        acc3 = numba.carray(_stack_buffer(16, np.float64), lanes)
        d = numba.carray(_stack_buffer(16, np.float64), lanes)
        de = numba.carray(_stack_buffer(16, np.float64), lanes)
        wk = numba.carray(_stack_buffer(16, np.float64), lanes)
        g_buffer = _stack_buffer(16, np.float64)  # the chunk's gradient, before its stores
        g = numba.carray(g_buffer, lanes)
        for k in range(lanes):
            acc0[k] = 0.0
            acc1[k] = 0.0
            acc2[k] = 0.0
            acc3[k] = 0.0
            d[k] = 0.0
            de[k] = 0.0
            wk[k] = 1.0

        row = 0
        row_end = 0
        if has_weights:
            row = start // w_repeat
            row_end = (row + 1) * w_repeat

        def add(s, e, k, x):
            # One compensated (TwoSum) or plain addition of x to lane k of sums s, errors e.
            if compensated:
                _two_sum(s, e, k, x)
            else:
                s[k] += x

        def element(i, k, dk, dek, wi):
            # csrc/block_run.h ELEMENT: element i, difference dk (dek: its rounding error,
            # where exact), weight wi, lane k; returns the gradient element (before its
            # rounding to grad's dtype).
            gk = 0.0
            if not weights_only:
                if exact and not has_weights:
                    tx, ty, ta, tb = _loss_value_parts(dk, dek, param)
                    wl = tx * ty
                    _two_sum_parts(acc0, acc1, k, tx, ty, ta, tb)
                elif exact:
                    l, le = _loss_value_err(dk, dek, param)
                    wl, le = _weigh_err(wi, l, le)
                    _two_sum_e(acc0, acc1, k, wl, le)
                else:
                    l = _loss_value(dk, param)
                    if has_weights:
                        wl = wi * l
                    else:
                        wl = l
                    if want_sums:
                        add(acc0, acc1, k, wl)
                if want_elem:
                    e_arr[i] = wl
                if want_grad:
                    gk = _loss_derivative(dk, param)
                    if grad64 == GRAD_EXACT:
                        ge = _loss_derivative_err(dk, dek, param)
                        if has_weights:
                            gk, ge = _weigh_err(wi, gk, ge)
                        gk = _exact_gradient(gk, ge, scale, divisor, divisor_lo, quotient)  # (the inverse: kernels._quotients)
                    else:
                        if has_weights:
                            gk = wi * gk
                        if grad64 == GRAD_DIVIDE:
                            gk = (scale * gk) / divisor
                        elif grad64 == GRAD_HALF and divisor != 0.0:
                            # (a half's: quotient and divisor are the tail's q and lo, kernels.py)
                            gk = _fma(gk, quotient, gk * divisor)
                        else:
                            gk = quotient * gk
            if has_weights and want_sums:
                add(acc2, acc3, k, wi)
            return gk

        def run_chunks(t_arr, p_arr, w_arr, g_arr, nchunks, row, row_end, streamed):
            # The block's whole chunks of LANES elements; streamed is a constant at each call.
            # (The arrays are parameters: an inlined closure's reads of its enclosing
            # function's arrays would each take and drop a reference, in the loop.)
            base = np.uint64(start)
            for c in range(nchunks):
                i = base + np.uint64(c) * u_lanes
                # All reads of a chunk come before its writes: grad may be y_pred itself.
                if not weights_only:
                    for k in range(lanes):
                        if has_true and diff_exact:
                            d[k], de[k] = _diff_err(np.float64(p_arr[i + np.uint64(k)]),
                                                    np.float64(t_arr[i + np.uint64(k)]))
                        elif has_true:
                            d[k] = np.float64(p_arr[i + np.uint64(k)]) - np.float64(
                                t_arr[i + np.uint64(k)]
                            )
                        else:
                            d[k] = np.float64(p_arr[i + np.uint64(k)])
                if has_weights:
                    first = start + c * lanes
                    if w_repeat == 1:
                        for k in range(lanes):
                            wk[k] = np.float64(w_arr[i + np.uint64(k)])
                    elif first + lanes <= row_end:
                        wr = np.float64(w_arr[row])
                        for k in range(lanes):
                            wk[k] = wr
                    else:
                        for k in range(lanes):
                            while first + k >= row_end:
                                row += 1
                                row_end += w_repeat
                            wk[k] = np.float64(w_arr[row])
                for k in range(lanes):
                    gk = element(i + np.uint64(k), k, d[k], de[k], wk[k])
                    if want_grad:
                        if streamed:
                            g[k] = gk
                        else:
                            g_arr[i + np.uint64(k)] = gk
                if streamed:
                    _stream_store_16(g_arr, i, g_buffer)
            return row, row_end

        nchunks = (end - start) // lanes
        if want_grad and stream:  # (want_grad first: the branch is dropped without it)
            row, row_end = run_chunks(t_arr, p_arr, w_arr, g_arr, nchunks, row, row_end, True)
        else:
            row, row_end = run_chunks(t_arr, p_arr, w_arr, g_arr, nchunks, row, row_end,
                                       False)

        k = 0
        for j in range(start + nchunks * lanes, end):
            dj = 0.0
            dej = 0.0
            if not weights_only:
                if has_true and diff_exact:
                    dj, dej = _diff_err(np.float64(p_arr[j]), np.float64(t_arr[j]))
                elif has_true:
                    dj = np.float64(p_arr[j]) - np.float64(t_arr[j])
                else:
                    dj = np.float64(p_arr[j])
            wj = 1.0
            if has_weights:
                if w_repeat == 1:
                    wj = np.float64(w_arr[j])
                else:
                    while j >= row_end:
                        row += 1
                        row_end += w_repeat
                    wj = np.float64(w_arr[row])
            gj = element(j, k, dj, dej, wj)
            if want_grad:
                g_arr[j] = gj
            k += 1
        if stream:
            _store_fence()

        if want_sums:
            if not compensated:
                for k in range(lanes):
                    acc1[k] = 0.0
                    acc3[k] = 0.0
            if keep_lanes:
                for k in range(lanes):
                    lanes_out[0, k, b] = acc0[k]
                    lanes_out[1, k, b] = acc1[k]
                    if has_weights:
                        lanes_out[2, k, b] = acc2[k]
                        lanes_out[3, k, b] = acc3[k]
            else:
                partials[b, 0], partials[b, 1] = _combine_lanes(acc0, acc1)
                if has_weights:
                    partials[b, 2], partials[b, 3] = _combine_lanes(acc2, acc3)
                else:
                    partials[b, 2] = np.float64(end - start)
                    partials[b, 3] = 0.0

    # Named after the kernel: its symbol (qualified name and Numba's per-process counter) is
    # linked into the kernel's cached code, where no other block may have the same one.
    block.__name__ = block.__qualname__ = "block_" + name
    return _jit_block(_with_globals(block, _element_globals(loss, globals())))
