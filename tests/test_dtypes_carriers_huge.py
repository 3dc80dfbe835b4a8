"""Inputs of other kinds: float16 / integer / bool inputs follow the dtype rule (of any layout);
DLPack-only objects, array.array, memoryviews and PyTorch tensors are read in place; more than
2**31 elements are all counted (the layouts themselves: test_layouts_nocopy.py).
"""
from __future__ import annotations

import array

import numpy as np
import pytest

import fastl2
import reference as ref
from cases import numba_runs_mix, values, with_backends
from field_faults import DLPackOnly
from layout_checks import DTYPES, GRADS, LOSS_REDUCTIONS, LOSSES, MB, contiguous, kind_of, quiet, snapshot, traced_peak


# --------------------------------------------------------------------------- float16, integers, bools

OTHER_DTYPES = {
    "float16": (np.float16, np.float16, np.float16),
    "f16_true_f32_pred": (np.float16, np.float32, None),
    "int8": (np.int8, np.int8, None),
    "int32": (np.int32, np.int32, np.int32),
    "int64_true_f32_pred": (np.int64, np.float32, None),
    "uint8": (np.uint8, np.uint8, np.uint8),
    "f32_true_uint8_pred": (np.float32, np.uint8, None),
    "bool": (bool, bool, None),
    "bool_true_f16_pred": (bool, np.float16, np.float16),
    "f16_true_int32_pred": (np.float16, np.int32, np.float16),
}


def _other(rng, dtype, shape, weights=False):
    dtype = np.dtype(dtype)
    if weights:
        if dtype.kind in "iu":
            return rng.integers(1, 4, shape).astype(dtype)
        return rng.uniform(0.1, 2, shape).astype(dtype)
    if dtype.kind == "u":
        return rng.integers(0, 50, shape).astype(dtype)
    return values(rng, dtype, shape)


def _numba_other_dtypes_case(dtype_case, strided):
    """Whether numba runs this case: the cases whose converted dtypes are a further float32 /
    float64 mix (weights of another kernel dtype than y_true's; float32 y_true with integer
    y_pred on the 1-d kernels) run on cython and numpy only (cases.py, "numba dtype mixes"): the
    conversions are fastl2._plan's, the same for every backend, and numba keeps every input kind
    (float16, int8, int32, int64, uint8, bool).  Converted inputs are fresh C-contiguous arrays:
    the strided kernels run only when some input is float32/float64 already."""
    dtypes = [np.dtype(d) for d in OTHER_DTYPES[dtype_case] if d is not None]
    strided = strided and any(d.kind == "f" and d.itemsize >= 4 for d in dtypes)
    return numba_runs_mix(*OTHER_DTYPES[dtype_case], strided=strided)


