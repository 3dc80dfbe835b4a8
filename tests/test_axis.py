"""Reductions along axes: every loss (cases.LOSS_FUNCTIONS) and rmse with ``axis=`` against the exact
per-output reference.

Every output is compared with ``reference.loss_axis`` (an exact sum per output, rounded once):
float32 results within 1 ulp, float64 within 2 ulp, and almost all float32 results correctly
rounded. Keras' per-sample loss (``axis=-1``) and scikit-learn's per-output loss (``axis=0``,
``multioutput="raw_values"``) are checked through the scalar reference applied to each sample /
column. The bad-axis errors live in test_bad_input.py.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import fastl2
import reference as ref
from cases import LOSS_FUNCTIONS, numba_runs_mix, values, with_backends
from fastl2._plan import BLOCK_SIZE

# Every loss of the table, and rmse (the root of mse: not a loss of the table of its own).
LOSSES = {name: getattr(fastl2, name) for name in LOSS_FUNCTIONS + ("rmse",)}
KIND_REDUCTIONS = [
    (kind, reduction)
    for kind in LOSSES
    for reduction in ("mean", "weighted_mean", "sum")
    if not (kind == "rmse" and reduction == "sum")
]

# (shape, axis): ints, negative ints, tuples in any order, every axis named; 1-D to 4-D; a few
# reductions longer than the deterministic block and outputs that lie across it.
AXIS_CASES = [
    ((7,), 0),
    ((7,), -1),
    ((7,), (0,)),
    ((6, 5), 0),
    ((6, 5), 1),
    ((6, 5), -1),
    ((6, 5), -2),
    ((6, 5), (1, 0)),
    ((4, 3, 5), 0),
    ((4, 3, 5), 1),
    ((4, 3, 5), -1),
    ((4, 3, 5), (0, 2)),
    ((4, 3, 5), (2, 0)),
    ((4, 3, 5), (-1, -2)),
    ((4, 3, 5), (0, 1, 2)),
    ((3, 4, 2, 5), 0),
    ((3, 4, 2, 5), 3),
    ((3, 4, 2, 5), (1, 3)),
    ((3, 4, 2, 5), (3, 1)),
    ((3, 4, 2, 5), (0, 2, 3)),
    ((3, 4, 2, 5), (-4, -1)),
    ((3, 4, 2, 5), (2, 0, 3, 1)),
    ((3, BLOCK_SIZE + 5), -1),
    ((BLOCK_SIZE + 5, 3), 0),
    ((2, BLOCK_SIZE + 1, 3), 1),
]
AXIS_DTYPES = {
    "float32": (np.float32, np.float32, np.float32),
    "float64": (np.float64, np.float64, np.float64),
    "f32_true_f64_pred": (np.float32, np.float64, np.float32),
    "f64_true_f32_pred_f32_weights": (np.float64, np.float32, np.float32),
}
WEIGHTS_KINDS = ("none", "full", "per_sample")


def _seed(*parts) -> int:
    return sum((i + 1) * ord(c) for i, c in enumerate(repr(parts))) % (2**32)


@functools.lru_cache(maxsize=None)
def _inputs(dtype_case, weights_kind, shape):
    """Read-only (y_true, y_pred, weights): weights in [0.1, 2), so no output's weights sum to 0."""
    t_dt, p_dt, w_dt = AXIS_DTYPES[dtype_case]
    rng = np.random.default_rng(_seed(dtype_case, weights_kind, shape))
    y_true = values(rng, t_dt, shape)
    y_pred = values(rng, p_dt, shape)
    weights = None
    if weights_kind != "none":
        w_shape = shape if weights_kind == "full" else shape[:1]
        weights = rng.uniform(0.1, 2.0, w_shape).astype(w_dt)
    for a in (y_true, y_pred, weights):
        if a is not None:
            a.flags.writeable = False
    return y_true, y_pred, weights


def _numba_axis_case(shape, axis, dtype_case):
    """Whether numba runs this case: naming every axis takes the 1-d kernels, other axes the
    strided ones, each with its own float32 / float64 mix (cases.py, "numba dtype mixes")."""
    axes = axis if isinstance(axis, tuple) else (axis,)
    return numba_runs_mix(*AXIS_DTYPES[dtype_case], strided=len(axes) < len(shape))


