"""Every function x reduction x dtype x weights x size against the exact reference (reference.py).

Tolerances: a reduced float32 result is within 1 ulp of the exact value rounded to float32, a float64
one within 2 ulp; every gradient element within 1 ulp (float16, float32 and float64: tests of
correct rounding itself are in test_float64_rounding.py and test_float64_gradients.py).
"""
from __future__ import annotations

import functools
from fractions import Fraction
import warnings

import numpy as np
import pytest

import fastl2
import reference as ref
from cases import (
    AND_GRAD_FUNCTIONS,
    FLOAT_DTYPE_CASES,
    GRAD_FUNCTIONS,
    LOSS_FUNCTIONS,
    OTHER_DTYPE_CASES,
    SIZES,
    WEIGHTS_KINDS,
    cached_inputs,
    make_inputs,
    numba_runs_mix,
    with_backends,
)

# kind (the loss function's name: every loss of the table, and rmse) -> its public functions
LOSSES = {name: getattr(fastl2, name) for name in LOSS_FUNCTIONS + ("rmse",)}
GRADS = {kind: getattr(fastl2, name) for kind, name in zip(LOSS_FUNCTIONS, GRAD_FUNCTIONS)}
LOSS_AND_GRADS = {kind: getattr(fastl2, name) for kind, name in zip(LOSS_FUNCTIONS, AND_GRAD_FUNCTIONS)}

LOSS_REDUCTIONS = [
    (kind, reduction)
    for kind in LOSSES
    for reduction in ref.REDUCTIONS
    if not (kind == "rmse" and reduction in ("sum", "none"))
]
GRAD_REDUCTIONS = [(kind, reduction) for kind in GRADS for reduction in ref.REDUCTIONS]


# --------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=None)
def expected_loss(kind, reduction, dtype_case, weights_kind, size):
    return ref.loss(kind, *cached_inputs(dtype_case, weights_kind, size), reduction)


@functools.lru_cache(maxsize=None)
def expected_grad(kind, reduction, dtype_case, weights_kind, size):
    return ref.grad(kind, *cached_inputs(dtype_case, weights_kind, size), reduction)


def _empty_mean(size, reduction):
    return size == 0 and reduction in ("mean", "weighted_mean")


def call(func, *args, warns_empty=False, **kwargs):
    """Call func; an empty mean must warn (NumPy's rule), ordinary data must not warn at all."""
    if warns_empty:
        with pytest.warns(RuntimeWarning):
            return func(*args, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return func(*args, **kwargs)


def check_loss(result, expected, reduction, y_true, y_pred, weights):
    dtype = ref.loss_dtype(y_true, y_pred, weights)
    if reduction == "none":
        assert isinstance(result, np.ndarray), f"reduction='none' must give an ndarray, got {type(result)}"
        assert result.shape == np.shape(y_pred)
        assert result.dtype == dtype
    else:
        assert type(result) is dtype.type, (
            f"a reduced loss must be a NumPy {dtype} scalar, got {type(result).__name__}"
        )
    ref.assert_ulp(result, expected, ref.loss_ulp(dtype))


def check_grad(result, expected, y_pred):
    dtype = ref.grad_dtype(y_pred)
    assert isinstance(result, np.ndarray), f"a gradient must be an ndarray, got {type(result)}"
    assert result.shape == np.shape(y_pred)
    assert result.dtype == dtype, f"gradient dtype {result.dtype}, expected y_pred's float dtype {dtype}"
    ref.assert_ulp(result, expected, ref.grad_ulp(dtype))


def check_case_loss(result, kind, reduction, case, inputs):
    """check_loss against the exact loss of ``case`` (dtype case, weights kind, size), whose
    ``inputs`` (y_true, y_pred, weights) gave ``result``."""
    check_loss(result, expected_loss(kind, reduction, *case), reduction, *inputs)


def check_case_grad(result, kind, reduction, case, inputs):
    """check_grad against the exact gradient of ``case``, as check_case_loss."""
    check_grad(result, expected_grad(kind, reduction, *case), inputs[1])


def stacked(*marks):
    """The decorators ``marks`` as one, applied as if written one above the other (the first on top)."""
    def apply(test):
        for mark in reversed(marks):
            test = mark(test)
        return test

    return apply


# --------------------------------------------------------------------------- float dtypes, all sizes

# On numba, the float32 / float64 mix f32_true_f64_pred compiles the float64 kernels once more,
# with a float32 y_true: it runs on cython and numpy (cases.py, "numba dtype mixes").
float_dtype_params = with_backends("dtype_case", list(FLOAT_DTYPE_CASES),
                                   on_numba=lambda case: numba_runs_mix(*FLOAT_DTYPE_CASES[case]))


def float_cases(kind_reductions):
    """Every size, weights kind and float dtype case, with each (kind, reduction) given."""
    return stacked(pytest.mark.parametrize("size", SIZES), pytest.mark.parametrize("weights_kind", WEIGHTS_KINDS),
                   float_dtype_params, pytest.mark.parametrize("kind,reduction", kind_reductions))


@float_cases(LOSS_REDUCTIONS)
def test_loss_matches_exact_reference(backend, kind, reduction, dtype_case, weights_kind, size):
    case = (dtype_case, weights_kind, size)
    inputs = make_inputs(*case)
    result = call(LOSSES[kind], *inputs, reduction=reduction, warns_empty=_empty_mean(size, reduction))
    check_case_loss(result, kind, reduction, case, inputs)


@float_cases(GRAD_REDUCTIONS)
def test_grad_matches_exact_reference(backend, kind, reduction, dtype_case, weights_kind, size):
    case = (dtype_case, weights_kind, size)
    inputs = make_inputs(*case)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if size == 0 else "error", RuntimeWarning)
        result = GRADS[kind](*inputs, reduction=reduction)
    check_case_grad(result, kind, reduction, case, inputs)