@with_backends(
    "dtype_case,strided",
    [pytest.param(d, st, id=f"{d}-{st_id}") for d in OTHER_DTYPES
     for st, st_id in ((False, "contiguous"), (True, "strided"))],
    on_numba=_numba_other_dtypes_case,
)
def test_float16_integer_and_bool_inputs_follow_the_dtype_rule(backend, dtype_case, strided):
    t_dt, p_dt, w_dt = OTHER_DTYPES[dtype_case]
    rng = np.random.default_rng(len(dtype_case))
    shape = (40, 6)
    pick = (lambda a: a[::2, ::-3]) if strided else (lambda a: a)
    big = (80, 18) if strided else shape
    y_true, y_pred = pick(_other(rng, t_dt, big)), pick(_other(rng, p_dt, big))
    weights = None if w_dt is None else pick(_other(rng, w_dt, big, weights=True))
    assert y_pred.shape == shape
    before = snapshot(y_true, y_pred, weights)
    loss_dtype = ref.loss_dtype(y_true, y_pred, weights)
    grad_dtype = ref.grad_dtype(y_pred)
    for kind, reduction in LOSS_REDUCTIONS:
        for axis in ([None] if reduction == "none" else [None, 0, -1]):
            result = quiet(LOSSES[kind], y_true, y_pred, weights, axis=axis, reduction=reduction)
            assert np.asarray(result).dtype == loss_dtype, f"{kind}/{reduction}/axis={axis}: {np.asarray(result).dtype}"
            if axis is None:
                expected = ref.loss(kind, y_true, y_pred, weights, reduction)
            else:
                expected = ref.loss_axis(kind, y_true, y_pred, weights, reduction, axis)
            ref.assert_ulp(result, expected, ref.loss_ulp(loss_dtype))
    for name, func in GRADS.items():
        for reduction in ref.REDUCTIONS:
            result = quiet(func, y_true, y_pred, weights, reduction=reduction)
            grad = result[1] if isinstance(result, tuple) else result
            assert grad.dtype == grad_dtype and grad.shape == shape, f"{name}: {grad.dtype} {grad.shape}"
            ref.assert_ulp(grad, ref.grad(kind_of(name), y_true, y_pred, weights, reduction),
                           ref.grad_ulp(grad_dtype))
    grad = fastl2.l2_penalty_grad(y_pred, 0.5)
    assert grad.dtype == grad_dtype
    ref.assert_ulp(grad, ref.l2_penalty_grad(y_pred, 0.5), ref.grad_ulp(grad_dtype))
    assert snapshot(y_true, y_pred, weights) == before


# --------------------------------------------------------------------------- DLPack, buffers, torch


