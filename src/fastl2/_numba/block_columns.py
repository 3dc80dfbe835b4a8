"""The columns kernel of the numba backend (csrc/block_columns.h): the sums of many outputs
that are the contiguous columns of rows (a reduction along axis 0 of a C-ordered matrix),
reading the rows once, in memory order, with the block's operations (block_template.py), so
each output has the bits the block gives its run.  Sums and weight sums only.
"""

from __future__ import annotations

import numba
import numpy as np

from .._losses import LOSSES
from .._plan import BLOCK_SIZE
from .block_template import _diff_err, _element_globals, _weigh_err, _with_globals
# (stand for the loss's: see _element_globals)
from .block_template import _loss_value, _loss_value_err, _loss_value_parts
from .cache import _jit, _slp_dispatcher
from .combine import (_combine_lanes, _combine_partials, _rounded_dd, _two_sum, _two_sum_e,
                      _two_sum_parts)
from .config import LANES
from .memory import _flag_set, _pointer


def _columns_name(loss, has_true, has_weights, weights_only, compensated):
    """The name of _make_columns_kernel's kernel of this specialisation."""
    return "_".join(
        (
            LOSSES[loss].name,
            "true" if has_true else "penalty",
            "weighted" if has_weights else "unweighted",
            "weights" if weights_only else "sums",
            "compensated" if compensated else "plain",
            "columns",
        )
    )