@float_cases(GRAD_REDUCTIONS)
def test_loss_and_grad_match_exact_reference(backend, kind, reduction, dtype_case, weights_kind, size):
    case = (dtype_case, weights_kind, size)
    inputs = make_inputs(*case)
    result = call(LOSS_AND_GRADS[kind], *inputs, reduction=reduction, warns_empty=_empty_mean(size, reduction))
    assert isinstance(result, tuple) and len(result) == 2
    check_case_loss(result[0], kind, reduction, case, inputs)
    check_case_grad(result[1], kind, reduction, case, inputs)


# --------------------------------------------------------------------------- integer / float16 / bool


@pytest.mark.parametrize("size", [5, SIZES[-1]])
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
# On numba, the cases whose converted dtypes are a further float32 / float64 mix
# (f32_true_int32_pred, float32 data with float64 or integer weights) run on cython and numpy
# only: the conversion is fastl2._plan's, the same for every backend (cases.py).
@with_backends("dtype_case", list(OTHER_DTYPE_CASES),
               on_numba=lambda case: numba_runs_mix(*OTHER_DTYPE_CASES[case]))
def test_non_float32_float64_inputs_follow_the_dtype_rule(backend, dtype_case, reduction, size):
    case = (dtype_case, "none" if OTHER_DTYPE_CASES[dtype_case][2] is None else "full", size)
    inputs = make_inputs(*case)
    for kind in LOSSES:
        if kind == "rmse" and reduction in ("sum", "none"):
            continue
        check_case_loss(call(LOSSES[kind], *inputs, reduction=reduction), kind, reduction, case, inputs)
    for kind in GRADS:
        check_case_grad(call(GRADS[kind], *inputs, reduction=reduction), kind, reduction, case, inputs)
        loss, grad = call(LOSS_AND_GRADS[kind], *inputs, reduction=reduction)
        check_case_loss(loss, kind, reduction, case, inputs)
        check_case_grad(grad, kind, reduction, case, inputs)


# --------------------------------------------------------------------------- l2 penalty


l2_cases = stacked(pytest.mark.parametrize("size", SIZES),
                   pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64]),
                   pytest.mark.parametrize("lam", [0.0, 1e-3, 0.5, 3.0]))


def _params(dtype, size):
    rng = np.random.default_rng(size)
    return (rng.standard_normal(size) * 4).astype(dtype)


@l2_cases
def test_l2_penalty_matches_exact_reference(backend, lam, dtype, size):
    params = _params(dtype, size)
    result = fastl2.l2_penalty(params, lam)
    dtype_out = ref.loss_dtype(params)
    assert type(result) is dtype_out.type, f"l2_penalty must give a NumPy {dtype_out} scalar, got {type(result)}"
    ref.assert_ulp(result, ref.l2_penalty(params, lam), ref.loss_ulp(dtype_out))


@l2_cases
def test_l2_penalty_grad_matches_exact_reference(backend, lam, dtype, size):
    params = _params(dtype, size)
    result = fastl2.l2_penalty_grad(params, lam)
    check_grad(result, ref.l2_penalty_grad(params, lam), params)


@pytest.mark.parametrize("narrow", [np.float16, np.float32])
@pytest.mark.parametrize("size", [2, 8191, 3 * 65536 + 17])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_l2_penalty_of_a_list_mixing_dtypes_is_as_exact_as_its_float64_result(backend, narrow, size, layout):
    # A float32 array's own kernel is accurate to float32's ulp; in a list with a float64 array
    # the result is float64 and must be within its 2 ulp (found by the fuzzer: 5 ulp for
    # [a float64 scalar, 8191 float32 values], the float32 sum in plain float64 lanes).
    rng = np.random.default_rng(size)
    wide = rng.standard_normal(2 * size if layout == "strided" else size).astype(narrow) * 3
    part = wide[::2] if layout == "strided" else wide
    params = [np.array(1.0 / 3.0), part, rng.standard_normal(5)]
    result = fastl2.l2_penalty(params, 0.5)
    assert type(result) is np.float64
    flat = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in params])
    ref.assert_ulp(result, ref.l2_penalty(flat, 0.5), ref.loss_ulp(np.float64))