@functools.lru_cache(maxsize=None)
def _expected(kind, reduction, dtype_case, weights_kind, shape, axis):
    return ref.loss_axis(kind, *_inputs(dtype_case, weights_kind, shape), reduction, axis)


def quiet(func, *args, **kwargs):
    """Call func with RuntimeWarnings turned into errors: ordinary data must not warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        return func(*args, **kwargs)


def check_axis_result(result, expected, shape, axis, *inputs):
    """An ndarray (never a scalar) of the reduced shape and the dtype rule's dtype, within the ulps."""
    dtype = ref.loss_dtype(*inputs)
    assert type(result) is np.ndarray, f"axis={axis!r} must give an ndarray, got {type(result).__name__}"
    assert result.shape == ref.reduced_shape(shape, axis), (
        f"axis={axis!r} on shape {shape}: result shape {result.shape}, expected {ref.reduced_shape(shape, axis)}"
    )
    assert result.dtype == dtype, f"result dtype {result.dtype}, expected {dtype}"
    ref.assert_ulp(result, expected, ref.loss_ulp(dtype))


# --------------------------------------------------------------------------- values, shapes, dtypes


@pytest.mark.parametrize("weights_kind", WEIGHTS_KINDS)
@with_backends(
    "shape,axis,dtype_case",
    [pytest.param(s, a, d, id=f"{s}-axis{a}-{d}") for s, a in AXIS_CASES for d in AXIS_DTYPES],
    on_numba=_numba_axis_case,
)
def test_axis_reduction_matches_exact_per_output_reference(backend, shape, axis, dtype_case, weights_kind):
    """Every loss and reduction, per-sample weights with every axis too."""
    y_true, y_pred, weights = _inputs(dtype_case, weights_kind, shape)
    for kind, reduction in KIND_REDUCTIONS:
        result = quiet(LOSSES[kind], y_true, y_pred, weights, axis=axis, reduction=reduction)
        expected = _expected(kind, reduction, dtype_case, weights_kind, shape, axis)
        check_axis_result(result, expected, shape, axis, y_true, y_pred, weights)


@pytest.mark.parametrize("shape", [(9,), (5, 4), (3, 4, 5), (2, 3, 2, 3)], ids=str)
@pytest.mark.parametrize("kind,reduction", KIND_REDUCTIONS)
def test_naming_every_axis_gives_a_0d_array_equal_to_axis_none(backend, kind, reduction, shape):
    y_true, y_pred, weights = _inputs("float32", "per_sample", shape)
    scalar = quiet(LOSSES[kind], y_true, y_pred, weights, reduction=reduction)
    assert type(scalar) is np.float32, f"axis=None must give a NumPy scalar, got {type(scalar).__name__}"
    every_axis = [tuple(range(len(shape))), tuple(reversed(range(-len(shape), 0)))]
    if len(shape) == 1:
        every_axis += [0, -1]
    for axis in every_axis:
        result = quiet(LOSSES[kind], y_true, y_pred, weights, axis=axis, reduction=reduction)
        assert type(result) is np.ndarray and result.shape == () and result.dtype == np.float32, (
            f"axis={axis!r} naming every axis must give a 0-d float32 ndarray, got {result!r}"
        )
        assert result.tobytes() == np.asarray(scalar).tobytes(), f"axis={axis!r}: {result!r} != {scalar!r}"


def test_numpy_integer_axes_are_accepted(backend):
    y_true, y_pred, _ = _inputs("float64", "none", (6, 5))
    expected = fastl2.mse(y_true, y_pred, axis=1)
    for axis in (np.int64(1), np.int32(-1), (np.intp(1),)):
        np.testing.assert_array_equal(fastl2.mse(y_true, y_pred, axis=axis), expected)


def test_empty_axis_tuple_reduces_nothing_like_numpy(backend):
    """NumPy's rule: axis=() reduces no axis, so every output is one element's loss."""
    y_true, y_pred, weights = _inputs("float64", "full", (4, 3, 5))
    expected = ref.loss("mse", y_true, y_pred, weights, "none")
    result = quiet(fastl2.mse, y_true, y_pred, weights, axis=(), reduction="sum")
    assert type(result) is np.ndarray and result.shape == (4, 3, 5)
    ref.assert_ulp(result, expected, 2)