def _make_columns_kernel(loss, has_true, has_weights, weights_only, compensated):
    """The kernel of run_strided's column layout, one specialisation (csrc/block_columns.h
    BLOCK_FN_columns): the outputs are the contiguous columns of rows (a reduction along axis 0
    of a C-ordered matrix).  Reading each column by itself would read every row once per output;
    this reads the rows once, in memory order, a block of BLOCK_SIZE rows at a time, and adds
    element r of each column to lane r % LANES of that column with ``block``'s operations, so
    each output's block partial has the bits ``block`` gives its run.

    ``columns(y_true, y_pred, weights, layout)``, the arrays giving the dtypes (as for the
    strided kernels); ``layout = (addresses, row_steps, weights_step, nrows, ncols, loss_sums,
    weight_sums, loss_lo, weight_lo, all_partials, param, first, end, finish, cancel)``
    (each sum the rounded value of its double-double, each lo the exact rest:
    combine._rounded_dd), param the loss's
    parameter: row_steps[k] is operand k's row stride in elements, weights_step 1 for weights
    per element and 0 for one weight per row.  The call reads the blocks of rows [first, end),
    writing their partials into all_partials (nblocks * ncols x 4 when there are several
    blocks, else empty; block b's partial of column c in row b * ncols + c, so that a chunk of
    blocks writes one run of it: column-major rows once made the first chunk of a call touch
    a page per column of a 1 GB array, a second before Ctrl-C could stop it) or, with one block, the sums where they go; ``finish`` then combines
    each column's partials (pool.py runs the ranges, then an empty range with ``finish``);
    ``cancel``, a one-element uint8 array, stops the work between blocks once nonzero.
    Modes sums and weights only.
    """
    block_size = BLOCK_SIZE
    lanes = LANES

    def columns(y_true, y_pred, weights, layout):
        (addresses, row_steps, weights_step, nrows, ncols, loss_sums, weight_sums, loss_lo,
         weight_lo, all_partials, param, first_block, end_block, finish, cancel) = layout
        nblocks = (nrows + block_size - 1) // block_size
        many = nblocks > 1
        # lanes of each column: loss sums, loss errors, weight sums, weight errors
        scratch = np.empty((lanes, 4, ncols))
        sums = np.empty(lanes)
        errors = np.empty(lanes)
        # bytes from one row to the next
        true_step = pred_step = weights_step_bytes = 0
        if has_true:
            true_step = row_steps[0] * y_true.itemsize
        if not weights_only:
            pred_step = row_steps[1] * y_pred.itemsize
        if has_weights:
            weights_step_bytes = row_steps[2] * weights.itemsize
        for b in range(first_block, end_block):
            if _flag_set(cancel):  # (pool.py: Ctrl-C; nothing of this call is used)
                break
            start = b * block_size
            rows = min(block_size, nrows - start)
            scratch[:] = 0.0
            true_at = addresses[0] + start * true_step
            pred_at = addresses[1] + start * pred_step
            weights_at = addresses[2] + start * weights_step_bytes
            for r in range(rows):
                lane = r % lanes
                if not weights_only:
                    yp = numba.carray(_pointer(pred_at, y_pred), ncols)
                    pred_at += pred_step
                    if has_true:
                        yt = numba.carray(_pointer(true_at, y_true), ncols)
                        true_at += true_step
                if has_weights:
                    wr = numba.carray(_pointer(weights_at, weights),
                                      ncols if weights_step else 1)
                    weights_at += weights_step_bytes
                acc = scratch[lane]
                loss_sum = acc[0]
                loss_err = acc[1]
                w_sum = acc[2]
                w_err = acc[3]
                for c in range(ncols):
                    wk = 1.0
                    if has_weights:
                        wk = np.float64(wr[c * weights_step])
                    if not weights_only:
                        de = 0.0
                        if has_true and compensated:
                            d, de = _diff_err(np.float64(yp[c]), np.float64(yt[c]))
                        elif has_true:
                            d = np.float64(yp[c]) - np.float64(yt[c])
                        else:
                            d = np.float64(yp[c])
                        if compensated and not has_weights:  # (exact element terms:
                            tx, ty, ta, tb = _loss_value_parts(d, de, param)  # block_template.py)
                            _two_sum_parts(loss_sum, loss_err, c, tx, ty, ta, tb)
                        elif compensated:
                            l, le = _loss_value_err(d, de, param)
                            wl, le = _weigh_err(wk, l, le)
                            _two_sum_e(loss_sum, loss_err, c, wl, le)
                        else:
                            l = _loss_value(d, param)
                            wl = wk * l if has_weights else l
                            loss_sum[c] += wl
                    if has_weights:
                        if compensated:
                            _two_sum(w_sum, w_err, c, wk)
                        else:
                            w_sum[c] += wk
            for c in range(ncols):
                at = b * ncols + c  # (block-major: a chunk of blocks writes one run)
                for k in range(lanes):
                    sums[k] = scratch[k, 0, c]
                    errors[k] = scratch[k, 1, c] if compensated else 0.0
                block_loss_hi, block_loss_lo = _combine_lanes(sums, errors)
                block_weights_hi = np.float64(rows)
                block_weights_lo = 0.0
                if has_weights:
                    for k in range(lanes):
                        sums[k] = scratch[k, 2, c]
                        errors[k] = scratch[k, 3, c] if compensated else 0.0
                    block_weights_hi, block_weights_lo = _combine_lanes(sums, errors)
                if many:
                    all_partials[at, 0] = block_loss_hi
                    all_partials[at, 1] = block_loss_lo
                    all_partials[at, 2] = block_weights_hi
                    all_partials[at, 3] = block_weights_lo
                else:
                    if not weights_only:
                        loss_sums[c], loss_lo[c] = _rounded_dd(block_loss_hi, block_loss_lo)
                    if has_weights:
                        weight_sums[c], weight_lo[c] = _rounded_dd(block_weights_hi,
                                                                   block_weights_lo)
        if many and finish and not _flag_set(cancel):
            # Column c's partials, every ncols-th row, combined by the tree (csrc/strided.c
            # finish_output): the tree's bits do not depend on where its leaves lie.
            for c in range(ncols):
                output_loss, output_weights, output_loss_lo, output_weights_lo = (
                    _combine_partials(all_partials[c::ncols]))
                if not weights_only:
                    loss_sums[c] = output_loss
                    loss_lo[c] = output_loss_lo
                if has_weights:
                    weight_sums[c] = output_weights
                    weight_lo[c] = output_weights_lo
        return 0.0, 0.0

    columns.__name__ = columns.__qualname__ = _columns_name(
        loss, has_true, has_weights, weights_only, compensated
    )
    columns = _with_globals(columns, _element_globals(loss, globals()))
    return _slp_dispatcher(_jit(columns, nogil=True, error_model="numpy"))