def test_l2_penalty_of_2d_params_sums_everything(backend):
    params = np.arange(12.0).reshape(3, 4) - 5.5
    assert fastl2.l2_penalty(params, 0.25) == 0.25 * float(np.sum(params**2))
    np.testing.assert_array_equal(fastl2.l2_penalty_grad(params, 0.25), 0.5 * params)


# --------------------------------------------------------------------------- exactly known small cases


def test_small_case_matches_hand_computed_values(backend):
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    y_pred = np.array([1.5, 2.0, 1.0, 8.0])
    w = np.array([1.0, 2.0, 0.5, 0.25])
    # d = [0.5, 0, -2, 4]; d^2 = [0.25, 0, 4, 16]; w d^2 = [0.25, 0, 2, 4]; w|d| = [0.5, 0, 1, 1]
    assert fastl2.mse(y_true, y_pred) == 20.25 / 4
    assert fastl2.mse(y_true, y_pred, reduction="sum") == 20.25
    assert fastl2.mse(y_true, y_pred, w, reduction="mean") == 6.25 / 4
    ref.assert_ulp(fastl2.mse(y_true, y_pred, w, reduction="weighted_mean"), Fraction(625, 375), 2)
    assert fastl2.mae(y_true, y_pred, w, reduction="sum") == 2.5
    assert fastl2.rmse(y_true, y_pred) == np.sqrt(20.25 / 4)
    np.testing.assert_array_equal(fastl2.mse(y_true, y_pred, w, reduction="none"), [0.25, 0, 2, 4])
    np.testing.assert_array_equal(fastl2.mse_grad(y_true, y_pred, reduction="sum"), [1.0, 0.0, -4.0, 8.0])
    np.testing.assert_array_equal(fastl2.mse_grad(y_true, y_pred), [0.25, 0.0, -1.0, 2.0])
    np.testing.assert_array_equal(fastl2.mae_grad(y_true, y_pred, w, reduction="sum"), [1.0, 0.0, -0.5, 0.25])
    np.testing.assert_array_equal(fastl2.mae_grad(y_true, y_pred, w, reduction="none"), [1.0, 0.0, -0.5, 0.25])


def test_weighted_mean_without_weights_equals_mean(backend):
    y_true, y_pred, _ = make_inputs("float64", "none", 1000)
    assert fastl2.mse(y_true, y_pred, reduction="weighted_mean") == fastl2.mse(y_true, y_pred)


def test_per_sample_weights_equal_the_broadcast_full_weights(backend):
    y_true, y_pred, w = make_inputs("float64", "per_sample", 500)
    full = np.repeat(w[:, None], y_pred.shape[1], axis=1)
    for reduction in ("mean", "weighted_mean", "sum"):
        ref.assert_ulp(fastl2.mse(y_true, y_pred, w, reduction=reduction),
                       fastl2.mse(y_true, y_pred, full, reduction=reduction), 2)
        ref.assert_ulp(fastl2.mse_grad(y_true, y_pred, w, reduction=reduction),
                       fastl2.mse_grad(y_true, y_pred, full, reduction=reduction), 2)


# --------------------------------------------------------------------------- a few million elements

LARGE = 3_000_001


@pytest.fixture(
    scope="module",
    params=[(np.float32, "mean"), (np.float64, "mean"), (np.float32, "weighted_mean"), (np.float64, "weighted_mean")],
    ids=["float32-mean", "float64-mean", "float32-weighted_mean", "float64-weighted_mean"],
)
def large_case(request):
    dtype, reduction = request.param
    rng = np.random.default_rng(12345)
    y_true = (rng.standard_normal(LARGE) * 3).astype(dtype)
    y_pred = (rng.standard_normal(LARGE) * 3).astype(dtype)
    weights = rng.uniform(0.1, 2.0, LARGE).astype(dtype) if reduction == "weighted_mean" else None
    for a in (y_true, y_pred, weights):
        if a is not None:
            a.flags.writeable = False
    return {
        "args": (y_true, y_pred, weights),
        "reduction": reduction,
        "loss": ref.loss("mse", y_true, y_pred, weights, reduction),
        "grad": ref.grad("mse", y_true, y_pred, weights, reduction),
    }


def test_large_mse_matches_exact_reference(backend, large_case):
    y_true, y_pred, weights = large_case["args"]
    result = fastl2.mse(y_true, y_pred, weights, reduction=large_case["reduction"])
    check_loss(result, large_case["loss"], large_case["reduction"], y_true, y_pred, weights)


def test_large_mse_and_grad_match_exact_reference(backend, large_case):
    y_true, y_pred, weights = large_case["args"]
    loss, grad = fastl2.mse_and_grad(y_true, y_pred, weights, reduction=large_case["reduction"])
    check_loss(loss, large_case["loss"], large_case["reduction"], y_true, y_pred, weights)
    check_grad(grad, large_case["grad"], y_pred)
