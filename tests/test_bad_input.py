"""Every bad-input rule of docs/api.md, one behaviour per test, on every backend."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import fastl2
import reference as ref
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS
from fastl2._losses import LOSSES

# The losses of the table (cases.LOSS_FUNCTIONS), and rmse (the root of mse) beside them.
LOSS_NAMES = (*LOSS_FUNCTIONS, "rmse")
LOSS_FUNCS = {name: getattr(fastl2, name) for name in LOSS_NAMES}
# Each loss's <name>_grad, then its <name>_and_grad: the functions of (y_true, y_pred, weights)
# that take out=.
OUT_NAMES = tuple(name for pair in zip(GRAD_FUNCTIONS, AND_GRAD_FUNCTIONS) for name in pair)


def funcs(*names):
    """``pytest.mark.parametrize`` of ``func`` over the public functions ``names``, ids the names."""
    return pytest.mark.parametrize("func", [getattr(fastl2, name) for name in names], ids=list(names))


pair_funcs = funcs(*LOSS_NAMES, *OUT_NAMES)
loss_funcs = funcs(*LOSS_NAMES)
out_funcs = funcs(*OUT_NAMES)
l2_funcs = funcs("l2_penalty", "l2_penalty_grad")


def _grad_of(result):
    return result[1] if isinstance(result, tuple) else result


def _pair(shape=(6,), dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype))


# --------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("shapes", [((3,), (4,)), ((2, 3), (3, 2)), ((4,), (2, 2))], ids=str)
@pair_funcs
def test_shape_mismatch_names_both_shapes(backend, func, shapes):
    true_shape, pred_shape = shapes
    with pytest.raises(ValueError) as info:
        func(np.zeros(true_shape), np.zeros(pred_shape))
    message = str(info.value)
    assert str(true_shape) in message and str(pred_shape) in message, message


@pytest.mark.parametrize("column_first", [True, False])
@pair_funcs
def test_column_vector_is_not_broadcast_against_flat_vector(backend, func, column_first):
    flat, column = np.zeros(5), np.zeros((5, 1))
    args = (column, flat) if column_first else (flat, column)
    with pytest.raises(ValueError) as info:
        func(*args)
    assert "(5,)" in str(info.value) and "(5, 1)" in str(info.value), str(info.value)


WRONG_WEIGHT_SHAPES = {
    "wrong_length_1d": (5,),
    "length_of_second_axis": (3,),
    "column": (4, 1),
    "transposed": (3, 4),
    "scalar": (),
    "extra_axis": (4, 3, 1),
}


@pytest.mark.parametrize("weights_shape", list(WRONG_WEIGHT_SHAPES.values()), ids=list(WRONG_WEIGHT_SHAPES))
@pair_funcs
def test_weights_with_wrong_shape_raise_value_error_naming_weights(backend, func, weights_shape):
    y_true, y_pred = _pair((4, 3))
    with pytest.raises(ValueError, match="weights"):
        func(y_true, y_pred, np.ones(weights_shape), reduction="weighted_mean")


# --------------------------------------------------------------------------- dtypes

UNSUPPORTED = {
    "complex128": lambda n: np.ones(n, dtype=np.complex128),
    "object": lambda n: np.array([1.0] * n, dtype=object),
    "str": lambda n: np.array(["1.0"] * n),
    "datetime64": lambda n: np.array(["2020-01-01"] * n, dtype="datetime64[D]"),
}


def _dtype_spellings(dtype):
    dtype = np.dtype(dtype)
    return {str(dtype), dtype.name, dtype.str, dtype.str.lstrip("<>|=")}


def _assert_names_argument_and_dtype(message, argument, dtype):
    assert argument in message, f"message does not name {argument!r}: {message}"
    assert any(s in message for s in _dtype_spellings(dtype)), f"message does not name dtype {dtype}: {message}"


@pytest.mark.parametrize("dtype_name", list(UNSUPPORTED))
@pytest.mark.parametrize("argument", ["y_true", "y_pred", "weights"])
@pair_funcs
def test_complex_object_str_datetime_input_raises_type_error_naming_argument(backend, func, argument, dtype_name):
    args = {"y_true": np.ones(3), "y_pred": np.zeros(3), "weights": np.ones(3)}
    bad = UNSUPPORTED[dtype_name](3)
    args[argument] = bad
    with pytest.raises(TypeError) as info:
        func(args["y_true"], args["y_pred"], args["weights"])
    _assert_names_argument_and_dtype(str(info.value), argument, bad.dtype)


@pytest.mark.parametrize("dtype_name", list(UNSUPPORTED))
@l2_funcs
def test_l2_unsupported_params_dtype_raises_type_error_naming_params(backend, func, dtype_name):
    bad = UNSUPPORTED[dtype_name](3)
    with pytest.raises(TypeError) as info:
        func(bad, 0.1)
    _assert_names_argument_and_dtype(str(info.value), "params", bad.dtype)


# --------------------------------------------------------------------------- reduction


@pair_funcs
def test_weighted_mean_with_zero_weight_sum_raises(backend, func):
    y_true, y_pred = _pair((5,))
    with pytest.raises(ValueError, match="weight"):
        func(y_true, y_pred, np.zeros(5), reduction="weighted_mean")


@pytest.mark.parametrize("bad", ["avg", "MEAN", "", "sum_over_batch_size"])
@pair_funcs
def test_bad_reduction_lists_allowed_values(backend, func, bad):
    y_true, y_pred = _pair()
    with pytest.raises(ValueError) as info:
        func(y_true, y_pred, reduction=bad)
    message = str(info.value)
    allowed = ("mean", "weighted_mean") if func is fastl2.rmse else ref.REDUCTIONS
    for name in allowed:
        assert name in message, f"{name!r} missing from: {message}"


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_rmse_rejects_sum_and_none(backend, reduction):
    y_true, y_pred = _pair()
    with pytest.raises(ValueError, match=reduction):
        fastl2.rmse(y_true, y_pred, reduction=reduction)


# --------------------------------------------------------------------------- axis


@pytest.mark.parametrize("shape,axis", [((4, 3), 2), ((4, 3), -3), ((4, 3), (0, 2)), ((4, 3), (-3,)),
                                        ((5,), 1), ((2, 3, 4), (1, 3)), ((2, 3, 4), -4)], ids=str)
@loss_funcs
def test_axis_out_of_range_raises_axis_error(backend, func, shape, axis):
    y_true, y_pred = _pair(shape)
    with pytest.raises(np.exceptions.AxisError):
        func(y_true, y_pred, axis=axis)


@pytest.mark.parametrize("axis", [0, -1, (0, 1), (1,)], ids=str)
@funcs(*LOSS_FUNCTIONS)
def test_axis_with_reduction_none_is_an_error(backend, func, axis):
    y_true, y_pred = _pair((4, 3))
    with pytest.raises(ValueError, match="axis"):
        func(y_true, y_pred, axis=axis, reduction="none")


@pytest.mark.parametrize("shape,axis", [((4, 3), (0, -2)), ((4, 3), (1, 1)), ((2, 3, 4), (0, 2, -1)),
                                        ((5,), (0, -1))], ids=str)
@loss_funcs
def test_axis_naming_an_axis_twice_raises_value_error(backend, func, shape, axis):
    y_true, y_pred = _pair(shape)
    with pytest.raises(ValueError, match="axis"):
        func(y_true, y_pred, axis=axis)


@pytest.mark.parametrize("axis", ["0", 1.5, True, np.True_, [0], (0, 1.0), (0, "1"), np.float64(0)], ids=repr)
@loss_funcs
def test_axis_of_wrong_type_raises_type_error(backend, func, axis):
    """Like NumPy: an axis is an int (bools are not axes) or a tuple of ints."""
    y_true, y_pred = _pair((4, 3))
    with pytest.raises(TypeError, match="axis"):
        func(y_true, y_pred, axis=axis)


@pytest.mark.parametrize("per_sample", [False, True], ids=["full_weights", "per_sample_weights"])
@loss_funcs
def test_weighted_mean_with_zero_weight_sum_along_an_axis_raises(backend, func, per_sample):
    """One output whose weights sum to 0 is enough; the others are fine."""
    y_true, y_pred = _pair((4, 3))
    if per_sample:  # sample 2's weight is 0: its per-sample loss (axis=-1) has no weight
        weights, axis = np.array([1.0, 2.0, 0.0, 0.5]), -1
    else:  # column 1's weights are 0: its per-output loss (axis=0) has no weight
        weights, axis = np.ones((4, 3)), 0
        weights[:, 1] = 0.0
    with pytest.raises(ValueError, match="weight"):
        func(y_true, y_pred, weights, axis=axis, reduction="weighted_mean")
    func(y_true, y_pred, weights, axis=axis, reduction="mean")  # the other reductions do not divide by it
    if func is not fastl2.rmse:
        func(y_true, y_pred, weights, axis=axis, reduction="sum")


# --------------------------------------------------------------------------- out=


@out_funcs
def test_out_is_filled_and_returned(backend, func):
    y_true, y_pred = _pair((7, 2))
    w = np.linspace(0.5, 1.5, 7)
    expected = func(y_true, y_pred, w)
    out = np.full_like(y_pred, np.nan)
    result = func(y_true, y_pred, w, out=out)
    assert _grad_of(result) is out
    np.testing.assert_array_equal(out, _grad_of(expected))
    if isinstance(result, tuple):
        assert result[0] == expected[0]


@pytest.mark.parametrize("out_shape", [(14,), (7, 1), (2, 7), ()], ids=str)
@out_funcs
def test_out_with_wrong_shape_raises_value_error_naming_out(backend, func, out_shape):
    y_true, y_pred = _pair((7, 2))
    with pytest.raises(ValueError, match=r"\bout\b"):
        func(y_true, y_pred, out=np.empty(out_shape))


@pytest.mark.parametrize("out_dtype", [np.float32, np.int64, np.float16], ids=lambda d: np.dtype(d).name)
@out_funcs
def test_out_with_wrong_dtype_raises_value_error_naming_out(backend, func, out_dtype):
    y_true, y_pred = _pair((7, 2))
    with pytest.raises(ValueError, match=r"\bout\b"):
        func(y_true, y_pred, out=np.empty((7, 2), dtype=out_dtype))


@out_funcs
def test_read_only_out_raises_value_error_naming_out(backend, func):
    y_true, y_pred = _pair((7, 2))
    out = np.empty_like(y_pred)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"\bout\b"):
        func(y_true, y_pred, out=out)


@out_funcs
def test_out_overlapping_y_true_raises(backend, func):
    y_true, y_pred = _pair((7, 2))
    keep = y_true.copy()
    with pytest.raises(ValueError, match=r"\bout\b"):
        func(y_true, y_pred, out=y_true)
    np.testing.assert_array_equal(y_true, keep)


@out_funcs
def test_out_overlapping_weights_raises(backend, func):
    y_true, y_pred = _pair((7, 2))
    weights = np.ones((7, 2))
    with pytest.raises(ValueError, match=r"\bout\b"):
        func(y_true, y_pred, weights, out=weights)


@out_funcs
def test_out_partially_overlapping_y_pred_raises(backend, func):
    """Only out=y_pred itself is in-place; a different view of the same memory is an overlap."""
    y_true, y_pred = _pair((8,))
    keep = y_pred.copy()
    with pytest.raises(ValueError, match=r"\bout\b"):
        func(y_true, y_pred, out=y_pred[::-1])
    np.testing.assert_array_equal(y_pred, keep)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@out_funcs
def test_out_equal_to_y_pred_computes_in_place(backend, func, reduction, weighted):
    y_true, y_pred = _pair((1000,), seed=3)
    weights = np.linspace(0.1, 2.0, 1000) if weighted else None
    expected = func(y_true, y_pred.copy(), weights, reduction=reduction)
    result = func(y_true, y_pred, weights, reduction=reduction, out=y_pred)
    assert _grad_of(result) is y_pred
    np.testing.assert_array_equal(y_pred, _grad_of(expected))
    if isinstance(result, tuple):
        np.testing.assert_array_equal(result[0], expected[0],
                                      err_msg="the loss must be computed from y_pred's values before the update")


def test_l2_penalty_grad_out_is_filled_and_returned_and_may_be_params(backend):
    params = np.linspace(-3, 3, 11)
    out = np.empty_like(params)
    assert fastl2.l2_penalty_grad(params, 0.25, out=out) is out
    np.testing.assert_array_equal(out, 0.5 * params)
    expected = 0.5 * params
    assert fastl2.l2_penalty_grad(params, 0.25, out=params) is params
    np.testing.assert_array_equal(params, expected)


@pytest.mark.parametrize("bad_out", ["shape", "dtype", "read_only"])
def test_l2_penalty_grad_bad_out_raises_value_error_naming_out(backend, bad_out):
    params = np.linspace(-3, 3, 11)
    out = {"shape": np.empty(12), "dtype": np.empty(11, np.float32), "read_only": np.empty(11)}[bad_out]
    if bad_out == "read_only":
        out.flags.writeable = False
    with pytest.raises(ValueError, match=r"\bout\b"):
        fastl2.l2_penalty_grad(params, 0.25, out=out)


# --------------------------------------------------------------------------- l2 lambda


@pytest.mark.parametrize("lam", [-1.0, -1e-300, math.nan, float("-inf")], ids=repr)
@l2_funcs
def test_l2_negative_or_nan_lambda_raises(backend, func, lam):
    with pytest.raises(ValueError, match="lam"):
        func(np.ones(3), lam)


# --------------------------------------------------------------------------- configuration


def test_set_backend_unknown_name_lists_available():
    previous = fastl2.get_backend()
    with pytest.raises(ValueError) as info:
        fastl2.set_backend("fortran")
    for name in fastl2.available_backends():
        assert name in str(info.value), str(info.value)
    assert fastl2.get_backend() == previous


@pytest.mark.parametrize("n", [0, -1])
def test_set_num_threads_rejects_non_positive(n, restore_num_threads):
    with pytest.raises(ValueError):
        fastl2.set_num_threads(n)
    assert fastl2.get_num_threads() == restore_num_threads


@pytest.mark.parametrize("n", [2.5, "2", None, True, np.True_, np.float64(2)], ids=repr)
def test_set_num_threads_rejects_non_integers(n, restore_num_threads):
    with pytest.raises(TypeError, match=f"the number of threads must be an int from 1 to 1024; "
                                        f"got .* of type {type(n).__name__}"):
        fastl2.set_num_threads(n)
    assert fastl2.get_num_threads() == restore_num_threads


# --------------------------------------------------------------------------- inputs that are fine


def test_lists_and_python_scalars_are_accepted(backend):
    result = fastl2.mse([1, 2, 3], [1.0, 2.0, 5.0])
    assert type(result) is np.float64 and result == 4.0 / 3.0
    assert fastl2.mse(1.0, 3.0) == 4.0
    assert fastl2.mae(2, 7) == 5.0
    assert fastl2.mse([1.0, 2.0], [2.0, 4.0], [1.0, 3.0], reduction="sum") == 13.0
    np.testing.assert_array_equal(fastl2.mse_grad([1.0, 2.0], [2.0, 4.0]), [1.0, 2.0])
    loss, grad = fastl2.mae_and_grad([[1.0, 2.0]], [[2.0, 2.0]], reduction="sum")
    assert loss == 1.0
    np.testing.assert_array_equal(grad, [[1.0, 0.0]])
    assert fastl2.l2_penalty([1.0, 2.0], 0.5) == 2.5
    np.testing.assert_array_equal(fastl2.l2_penalty_grad([1.0, -2.0], 0.5), [1.0, -2.0])


# --------------------------------------------------------------------------- nan and inf

NONFINITE_CASES = {
    # name: (y_true, y_pred, weights)
    "nan_in_y_pred": ([0.0, 1.0, 2.0, 3.0], [np.nan, 1.5, 2.0, 2.0], None),
    "nan_in_y_true": ([0.0, np.nan, 2.0, 3.0], [1.0, 1.5, 2.0, 2.0], None),
    "inf_in_y_true": ([0.0, 1.0, np.inf, 3.0], [1.0, 1.5, 2.0, 2.0], None),
    "minus_inf_in_y_pred": ([0.0, 1.0, 2.0, 3.0], [1.0, -np.inf, 2.0, 2.0], None),
    "inf_minus_inf": ([0.0, np.inf, 2.0, 3.0], [1.0, np.inf, 2.0, 2.0], None),
    "nan_weight": ([0.0, 1.0, 2.0, 3.0], [1.0, 1.5, 2.0, 2.0], [1.0, np.nan, 1.0, 1.0]),
    "zero_weight_times_inf": ([0.0, 1.0, 2.0, 3.0], [1.0, np.inf, 2.0, 2.0], [1.0, 0.0, 1.0, 1.0]),
}


# The other losses' NumPy forms, from their declaration (fastl2._losses), with their
# parameter's default: nan and inf must go through them as through NumPy's operations.
_DECLARED = {loss.function: loss for loss in LOSSES}


def _declared_param(kind):
    parameter = _DECLARED[kind].parameter
    return 0.0 if parameter is None else parameter.default


def _numpy_element(kind, d):
    if kind in ("mse", "rmse"):
        return d * d
    if kind == "mae":
        return np.abs(d)
    return _DECLARED[kind].value(d, _declared_param(kind))


def _numpy_derivative(kind, d):
    """The gradient of the element loss (with the loss's factor)."""
    if kind == "mse":
        return 2 * d
    if kind == "mae":
        return np.sign(d)
    return _DECLARED[kind].grad_scale * _DECLARED[kind].derivative(d, _declared_param(kind))


def _numpy_weighted(form, kind, t, p, w):
    """``form`` (the element loss or its derivative) of ``p - t``, times the weights if any."""
    values = form(kind, p - t)
    return values if w is None else w * values


def _numpy_divisor(reduction, n, w):
    return {"mean": n, "sum": 1.0}.get(reduction, n if w is None else np.sum(w))


def _numpy_loss(kind, t, p, w, reduction):
    element = _numpy_weighted(_numpy_element, kind, t, p, w)
    if reduction in ("none", "sum"):
        return element if reduction == "none" else np.sum(element)
    value = np.sum(element) / _numpy_divisor(reduction, element.size, w)
    return np.sqrt(value) if kind == "rmse" else value


def _numpy_grad(kind, t, p, w, reduction):
    g = _numpy_weighted(_numpy_derivative, kind, t, p, w)
    return g if reduction == "none" else g / _numpy_divisor(reduction, g.size, w)


@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@pytest.mark.parametrize("case", list(NONFINITE_CASES))
def test_nan_and_inf_propagate_like_numpy(backend, case, reduction):
    t, p, w = (None if a is None else np.array(a) for a in NONFINITE_CASES[case])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for kind, func in LOSS_FUNCS.items():
            if kind == "rmse" and reduction in ("sum", "none"):
                continue
            ref.assert_ulp(func(t, p, w, reduction=reduction), _numpy_loss(kind, t, p, w, reduction), 2)
        for kind, grad_name, and_grad_name in zip(LOSS_FUNCTIONS, GRAD_FUNCTIONS, AND_GRAD_FUNCTIONS):
            expected = _numpy_grad(kind, t, p, w, reduction)
            grad_func = getattr(fastl2, grad_name)
            ref.assert_ulp(grad_func(t, p, w, reduction=reduction), expected, 2)
            both = getattr(fastl2, and_grad_name)(t, p, w, reduction=reduction)
            ref.assert_ulp(both[0], _numpy_loss(kind, t, p, w, reduction), 2)
            ref.assert_ulp(both[1], expected, 2)


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_l2_penalty_propagates_nan_and_inf(backend, value):
    params = np.array([1.0, value, 2.0])
    with np.errstate(all="ignore"):
        ref.assert_ulp(fastl2.l2_penalty(params, 0.5), 0.5 * np.sum(params**2), 0)
        ref.assert_ulp(fastl2.l2_penalty_grad(params, 0.5), params, 0)


# --------------------------------------------------------------------------- empty input


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "weighted_mean"])
@funcs(*LOSS_FUNCTIONS, "rmse", *AND_GRAD_FUNCTIONS)
def test_empty_input_mean_is_nan_with_runtime_warning(backend, func, reduction, weighted):
    weights = np.empty(0) if weighted else None
    with pytest.warns(RuntimeWarning, match="Mean of empty slice") as caught:
        result = func(np.empty(0), np.empty(0), weights, reduction=reduction)
    assert [w.filename for w in caught] == [__file__], "the warning does not point at the caller's line"
    loss = result[0] if isinstance(result, tuple) else result
    assert type(loss) is np.float64 and np.isnan(loss)
    if isinstance(result, tuple):
        assert result[1].shape == (0,) and result[1].dtype == np.float64


@funcs(*LOSS_FUNCTIONS, *AND_GRAD_FUNCTIONS)
def test_empty_input_sum_is_zero(backend, func):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = func(np.empty(0, np.float32), np.empty(0, np.float32), reduction="sum")
    loss = result[0] if isinstance(result, tuple) else result
    assert type(loss) is np.float32 and loss == 0.0


@funcs(*LOSS_FUNCTIONS)
def test_empty_input_none_is_an_empty_array(backend, func):
    result = func(np.empty((0, 3)), np.empty((0, 3)), reduction="none")
    assert isinstance(result, np.ndarray) and result.shape == (0, 3)


@pytest.mark.parametrize("reduction", ref.REDUCTIONS)
@funcs(*GRAD_FUNCTIONS)
def test_empty_input_gradient_is_an_empty_array(backend, func, reduction):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = func(np.empty(0, np.float32), np.empty(0, np.float32), reduction=reduction)
    assert isinstance(result, np.ndarray) and result.shape == (0,) and result.dtype == np.float32


def test_empty_l2_penalty_is_zero(backend):
    assert fastl2.l2_penalty(np.empty(0), 2.0) == 0.0
    assert fastl2.l2_penalty_grad(np.empty(0), 2.0).shape == (0,)