OTHER_DTYPES = {
    "float16": (np.float16, np.float16),
    "f16_true_f32_pred": (np.float16, np.float32),
    "int8": (np.int8, np.int8),
    "int32_true_f32_pred": (np.int32, np.float32),
    "int64": (np.int64, np.int64),
    "uint8_true_f16_pred": (np.uint8, np.float16),
    "bool_true_f64_pred": (bool, np.float64),
}


# On numba, weights of another kernel dtype than y_true's (float16 weights on integer data,
# integer weights on float16 data) run on cython and numpy only: further float32 / float64 mixes
# (cases.py, "numba dtype mixes"); the conversions are fastl2._plan's, the same for every backend.
@with_backends(
    "dtype_case,weights_dtype",
    [pytest.param(d, w, id=f"{d}-{w_id}") for d in OTHER_DTYPES
     for w, w_id in ((None, "unweighted"), (np.float16, "f16_w"), (np.int64, "int_w"))],
    on_numba=lambda dtype_case, weights_dtype: numba_runs_mix(*OTHER_DTYPES[dtype_case], weights_dtype,
                                                              strided=True),
)
def test_float16_integer_and_bool_inputs_along_axes_follow_the_dtype_rule(backend, dtype_case, weights_dtype):
    t_dt, p_dt = OTHER_DTYPES[dtype_case]
    rng = np.random.default_rng(_seed(dtype_case, str(weights_dtype)))
    shape = (40, 3, 7)
    y_true, y_pred = values(rng, t_dt, shape), values(rng, p_dt, shape)
    weights = None if weights_dtype is None else rng.integers(1, 4, shape[0]).astype(weights_dtype)
    for axis in (0, -1, (0, 2)):
        for kind, reduction in KIND_REDUCTIONS:
            result = quiet(LOSSES[kind], y_true, y_pred, weights, axis=axis, reduction=reduction)
            expected = ref.loss_axis(kind, y_true, y_pred, weights, reduction, axis)
            check_axis_result(result, expected, shape, axis, y_true, y_pred, weights)


def test_float32_axis_results_are_correctly_rounded_almost_always(backend):
    """Beyond the 1-ulp bound: at least 99% of the float32 outputs equal the exact value rounded once."""
    rng = np.random.default_rng(20240)
    equal = total = 0
    for case in range(120):
        ndim = 2 if case % 3 else 3
        shape = tuple(int(s) for s in rng.integers(1, 40 if ndim == 3 else 300, ndim))
        axis = [0, -1, (0, ndim - 1), 1][case % 4]
        y_true = (rng.standard_normal(shape) * 3).astype(np.float32)
        y_pred = (rng.standard_normal(shape) * 3).astype(np.float32)
        weights = rng.uniform(0.1, 2.0, shape).astype(np.float32) if case % 2 else None
        kind = LOSS_FUNCTIONS[case % 5 % len(LOSS_FUNCTIONS)]
        reduction = ("mean", "weighted_mean", "sum")[case % 7 % 3]
        result = quiet(LOSSES[kind], y_true, y_pred, weights, axis=axis, reduction=reduction)
        expected = ref.loss_axis(kind, y_true, y_pred, weights, reduction, axis)
        ref.assert_ulp(result, expected, 1)
        rounded = ref.round_exact(expected, np.float32)
        assert result.dtype == np.float32 and result.shape == rounded.shape
        equal += int(np.count_nonzero(result == rounded))
        total += rounded.size
    assert total > 5_000, total  # enough outputs for the percentage to mean something
    assert equal >= 0.99 * total, f"only {equal} of {total} float32 outputs are correctly rounded"


# --------------------------------------------------------------------------- peers' conventions


@pytest.mark.parametrize("kind", LOSS_FUNCTIONS)
@pytest.mark.parametrize("shape", [(8, 5), (4, 6, 3), (6,)], ids=str)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_axis_minus_one_is_keras_per_sample_loss(backend, dtype, shape, kind):
    """Keras' MeanSquaredError / MeanAbsoluteError per sample: the mean over the last axis of each
    sample, here computed with the scalar reference on each sample's row."""
    rng = np.random.default_rng(_seed(kind, shape))
    y_true, y_pred = values(rng, dtype, shape), values(rng, dtype, shape)
    result = quiet(LOSSES[kind], y_true, y_pred, axis=-1)
    assert type(result) is np.ndarray and result.shape == shape[:-1] and result.dtype == dtype
    for index in np.ndindex(shape[:-1]):
        expected = ref.loss(kind, y_true[index], y_pred[index], None, "mean")
        ref.assert_ulp(result[index], expected, ref.loss_ulp(dtype), dtype=dtype)