DLPACK_LAYOUTS = {
    "contiguous": lambda a: a,
    "transposed": lambda a: a.T,
    "step_slice": lambda a: a[::2, 1::3],
    "reversed": lambda a: a[::-1],
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("layout", list(DLPACK_LAYOUTS))
def test_dlpack_only_objects_are_read_in_place(backend, layout, dtype):
    rng = np.random.default_rng(6)
    y_true, y_pred = (DLPACK_LAYOUTS[layout]((rng.standard_normal((2000, 600)) * 3).astype(dtype)) for _ in range(2))
    wrapped_true, wrapped_pred = DLPackOnly(y_true), DLPackOnly(y_pred)
    copies = contiguous(y_true, y_pred)
    ref.assert_ulp(fastl2.mse(wrapped_true, wrapped_pred), ref.loss("mse", *copies), ref.loss_ulp(dtype))
    ref.assert_ulp(fastl2.mae(wrapped_true, wrapped_pred, axis=0), ref.loss_axis("mae", *copies, axis=0),
                   ref.loss_ulp(dtype))
    loss, grad = fastl2.mse_and_grad(wrapped_true, wrapped_pred)
    ref.assert_ulp(grad, ref.grad("mse", *copies), ref.grad_ulp(dtype))
    assert wrapped_true.exports >= 3 and wrapped_pred.exports >= 3, "the objects were not read through __dlpack__"
    # In place: a copy of one input would be several MB.
    peak, _ = traced_peak(lambda: fastl2.mse(wrapped_true, wrapped_pred, axis=-1))
    assert peak < 1 * MB + 48 * y_pred.shape[0] + (4 * MB if backend == "numpy" else 0), (
        f"reading __dlpack__ objects peaked at {peak / MB:.2f} MB: were they copied?"
    )


@pytest.mark.parametrize("typecode", ["d", "f", "i"])
def test_array_array_inputs_work(backend, typecode):
    rng = np.random.default_rng(7)
    t = values(rng, np.float64, 1000) if typecode != "i" else rng.integers(-20, 20, 1000)
    p = values(rng, np.float64, 1000) if typecode != "i" else rng.integers(-20, 20, 1000)
    y_true, y_pred = array.array(typecode, t.tolist()), array.array(typecode, p.tolist())
    as_np = [np.asarray(y_true), np.asarray(y_pred)]
    result = fastl2.mse(y_true, y_pred)
    dtype = ref.loss_dtype(*as_np)
    assert type(result) is dtype.type
    ref.assert_ulp(result, ref.loss("mse", *as_np), ref.loss_ulp(dtype))
    grad = fastl2.mae_grad(y_true, y_pred)
    assert grad.dtype == ref.grad_dtype(as_np[1])
    ref.assert_ulp(grad, ref.grad("mae", *as_np), ref.grad_ulp(grad.dtype))


@pytest.mark.parametrize("layout", ["contiguous", "strided", "2d_reversed_columns"])
def test_memoryview_inputs_work(backend, layout):
    rng = np.random.default_rng(8)
    base_t = (rng.standard_normal((50, 40)) * 3).astype(np.float32)
    base_p = (rng.standard_normal((50, 40)) * 3).astype(np.float32)
    pick = {"contiguous": lambda a: a, "strided": lambda a: a[::2], "2d_reversed_columns": lambda a: a[:, ::-1]}[layout]
    y_true, y_pred = pick(base_t), pick(base_p)
    copies = contiguous(y_true, y_pred)
    result = fastl2.mse(memoryview(y_true), memoryview(y_pred), axis=0)
    assert result.dtype == np.float32
    ref.assert_ulp(result, ref.loss_axis("mse", *copies, axis=0), 1)
    ref.assert_ulp(fastl2.mae(memoryview(y_true), memoryview(y_pred)), ref.loss("mae", *copies), 1)


def _unaligned(a):
    buffer = np.zeros(a.nbytes + 1, np.uint8)[1:].view(a.dtype).reshape(a.shape)
    buffer[...] = a
    return buffer


@pytest.mark.parametrize("layout", ["contiguous", "strided", "2d", "unaligned", "array.array"])
def test_buffers_are_one_array_of_params(backend, layout):
    # A buffer is one array of params, read whole (never iterated: the fuzzer found that a
    # memoryview of an unaligned array, format '=d', raised NotImplementedError, as 2-d ones do)
    base = np.random.default_rng(9).standard_normal((6, 7))
    array_form = {"contiguous": base, "strided": base[:, ::2], "2d": base, "unaligned": _unaligned(base),
                  "array.array": base.ravel()}[layout]
    buffer = array.array("d", base.ravel().tolist()) if layout == "array.array" else memoryview(array_form)
    expected = fastl2.l2_penalty(np.array(array_form), 0.5)
    assert fastl2.l2_penalty(buffer, 0.5) == expected
    ref.assert_ulp(expected, ref.l2_penalty(np.array(array_form), 0.5), 2)
    assert fastl2.l2_penalty([buffer, np.ones(3)], 0.5) == fastl2.l2_penalty([np.array(array_form), np.ones(3)], 0.5)
    np.testing.assert_array_equal(fastl2.l2_penalty_grad(buffer, 0.5), 1.0 * np.array(array_form))


TORCH_LAYOUTS = {
    "contiguous": lambda x: x,
    "transposed": lambda x: x.t(),
    "sliced": lambda x: x[::2, 1::3],
    "sliced_transposed": lambda x: x[1::3].t(),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", list(TORCH_LAYOUTS))
def test_torch_cpu_tensors_are_read_in_place(backend, layout, dtype):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional peer; not installed here")
    generator = torch.Generator().manual_seed(9)
    make = lambda: TORCH_LAYOUTS[layout](torch.randn(3000, 500, generator=generator, dtype=getattr(torch, dtype)) * 3)
    y_true, y_pred = make(), make()
    copies = [np.ascontiguousarray(x.numpy()) for x in (y_true, y_pred)]
    np_dtype = np.dtype(dtype)
    result = fastl2.mse(y_true, y_pred)
    assert type(result) is np_dtype.type
    ref.assert_ulp(result, ref.loss("mse", *copies), ref.loss_ulp(np_dtype))
    ref.assert_ulp(fastl2.mae(y_true, y_pred, axis=0), ref.loss_axis("mae", *copies, axis=0), ref.loss_ulp(np_dtype))
    loss, grad = fastl2.mse_and_grad(y_true, y_pred, reduction="sum")
    assert isinstance(grad, np.ndarray) and grad.shape == tuple(y_pred.shape) and grad.dtype == np_dtype
    ref.assert_ulp(grad, ref.grad("mse", *copies, reduction="sum"), ref.grad_ulp(np_dtype))
    # In place: torch's own memory is not traced, but a NumPy copy of an input (several MB) would be.
    peak, _ = traced_peak(lambda: fastl2.mse(y_true, y_pred, axis=0))
    assert peak < 1 * MB + 48 * y_pred.shape[1] + (4 * MB if backend == "numpy" else 0), (
        f"reading torch tensors peaked at {peak / MB:.2f} MB of traced memory: were they copied?"
    )


# --------------------------------------------------------------------------- more than 2**31 elements

HUGE = 3 * 10**9  # > 2**31 (and zero strides: no memory)
# The NumPy backend walks chunks of 16384 elements in Python, ~6.5 s per 2**31 elements on a 2-core
# machine; it gets one 1-D case just above 2**31 (its index arithmetic is Python ints and int64 arrays).
HUGE_NUMPY = 2**31 + 8193


def _huge_pair(n):
    return np.broadcast_to(np.float32(1.0), (n,)), np.broadcast_to(np.float32(1.5), (n,))


@pytest.mark.parametrize("case", ["mse_mean", "mse_sum", "mae_mean"])
def test_more_than_2_31_elements_are_all_counted(backend, case):
    if backend == "numpy" and case != "mse_mean":
        pytest.skip("the NumPy backend takes ~6.5 s per 2**31 elements: its one >2**31 case is mse_mean")
    n = HUGE_NUMPY if backend == "numpy" else HUGE
    y_true, y_pred = _huge_pair(n)
    assert y_pred.size > 2**31
    if case == "mse_mean":
        result = fastl2.mse(y_true, y_pred)
        assert type(result) is np.float32 and result == 0.25
    elif case == "mse_sum":
        result = fastl2.mse(y_true, y_pred, reduction="sum")
        assert type(result) is np.float32 and result == np.float32(0.25 * n)  # 7.5e8: exact in float32
        assert 0.25 * n == 7.5e8
    else:
        result = fastl2.mae(y_true, y_pred)
        assert type(result) is np.float32 and result == 0.5


HUGE_ROWS, HUGE_COLUMNS = 3 * 10**4, 10**5  # 3e9 elements


@pytest.fixture(scope="module")
def huge_rows():
    rng = np.random.default_rng(10)
    row_true = (rng.standard_normal((1, HUGE_COLUMNS)) * 3).astype(np.float32)
    row_pred = (rng.standard_normal((1, HUGE_COLUMNS)) * 3).astype(np.float32)
    return row_true, row_pred


@pytest.mark.parametrize("axis", [0, -1])
def test_more_than_2_31_elements_along_axes(backend, huge_rows, axis):
    if backend == "numpy":
        pytest.skip("the NumPy backend would take 15-80 s here (3e9 elements in Python-driven chunks); "
                    "its >2**31 case is test_more_than_2_31_elements_are_all_counted[numpy-mse_mean]")
    row_true, row_pred = huge_rows
    y_true = np.broadcast_to(row_true, (HUGE_ROWS, HUGE_COLUMNS))  # every row the same: zero strides
    y_pred = np.broadcast_to(row_pred, (HUGE_ROWS, HUGE_COLUMNS))
    assert y_pred.size > 2**31
    if axis == 0:
        result = fastl2.mse(y_true, y_pred, axis=0)
        # each column holds HUGE_ROWS copies of one element: its mean is that element's loss
        expected = ref.loss_axis("mse", row_true, row_pred, None, "mean", 0)
        assert result.shape == (HUGE_COLUMNS,)
    else:
        result = fastl2.mae(y_true, y_pred, axis=-1)
        # every row is the same row: each output is the row's mean
        expected = np.full(HUGE_ROWS, ref.loss("mae", row_true[0], row_pred[0]), dtype=object)
        assert result.shape == (HUGE_ROWS,)
    assert result.dtype == np.float32
    ref.assert_ulp(result, expected, 1)
