"""The numba backend gives the cython backend's bits: every loss, reduction, dtype and weights
layout, nan and inf, in-place gradients and read-only inputs, empty inputs; and its fast path
(``fastl2._numba.fast_call``) answers the common calls with those bits and hands every other
call to the planned path.

fastl2._numba mirrors csrc/ operation for operation (same blocks, lanes, compensation and combine
tree), so its results are compared with the cython backend's byte for byte, not within ulps.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("numba", reason="numba is not installed: pip install numba, or pip install '.[numba]' in fastl2's checkout")

import fastl2  # noqa: E402
import numba_cases  # noqa: E402
from fastl2 import _backends  # noqa: E402
from fastl2._losses import LOSSES  # noqa: E402
from fastl2._numba import driver as numba_driver  # noqa: E402
from fastl2._plan import BLOCK_SIZE  # noqa: E402
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS  # noqa: E402
from numba_cases import (BIT_DTYPES, DTYPES, F32, F64, HAVE_CYTHON, NO_CYTHON,  # noqa: E402
                         PARALLEL_SIZE, SIZES, WEIGHTS, _sizes, bits, make_data,
                         numba_backend_module, on)

switch = numba_cases.switch  # (the fixture, as this module's)


# Every loss of the table, rmse, and each loss's <name>_grad and <name>_and_grad.
LOSS_FUNCS = (*LOSS_FUNCTIONS, "rmse",
              *(name for pair in zip(GRAD_FUNCTIONS, AND_GRAD_FUNCTIONS) for name in pair))
REDUCTIONS = ("mean", "weighted_mean", "sum", "none")
CASES = [
    (func, reduction)
    for func in LOSS_FUNCS
    for reduction in REDUCTIONS
    if not (func == "rmse" and reduction in ("sum", "none"))
]


# --------------------------------------------------------------------------- same bits as cython


@pytest.mark.skipif(not HAVE_CYTHON, reason=NO_CYTHON)
@pytest.mark.parametrize("weights_kind", WEIGHTS)
@pytest.mark.parametrize("dtype_name", BIT_DTYPES)
@pytest.mark.parametrize("func,reduction", CASES)
def test_numba_results_are_bit_identical_to_the_cython_backend(
    switch, func, reduction, dtype_name, weights_kind
):
    function = getattr(fastl2, func)
    for size in _sizes(func, DTYPES[dtype_name]):
        y_true, y_pred, weights = make_data(size, DTYPES[dtype_name], weights_kind)
        expected = bits(on(switch, "cython", function, y_true, y_pred, weights, reduction=reduction))
        got = bits(on(switch, "numba", function, y_true, y_pred, weights, reduction=reduction))
        assert got == expected, f"{func}(reduction={reduction!r}) differs from cython at size {size}"


@pytest.mark.skipif(not HAVE_CYTHON, reason=NO_CYTHON)
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("size", SIZES)
def test_numba_l2_penalty_and_its_gradient_are_bit_identical_to_the_cython_backend(switch, dtype, size):
    params = (np.random.default_rng(3).standard_normal(size) * 2).astype(dtype)
    for func in (fastl2.l2_penalty, fastl2.l2_penalty_grad):
        expected = bits(on(switch, "cython", func, params, 0.375))
        assert bits(on(switch, "numba", func, params, 0.375)) == expected, func.__name__


@pytest.mark.skipif(not HAVE_CYTHON, reason=NO_CYTHON)
@pytest.mark.parametrize("columns", [1, 15, 16, 37, BLOCK_SIZE + 5])
@pytest.mark.parametrize("reduction", ["weighted_mean", "none"])
def test_numba_per_sample_weights_spanning_chunks_and_blocks_match_cython(switch, columns, reduction):
    rows = max(2, 40_000 // columns)
    y_true, y_pred, weights = make_data(rows, DTYPES["float64"], "per_sample", columns=columns)
    for func in (getattr(fastl2, name) for name in (*LOSS_FUNCTIONS, *AND_GRAD_FUNCTIONS)):
        expected = bits(on(switch, "cython", func, y_true, y_pred, weights, reduction=reduction))
        got = bits(on(switch, "numba", func, y_true, y_pred, weights, reduction=reduction))
        assert got == expected, f"{func.__name__} with {columns} outputs per sample"


@pytest.mark.skipif(not HAVE_CYTHON, reason=NO_CYTHON)
@pytest.mark.parametrize("size", [40, 300_001])
def test_numba_nan_and_inf_propagate_as_in_the_cython_backend(switch, size):
    y_true, y_pred, weights = make_data(size, DTYPES["float64"], "full")
    y_pred[3] = np.inf
    y_true[size // 2] = np.nan
    for func in (getattr(fastl2, name) for name in (*LOSS_FUNCTIONS, *GRAD_FUNCTIONS, *AND_GRAD_FUNCTIONS)):
        for reduction in ("sum", "none"):
            expected = on(switch, "cython", func, y_true, y_pred, weights, reduction=reduction)
            got = on(switch, "numba", func, y_true, y_pred, weights, reduction=reduction)
            for e, g in zip(expected if isinstance(expected, tuple) else (expected,),
                            got if isinstance(got, tuple) else (got,)):
                np.testing.assert_array_equal(g, e)
    y_true[:] = 0.0
    y_pred[:] = 0.0
    weights[:] = 1.0
    y_pred[1] = y_pred[size - 1] = np.inf
    weights[size - 1] = -1.0  # inf - inf in the sums: nan, as IEEE addition gives
    for backend in ("cython", "numba"):
        assert np.isnan(on(switch, backend, fastl2.mse, y_true, y_pred, weights, reduction="sum")), backend
        weights[size - 1] = 1.0
        assert on(switch, backend, fastl2.mae, y_true, y_pred, weights, reduction="sum") == np.inf, backend
        weights[size - 1] = -1.0


@pytest.mark.skipif(not HAVE_CYTHON, reason=NO_CYTHON)
@pytest.mark.parametrize("size", [100, 300_001])
def test_numba_in_place_gradient_and_read_only_inputs_match_cython(switch, size):
    y_true, y_pred, weights = make_data(size, DTYPES["float32"], "full")
    y_true.flags.writeable = False
    weights.flags.writeable = False
    results = {}
    for backend in ("cython", "numba"):
        pred = y_pred.copy()
        loss, grad = on(switch, backend, fastl2.mse_and_grad, y_true, pred, weights, out=pred)
        assert grad is pred
        results[backend] = bits((loss, grad))
    assert results["numba"] == results["cython"]


@pytest.mark.skipif(not HAVE_CYTHON, reason=NO_CYTHON)
def test_numba_fast_path_gradient_divisor_is_compensated_as_the_result_dtype_says(switch):
    """A float64 y_true makes the result float64, so the weight sum that divides a weighted
    gradient is summed in compensated lanes even when y_pred and the weights are float32:
    weights of 2**60 then ones lose every one in plain lanes, and the gradient would differ."""
    n = 3 * BLOCK_SIZE
    rng = np.random.default_rng(3)
    y_true = rng.standard_normal(n)
    y_pred = rng.standard_normal(n).astype(np.float32)
    weights = np.ones(n, np.float32)
    weights[:16] = 2.0**60
    weights[-16:] = -(2.0**60)
    results = {
        backend: bits(on(switch, backend, fastl2.mse_and_grad, y_true, y_pred, weights,
                         reduction="weighted_mean"))
        for backend in ("cython", "numba")
    }
    assert results["numba"] == results["cython"]


@pytest.mark.parametrize("size", [100, 300_001])
def test_numba_read_only_inputs_use_the_writable_inputs_code(switch, size):
    """The 1-d kernels type every input as writable (they write only the gradient and the
    element losses), so read-only inputs give the same bits and compile nothing of their own,
    on the fast path and the planned one (an axis tuple naming every axis)."""
    switch("numba")
    y_true, y_pred, weights = make_data(size, DTYPES["float64"], "full")

    def results():
        return (
            bits(fastl2.mse(y_true, y_pred, weights, reduction="weighted_mean")),
            bits(fastl2.mse_and_grad(y_true, y_pred)),
            bits(fastl2.mae(y_true, y_pred, weights, axis=(0,), reduction="sum")),
        )

    writable = results()
    compiled = {key: len(kernel.signatures) for key, kernel in numba_driver._kernels.items()}
    for a in (y_true, y_pred, weights):
        a.flags.writeable = False
    assert results() == writable
    assert {key: len(numba_driver._kernels[key].signatures) for key in compiled} == compiled


def test_numba_empty_input_follows_the_api(switch):
    switch("numba")
    empty = np.zeros(0)
    assert fastl2.mse(empty, empty, reduction="sum") == 0.0
    with pytest.warns(RuntimeWarning):
        assert np.isnan(fastl2.mse(empty, empty))
    assert fastl2.mse_grad(empty, empty).shape == (0,)


# --------------------------------------------------------------------------- fast paths


def _planned(name):
    """fastl2._api's function ``name`` on the planned path alone: the active backend's fast
    path (fastl2._backends.fast_call) is set aside for the call."""
    function = getattr(fastl2._api, name)

    def planned(*args, **kwargs):
        fast, _backends.fast_call = _backends.fast_call, None
        try:
            return function(*args, **kwargs)
        finally:
            _backends.fast_call = fast

    return planned


@pytest.fixture
def numba_fast_paths(switch):
    """fastl2._api's functions with numba computing: each offers the call to fastl2._numba's
    fast path (its ``fast_call``) first, and plans the calls it does not answer."""
    switch("numba")
    assert _backends.fast_call is numba_backend_module.fast_call
    return fastl2._api


_LOSS_OF_FUNCTION = {loss.function: loss for loss in LOSSES}


def _numba_fast_call(name, y_true, y_pred, weights, reduction):
    """fastl2._numba's fast path itself for the public function ``name`` (the loss's parameter
    at its default): its result, or None where it leaves the call to the planned path."""
    loss = _LOSS_OF_FUNCTION[name.removesuffix("_and_grad").removesuffix("_grad")]
    param = 0.0 if loss.parameter is None else loss.parameter.default
    want_grad = name.endswith("_grad")
    want_loss = not want_grad or name.endswith("_and_grad")
    return numba_backend_module.fast_call(loss.code, param, y_true, y_pred, weights, reduction,
                                          want_loss, want_grad)


def _fast_inputs(name):
    """The fast paths' inputs for ``name``, in BIT_DTYPES; the mix on the parallel path only
    with a gradient (see _sizes)."""
    rng = np.random.default_rng(21)
    for dtypes in (DTYPES[d] for d in BIT_DTYPES):
        for shape in ((1,), (17,), (BLOCK_SIZE + 3,), (PARALLEL_SIZE,), (40, 7), ()):
            if shape == (PARALLEL_SIZE,) and PARALLEL_SIZE not in _sizes(name, dtypes):
                continue
            y_true = rng.standard_normal(shape).astype(dtypes[0])
            y_pred = rng.standard_normal(shape).astype(dtypes[1])
            yield y_true, y_pred, None
            yield y_true, y_pred, rng.uniform(0, 2, shape).astype(dtypes[2])


def _other_inputs():
    rng = np.random.default_rng(22)
    t, p, w = rng.standard_normal(1000), rng.standard_normal(1000), rng.uniform(0, 1, 1000)
    yield t, p, {"weights": w[:1]}
    yield t.reshape(100, 10), p.reshape(100, 10), {"weights": w[:100]}
    yield t, p, {"weights": np.zeros(1000), "reduction": "weighted_mean"}
    yield t, p, {"reduction": "none"}
    yield t[::2], p[::2], {}
    yield t, p, {"weights": w[::-1]}
    yield t.astype(np.float16), p.astype(np.float16), {}
    yield t.astype(">f8"), p.astype(">f8"), {}
    yield t.astype(np.int64), p, {}
    yield list(t[:5]), list(p[:5]), {}
    yield np.zeros(0), np.zeros(0), {"reduction": "sum"}


# Every loss's functions (cases.LOSS_FUNCTIONS): fastl2._numba's fast path takes every loss.
FAST_NAMES = (*LOSS_FUNCTIONS, *GRAD_FUNCTIONS, *AND_GRAD_FUNCTIONS)


@pytest.mark.skipif(not HAVE_CYTHON, reason=NO_CYTHON)
@pytest.mark.parametrize("reduction", ["mean", "weighted_mean", "sum"])
@pytest.mark.parametrize("name", FAST_NAMES)
def test_numba_fast_paths_give_the_bits_of_the_cython_backend(numba_fast_paths, switch, name, reduction):
    for y_true, y_pred, weights in _fast_inputs(name):
        case = f"{y_true.dtype}/{y_pred.dtype} {y_pred.shape}, weights: {weights is not None}"
        fast = _numba_fast_call(name, y_true, y_pred, weights, reduction)
        got = bits(getattr(numba_fast_paths, name)(y_true, y_pred, weights, reduction=reduction))
        if len({a.dtype for a in (y_true, y_pred, weights) if a is not None}) > 1:
            # float32 beside float64: the planned path's strided kernels convert them (the
            # kernels are compiled for one dtype per result dtype)
            assert fast is None, f"numba's fast path took the mixed {name} on {case}"
        else:
            assert fast is not None, f"numba's fast path left {name} on {case} to the planned path"
            assert bits(fast) == got, f"{name} on {case}"
        function = getattr(fastl2, name)
        expected = bits(on(switch, "cython", function, y_true, y_pred, weights, reduction=reduction))
        switch("numba")
        assert got == expected, f"{name} on {case}"


@pytest.mark.parametrize("name", FAST_NAMES)
def test_numba_fast_paths_hand_every_other_call_to_the_planned_path(numba_fast_paths, name):
    for y_true, y_pred, kwargs in _other_inputs():
        try:
            expected = bits(_planned(name)(y_true, y_pred, **kwargs))
        except ValueError as exc:
            with pytest.raises(ValueError, match=re.escape(str(exc))):
                getattr(numba_fast_paths, name)(y_true, y_pred, **kwargs)
            continue
        assert bits(getattr(numba_fast_paths, name)(y_true, y_pred, **kwargs)) == expected
    y_true, y_pred = np.zeros(10), np.ones(10)
    out = np.empty(10)
    if name.endswith("grad"):
        result = getattr(numba_fast_paths, name)(y_true, y_pred, out=out)
        assert (result[1] if isinstance(result, tuple) else result) is out
    else:
        assert numba_fast_paths.mse(y_true.reshape(2, 5), y_pred.reshape(2, 5), axis=None) == 1.0