def _sklearn_case(dtype=np.float64):
    rng = np.random.default_rng(77)
    y_true = values(rng, dtype, (1000, 4))
    y_pred = values(rng, dtype, (1000, 4))
    sample_weight = rng.uniform(0.0, 3.0, 1000).astype(dtype)
    sample_weight[::10] = 0.0  # zero sample weights are legal
    return y_true, y_pred, sample_weight


@pytest.mark.parametrize("kind", LOSS_FUNCTIONS + ("rmse",))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_axis_zero_weighted_mean_with_sample_weights_is_sklearn_raw_values(backend, dtype, kind):
    """scikit-learn's ``multioutput="raw_values"`` with ``sample_weight``: per column, the weighted
    average over the samples (the scalar reference on each column)."""
    y_true, y_pred, sample_weight = _sklearn_case(dtype)
    result = quiet(LOSSES[kind], y_true, y_pred, sample_weight, axis=0, reduction="weighted_mean")
    assert type(result) is np.ndarray and result.shape == (4,) and result.dtype == dtype
    for column in range(4):
        expected = ref.loss(kind, y_true[:, column], y_pred[:, column], sample_weight, "weighted_mean")
        ref.assert_ulp(result[column], expected, ref.loss_ulp(dtype), dtype=dtype)


# (the losses scikit-learn has metrics of: not the whole table)
@pytest.mark.parametrize("kind", ["mse", "mae", "rmse"])
def test_axis_zero_weighted_mean_agrees_with_sklearn_itself(backend, kind):
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is an optional peer; not installed here")
    y_true, y_pred, sample_weight = _sklearn_case(np.float64)
    if kind == "rmse":
        if not hasattr(metrics, "root_mean_squared_error"):
            pytest.skip("this scikit-learn has no root_mean_squared_error (added in 1.4)")
        peer = metrics.root_mean_squared_error
    else:
        peer = {"mse": metrics.mean_squared_error, "mae": metrics.mean_absolute_error}[kind]
    expected = peer(y_true, y_pred, sample_weight=sample_weight, multioutput="raw_values")
    result = LOSSES[kind](y_true, y_pred, sample_weight, axis=0, reduction="weighted_mean")
    # scikit-learn sums in float64 with np.average (not exactly): agreement to ~1e-12, not bits.
    np.testing.assert_allclose(result, expected, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------- empty reductions


EMPTY_CASES = [((0, 3), 0), ((3, 0), -1), ((0, 3), (0, 1)), ((2, 0, 4), 1), ((0, 2, 3), (0, 2)),
               ((0, 0), 0)]
# (an operand dtype and the result's: float32 stays float32, the others give float64)
EMPTY_DTYPES = [(np.float32, np.float32), (np.float64, np.float64), (np.int64, np.float64)]


@pytest.mark.parametrize("dtype,result_dtype", EMPTY_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind,reduction", [kr for kr in KIND_REDUCTIONS if kr[1] != "sum"])
@pytest.mark.parametrize("shape,axis", EMPTY_CASES, ids=[f"{s}-axis{a}" for s, a in EMPTY_CASES])
def test_mean_over_empty_axes_is_nan_per_output_with_runtime_warning(backend, shape, axis, kind, reduction, weighted,
                                                                       dtype, result_dtype):
    y = np.zeros(shape, dtype)
    weights = np.zeros(shape[:1], dtype) if weighted else None
    with pytest.warns(RuntimeWarning, match="Mean of empty slice") as caught:
        result = LOSSES[kind](y, y, weights, axis=axis, reduction=reduction)
    assert [w.filename for w in caught] == [__file__], "the warning does not point at the caller's line"
    assert type(result) is np.ndarray and result.dtype == result_dtype
    assert result.shape == ref.reduced_shape(shape, axis)
    assert np.isnan(result).all()


@pytest.mark.parametrize("kind", LOSS_FUNCTIONS)
@pytest.mark.parametrize("shape,axis", EMPTY_CASES, ids=[f"{s}-axis{a}" for s, a in EMPTY_CASES])
def test_sum_over_empty_axes_is_zero_per_output(backend, shape, axis, kind):
    y = np.empty(shape)
    result = quiet(LOSSES[kind], y, y, axis=axis, reduction="sum")
    assert type(result) is np.ndarray and result.dtype == np.float64
    assert result.shape == ref.reduced_shape(shape, axis)
    assert (result == 0).all()


@pytest.mark.parametrize("dtype,result_dtype", EMPTY_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind,reduction", KIND_REDUCTIONS)
def test_no_outputs_gives_an_empty_array_without_warning(backend, kind, reduction, dtype, result_dtype):
    """(0, 3) reduced along axis 1: no outputs, so nothing is an empty mean."""
    y = np.empty((0, 3), dtype)
    result = quiet(LOSSES[kind], y, y, np.empty(0, dtype), axis=1, reduction=reduction)
    assert type(result) is np.ndarray and result.shape == (0,) and result.dtype == result_dtype


# --------------------------------------------------------------------------- threads


@functools.lru_cache(maxsize=None)
def _thread_data():
    rng = np.random.default_rng(31337)
    def make(shape, dtype):
        return (rng.standard_normal(shape) * 3).astype(dtype)
    return {
        "t1": make(200_003, np.float32), "p1": make(200_003, np.float32),
        "t_rows": make((3, 70_001), np.float64), "p_rows": make((3, 70_001), np.float64),
        "w_rows": rng.uniform(0.1, 2, (3, 70_001)),
        "t_cols": make((70_001, 3), np.float32), "p_cols": make((70_001, 3), np.float32),
        "w_cols": rng.uniform(0.1, 2, 70_001).astype(np.float32),
        "t_short": make((40_000, 5), np.float32), "p_short": make((40_000, 5), np.float32),
        "t3": make((40, 3000, 3), np.float64), "p3": make((40, 3000, 3), np.float64),
        "tT": make((3000, 50), np.float32).T, "pT": make((3000, 50), np.float32).T,
    }


# name -> (function, args, kwargs): each call has more than 65536 elements, so it is threaded.
THREAD_CALLS = {
    "1d_whole_array_axis0": ("mse", ("t1", "p1", None), {"axis": 0}),
    "long_rows_axis_minus1": ("mse", ("t_rows", "p_rows", "w_rows"), {"axis": -1, "reduction": "weighted_mean"}),
    "long_strided_columns_axis0": ("mae", ("t_cols", "p_cols", "w_cols"), {"axis": 0, "reduction": "mean"}),
    "many_short_outputs_axis_minus1": ("mae", ("t_short", "p_short", None), {"axis": -1, "reduction": "sum"}),
    "3d_outer_and_inner_axes": ("rmse", ("t3", "p3", None), {"axis": (0, 2)}),
    "3d_two_leading_axes": ("mse", ("t3", "p3", None), {"axis": (1, 0), "reduction": "sum"}),
    "transposed_axis0": ("mse", ("tT", "pT", None), {"axis": 0}),
}


@pytest.mark.parametrize("call", list(THREAD_CALLS))
def test_axis_results_are_bit_identical_for_1_2_and_7_threads(backend, call, restore_num_threads):
    kind, names, kwargs = THREAD_CALLS[call]
    data = _thread_data()
    args = [None if n is None else data[n] for n in names]
    results = {}
    for threads in (1, 2, 7):
        fastl2.set_num_threads(threads)
        result = quiet(LOSSES[kind], *args, **kwargs)
        results[threads] = (result.dtype.str, result.shape, result.tobytes())
    assert results[2] == results[1], f"{call}: 2 threads differ from 1 thread"
    assert results[7] == results[1], f"{call}: 7 threads differ from 1 thread"
    expected = ref.loss_axis(kind, *args, kwargs.get("reduction", "mean"), kwargs["axis"])
    ref.assert_ulp(np.frombuffer(results[1][2], results[1][0]).reshape(results[1][1]), expected,
                   ref.loss_ulp(results[1][0]))


# --------------------------------------------------------------------------- 10**8 float32 elements

BIG_ROWS = 5 * 10**7


def _exact_column_mse(y_true, y_pred, chunk=1 << 22):
    """Exact mean of (float64(p) - float64(t))**2 per column, chunk by chunk, with the reference's
    machinery: ``d * d`` is exact where d has at most 26 significant bits (most differences of float32
    values); elsewhere two_product supplies the rounding error. exact_row_sums adds without error."""
    columns = y_true.shape[1]
    totals = [0] * columns
    low_bits = np.uint64((1 << 27) - 1)
    for start in range(0, y_true.shape[0], chunk):
        d = (y_pred[start : start + chunk].astype(np.float64) - y_true[start : start + chunk]).T.copy()
        squares = d * d
        sums = ref.exact_row_sums(squares)
        for column in range(columns):
            inexact = d[column][(d[column].view(np.uint64) & low_bits) != 0]
            errors = ref.two_product(inexact, inexact)[1]
            sums[column] += ref.exact_row_sums(errors[None, :])[0]
        totals = [a + b for a, b in zip(totals, sums)]
    return np.array([t / y_true.shape[0] for t in totals], dtype=object)


@pytest.fixture(scope="module")
def big_columns():
    rng = np.random.default_rng(2**31 - 1)
    # One draw of 10**8 + 1 normals serves both (neighbours pair up): half the time of two draws.
    normals = rng.standard_normal(2 * BIG_ROWS + 1, dtype=np.float32)
    normals.flags.writeable = False
    y_true = normals[:-1].reshape(BIG_ROWS, 2)
    y_pred = normals[1:].reshape(BIG_ROWS, 2)
    return y_true, y_pred, _exact_column_mse(y_true, y_pred)


def test_per_column_mse_of_5e7_float32_rows_is_exact_to_1_ulp(backend, big_columns):
    """The issue's case: float32 accumulation (NumPy, scikit-learn) is far off here; fastl2 sums in
    float64 or better and rounds once."""
    y_true, y_pred, expected = big_columns
    result = fastl2.mse(y_true, y_pred, axis=0)
    assert type(result) is np.ndarray and result.shape == (2,) and result.dtype == np.float32
    ref.assert_ulp(result, expected, 1)


# An output whose exact loss sum is 0 and whose weights sum below 0 is +0.0 (the exact value
# rounded once), as the pooled float64 call gives it; the per-output path of bounded-granularity
# data, and every float32 path (fast paths, planned, per output), divided the exact 0 by the
# negative weight sum: -0.0 (found through fastl2.metrics and the streaming metrics).
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", ["mse", "mae", "huber", "rmse"])
def test_an_exact_zero_over_a_negative_weight_sum_is_positive_zero_on_every_path(backend, kind, dtype):
    function = getattr(fastl2, kind)
    y = np.array([[0.5, -2.0, 3.0], [1.0, 4.0, 0.0]], dtype)
    for weights in (np.array([-1.0, -2.0]), np.array([-3.0, 1.0]), np.array([[-1.0, -2.0, -1.0], [-1.0, 0.5, -2.0]])):
        weights = weights.astype(dtype)  # (float32 weights: the float32 fast paths)
        pooled = function(y, y.copy(), weights, reduction="weighted_mean")
        assert np.asarray(pooled).tobytes() == np.zeros((), pooled.dtype).tobytes()
        if weights.ndim == 2:
            for flat in (function(y.ravel(), y.ravel().copy(), weights.ravel(), reduction="weighted_mean"),
                         function(y[:, ::-1], y[:, ::-1].copy(), weights[:, ::-1], reduction="weighted_mean")):
                assert np.asarray(flat).tobytes() == np.zeros((), flat.dtype).tobytes()
            if kind in ("mse", "mae", "huber"):
                loss, _ = getattr(fastl2, kind + "_and_grad")(y.ravel(), y.ravel().copy(), weights.ravel(),
                                                             reduction="weighted_mean")
                assert np.asarray(loss).tobytes() == np.zeros((), loss.dtype).tobytes()
        for axis in (0, 1, -1, (0, 1)):
            if weights.ndim == 1 and axis != 0 and axis != (0, 1):
                continue  # (one weight per sample reduces along the samples' axis here)
            values = function(y, y.copy(), weights, axis=axis, reduction="weighted_mean")
            assert np.asarray(values).tobytes() == np.zeros_like(values).tobytes(), (weights, axis, values)
