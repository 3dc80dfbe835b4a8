"""Inputs of any memory layout are read where they lie: exact results, no copies.

Every layout (C / Fortran order, transposes, step slices, negative and zero strides, read-only,
memory-mapped, mixed float32/float64) gives, for every loss, reduction and axis, the exact
reference's value computed on C-contiguous copies; gradients follow y_pred's layout and may be
written into any writable ``out``. tracemalloc shows that large float32 inputs are not copied.
Float16 / integer / bool inputs, DLPack, buffer-protocol and PyTorch inputs, and more than 2**31
elements: test_dtypes_carriers_huge.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastl2
import reference as ref
from cases import LOSS_FUNCTIONS
from layout_checks import DTYPES, GRADS, LOSS_REDUCTIONS, LOSSES, MB, contiguous, kind_of, quiet, snapshot, traced_peak


# --------------------------------------------------------------------------- layouts


def _base(rng, shape, dtype, weights=False):
    if weights:
        return rng.uniform(0.1, 2.0, shape).astype(dtype)
    return (rng.standard_normal(shape) * 3).astype(dtype)


def make_layout(name, dtype, tmp_path, seed=0):
    """(y_true, y_pred, full weights, per-sample weights), each laid out as ``name`` says."""
    rng = np.random.default_rng(seed + len(name))

    def three(build, shape, dt=dtype):
        return build(_base(rng, shape, dt)), build(_base(rng, shape, dt)), build(_base(rng, shape, dt, True))

    if name == "c_order":
        t, p, w = three(lambda a: a, (30, 20))
    elif name == "fortran_order":
        t, p, w = three(np.asfortranarray, (30, 20))
    elif name == "transposed":
        t, p, w = three(lambda a: a.T, (20, 30))
    elif name == "transpose_permutation_3d":
        t, p, w = three(lambda a: np.transpose(a, (2, 0, 1)), (5, 6, 7))
    elif name == "step_2":
        t, p, w = three(lambda a: a[::2], (1201,))
    elif name == "columns_step_3":
        t, p, w = three(lambda a: a[:, ::3], (30, 61))
    elif name == "odd_rows_reversed_columns":
        t, p, w = three(lambda a: a[1::2, ::-1], (61, 20))
    elif name == "negative_strides":
        t, p, w = three(lambda a: a[::-1], (601,))
    elif name == "negative_strides_2d":
        t, p, w = three(lambda a: a[::-1, ::-2], (30, 41))
    elif name == "zero_strides":
        t = np.broadcast_to(_base(rng, (1, 20), dtype), (30, 20))
        p = np.broadcast_to(_base(rng, (30, 1), dtype), (30, 20))
        w = np.broadcast_to(_base(rng, (), dtype, True), (30, 20))
    elif name == "read_only":
        t, p, w = three(lambda a: a[::2], (60, 20))
        for a in (t, p, w):
            a.flags.writeable = False
    elif name == "memmap":
        stacked = np.stack([_base(rng, (30, 20), dtype), _base(rng, (30, 20), dtype),
                            _base(rng, (30, 20), dtype, True)])
        path = tmp_path / f"layout_{np.dtype(dtype).name}.npy"
        np.save(path, stacked)
        mapped = np.load(path, mmap_mode="r")
        assert isinstance(mapped, np.memmap)
        t, p, w = mapped[0], mapped[1][:, ::-1], mapped[2]
    elif name == "mixed_float32_float64":
        t = _base(rng, (30, 20), np.float32)
        p = _base(rng, (20, 30), np.float64).T
        w = np.asfortranarray(_base(rng, (30, 20), np.float32, True))
    else:
        raise ValueError(name)
    rows = p.shape[0]
    per_sample = _base(rng, (2 * rows,), w.dtype, True)[::-2]  # 1-D, strided and reversed
    return t, p, w, per_sample


LAYOUTS = ["c_order", "fortran_order", "transposed", "transpose_permutation_3d", "step_2", "columns_step_3",
           "odd_rows_reversed_columns", "negative_strides", "negative_strides_2d", "zero_strides", "read_only",
           "memmap", "mixed_float32_float64"]
# Every layout in float32 and float64; the mixed layout has its own dtypes (float32 and float64).
LAYOUT_DTYPES = [
    pytest.param(layout, dtype, id=f"{layout}-{np.dtype(dtype).name}" if layout != "mixed_float32_float64" else layout)
    for layout in LAYOUTS
    for dtype in (DTYPES if layout != "mixed_float32_float64" else [np.float32])
]


def _axes_for(ndim):
    axes = [None, 0, -1]
    if ndim >= 2:
        axes += [tuple(range(ndim))[::-1]]
    if ndim >= 3:
        axes += [(0, 2), 1]
    return axes


def _weights(kind, full, per_sample):
    return {"none": None, "full": full, "per_sample": per_sample}[kind]


@pytest.mark.parametrize("weights_kind", ["none", "full", "per_sample"])
@pytest.mark.parametrize("layout,dtype", LAYOUT_DTYPES)
def test_every_layout_gives_the_exact_loss_for_every_reduction_and_axis(backend, layout, dtype, weights_kind,
                                                                        tmp_path):
    y_true, y_pred, full, per_sample = make_layout(layout, dtype, tmp_path)
    weights = _weights(weights_kind, full, per_sample)
    before = snapshot(y_true, y_pred, weights)
    copies = contiguous(y_true, y_pred, weights)
    result_dtype = ref.loss_dtype(y_true, y_pred, weights)
    for kind, reduction in LOSS_REDUCTIONS:
        axes = [None] if reduction == "none" else _axes_for(y_pred.ndim)
        for axis in axes:
            result = quiet(LOSSES[kind], y_true, y_pred, weights, axis=axis, reduction=reduction)
            where = f"{kind}, reduction={reduction!r}, axis={axis!r}"
            if reduction == "none":
                assert type(result) is np.ndarray and result.shape == y_pred.shape, where
                expected = ref.loss(kind, *copies, reduction)
            elif axis is None:
                assert type(result) is result_dtype.type, f"{where}: got {type(result).__name__}"
                expected = ref.loss(kind, *copies, reduction)
            else:
                assert type(result) is np.ndarray, where
                assert result.shape == ref.reduced_shape(y_pred.shape, axis), where
                expected = ref.loss_axis(kind, *copies, reduction, axis)
            assert np.asarray(result).dtype == result_dtype, where
            try:
                ref.assert_ulp(result, expected, ref.loss_ulp(result_dtype))
            except AssertionError as error:
                raise AssertionError(f"{where}: {error}") from None
    assert snapshot(y_true, y_pred, weights) == before, "an input was modified"


def _expected_layout(y_pred, dtype):
    """What np.empty_like gives for y_pred: the layout a fresh gradient must have."""
    return np.empty_like(np.asarray(y_pred), dtype=dtype).strides


@pytest.mark.parametrize("weights_kind", ["none", "full", "per_sample"])
@pytest.mark.parametrize("layout,dtype", LAYOUT_DTYPES)
def test_gradients_of_every_layout_match_the_reference_and_follow_y_pred(backend, layout, dtype, weights_kind,
                                                                         tmp_path):
    y_true, y_pred, full, per_sample = make_layout(layout, dtype, tmp_path, seed=1)
    weights = _weights(weights_kind, full, per_sample)
    before = snapshot(y_true, y_pred, weights)
    copies = contiguous(y_true, y_pred, weights)
    grad_dtype = ref.grad_dtype(y_pred)
    for name, func in GRADS.items():
        kind = kind_of(name)
        for reduction in ref.REDUCTIONS:
            where = f"{name}, reduction={reduction!r}"
            result = quiet(func, y_true, y_pred, weights, reduction=reduction)
            grad = result[1] if isinstance(result, tuple) else result
            assert type(grad) is np.ndarray and grad.shape == y_pred.shape and grad.dtype == grad_dtype, where
            assert grad.strides == _expected_layout(y_pred, grad_dtype), (
                f"{where}: gradient strides {grad.strides}, np.empty_like(y_pred) has "
                f"{_expected_layout(y_pred, grad_dtype)}"
            )
            ref.assert_ulp(grad, ref.grad(kind, *copies, reduction), ref.grad_ulp(grad_dtype))
            if isinstance(result, tuple):
                ref.assert_ulp(result[0], ref.loss(kind, *copies, reduction),
                               ref.loss_ulp(ref.loss_dtype(y_true, y_pred, weights)))
    assert snapshot(y_true, y_pred, weights) == before, "an input was modified"


@pytest.mark.parametrize("layout", ["transposed", "columns_step_3", "negative_strides_2d", "zero_strides",
                                    "transpose_permutation_3d", "memmap"])
def test_l2_penalty_of_every_layout_matches_the_reference(backend, layout, tmp_path):
    params = make_layout(layout, np.float32, tmp_path, seed=2)[1]
    before = snapshot(params)
    ref.assert_ulp(fastl2.l2_penalty(params, 0.75), ref.l2_penalty(np.ascontiguousarray(params), 0.75), 1)
    grad = fastl2.l2_penalty_grad(params, 0.75)
    assert grad.shape == params.shape and grad.dtype == np.float32
    assert grad.strides == _expected_layout(params, np.float32)
    ref.assert_ulp(grad, ref.l2_penalty_grad(np.ascontiguousarray(params), 0.75), 1)
    assert snapshot(params) == before


# --------------------------------------------------------------------------- out= of any layout

SENTINEL = -123.25

# name -> (shape of the big array, the view of it that is out; out's shape is always (30, 20))
OUT_VIEWS = {
    "every_second_row": ((60, 20), lambda big: big[::2]),
    "every_third_column_reversed": ((30, 60), lambda big: big[:, ::-3]),
    "transposed": ((20, 30), lambda big: big.T),
    "inner_block": ((40, 30), lambda big: big[5:35, 3:23]),
    "fortran_order": ((20, 30), lambda big: big.T[:, :]),
    "3d_slice": ((30, 4, 20), lambda big: big[:, 2, :]),
}


@pytest.mark.parametrize("y_layout", ["c_order", "odd_rows_reversed_columns"])
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("out_view", list(OUT_VIEWS))
@pytest.mark.parametrize("name", list(GRADS) + ["l2_penalty_grad"])
def test_out_may_be_any_writable_layout(backend, name, out_view, dtype, y_layout, tmp_path):
    y_true, y_pred, weights, _ = make_layout(y_layout, dtype, tmp_path, seed=3)
    big_shape, view = OUT_VIEWS[out_view]
    big = np.full(big_shape, SENTINEL, dtype)
    out = view(big)
    assert out.shape == y_pred.shape and not out.flags.c_contiguous
    touched = np.zeros(big_shape, bool)
    view(touched)[...] = True
    for reduction in ref.REDUCTIONS:
        if name == "l2_penalty_grad" and reduction != "mean":
            continue  # no reduction argument
        out[...] = SENTINEL
        if name == "l2_penalty_grad":
            result = fastl2.l2_penalty_grad(y_pred, 0.5, out=out)
            expected = ref.l2_penalty_grad(np.ascontiguousarray(y_pred), 0.5)
        else:
            result = quiet(GRADS[name], y_true, y_pred, weights, reduction=reduction, out=out)
            expected = ref.grad(kind_of(name), *contiguous(y_true, y_pred, weights), reduction)
        grad = result[1] if isinstance(result, tuple) else result
        assert grad is out, f"{name} must return out itself"
        ref.assert_ulp(out, expected, ref.grad_ulp(dtype))
        assert (big[~touched] == SENTINEL).all(), f"{name} wrote outside out"


IN_PLACE_CASES = [(name, reduction) for name in GRADS for reduction in ref.REDUCTIONS] + [("l2_penalty_grad", None)]


@pytest.mark.parametrize("name,reduction", IN_PLACE_CASES)
def test_in_place_update_of_a_strided_y_pred(backend, name, reduction):
    rng = np.random.default_rng(4)
    big = (rng.standard_normal((80, 21)) * 3).astype(np.float32)
    y_pred = big[1::2, ::-2]  # (40, 11): writable, strided, reversed
    y_true = (rng.standard_normal((40, 11)) * 3).astype(np.float32)
    weights = rng.uniform(0.1, 2.0, 40).astype(np.float32)
    untouched = big.copy()
    untouched[1::2, ::-2] = 0
    values_before = y_pred.copy()
    if name == "l2_penalty_grad":
        expected = fastl2.l2_penalty_grad(values_before, 0.5)
        result = fastl2.l2_penalty_grad(y_pred, 0.5, out=y_pred)
    else:
        expected = GRADS[name](y_true, values_before, weights, reduction=reduction)
        result = GRADS[name](y_true, y_pred, weights, reduction=reduction, out=y_pred)
    grad = result[1] if isinstance(result, tuple) else result
    assert grad is y_pred
    if isinstance(result, tuple):
        assert np.asarray(result[0]).tobytes() == np.asarray(expected[0]).tobytes(), (
            "the loss must be computed from y_pred's values before the update"
        )
        expected = expected[1]
    kind = "l2" if name == "l2_penalty_grad" else kind_of(name)
    reference = (ref.l2_penalty_grad(values_before, 0.5) if kind == "l2"
                 else ref.grad(kind, y_true, values_before, weights, reduction))
    ref.assert_ulp(y_pred, reference, 1)
    np.testing.assert_array_equal(y_pred, expected)
    check = big.copy()
    check[1::2, ::-2] = 0
    np.testing.assert_array_equal(check, untouched, err_msg="the in-place update wrote outside y_pred")


# --------------------------------------------------------------------------- no copies (tracemalloc)


def _result_bytes(result):
    """The bytes of the loss a call returns (a gradient written into out= is not new memory)."""
    loss = result[0] if isinstance(result, tuple) else result
    return np.asarray(loss).nbytes if isinstance(loss, np.ndarray) else 0


@pytest.fixture(scope="module")
def big_inputs():
    rng = np.random.default_rng(5)
    f32 = np.float32
    return {
        "1e6x8": (rng.random((10**6, 8), dtype=f32), rng.random((10**6, 8), dtype=f32)),
        "1e5x100": (rng.random((10**5, 100), dtype=f32), rng.random((10**5, 100), dtype=f32)),
        "step2_of_2e7": (rng.random(2 * 10**7, dtype=f32)[::2], rng.random(2 * 10**7, dtype=f32)[::-2]),
        "transposed_4000x2500": (rng.random((4000, 2500), dtype=f32).T, rng.random((4000, 2500), dtype=f32).T),
        "out_of_2e6": rng.random(2 * 10**6, dtype=f32),
    }


def _axis_none_call(name):
    return lambda d: getattr(fastl2, name)(*d["1e6x8"])


NO_COPY_CALLS = {
    **{f"{name}_axis_none_1e6x8": _axis_none_call(name) for name in LOSS_FUNCTIONS},  # every loss
    "mse_axis0_1e6x8": lambda d: fastl2.mse(*d["1e6x8"], axis=0),
    "mae_axis0_1e6x8_weighted_mean": lambda d: fastl2.mae(*d["1e6x8"], d["1e6x8"][0][:, 0], axis=0,
                                                          reduction="weighted_mean"),
    "mse_axis_minus1_1e5x100": lambda d: fastl2.mse(*d["1e5x100"], axis=-1),
    "mae_axis_minus1_1e5x100": lambda d: fastl2.mae(*d["1e5x100"], axis=-1, reduction="sum"),
    "mse_step2_slice_of_2e7": lambda d: fastl2.mse(*d["step2_of_2e7"]),
    "mae_step2_slice_of_2e7_axis0": lambda d: fastl2.mae(*d["step2_of_2e7"], axis=0),
    "mse_transposed_4000x2500": lambda d: fastl2.mse(*d["transposed_4000x2500"]),
    "mse_transposed_4000x2500_axis0": lambda d: fastl2.mse(*d["transposed_4000x2500"], axis=0),
    "mae_transposed_4000x2500_axis_minus1": lambda d: fastl2.mae(*d["transposed_4000x2500"], axis=-1),
    "mse_and_grad_into_strided_out": lambda d: fastl2.mse_and_grad(
        d["step2_of_2e7"][0][: 10**6], d["step2_of_2e7"][1][: 10**6], out=d["out_of_2e6"][::2]),
}


@pytest.mark.parametrize("call", list(NO_COPY_CALLS))
def test_large_float32_inputs_of_any_layout_are_not_copied(backend, big_inputs, call):
    """A copy of any of these inputs would take 4 MB or more (up to 80 MB)."""
    peak, result = traced_peak(lambda: NO_COPY_CALLS[call](big_inputs))
    outputs = int(np.prod(np.shape(result[0] if isinstance(result, tuple) else result)))
    # Besides the result itself, a float64 loss sum and weight sum per output are fine (16 bytes per
    # output): they grow with the outputs, not with the inputs. Measured here: cython 0.8 MB and
    # numba 1.5 MB beyond the result for the 10**5 outputs of (10**5, 100) with axis=-1.
    allowed = 1 * MB + _result_bytes(result) + 16 * outputs
    if backend == "numpy":
        # The NumPy backend works in chunks of 16384 elements (float64 temporaries of 128 KiB each)
        # and keeps 4 float64 partial sums per (output, 8192-element block): bounded temporaries
        # that do not grow with the input (measured: 0.7 MB, 5.5 MB for 10**5 outputs).
        allowed += 4 * MB + 32 * outputs
    assert peak < allowed, (
        f"{call}: traced peak {peak / MB:.2f} MB, allowed {allowed / MB:.2f} MB (a copy of an input "
        "or an O(n) temporary?)"
    )


# --------------------------------------------------------------------------- the strided pass with kept axes


@pytest.mark.parametrize("shape,axes", [((3000, 4), (0,)), ((40, 300), (1,)), ((5, 7, 9), (0, 2))])
def test_a_pass_with_kept_axes_writes_the_gradient_beside_the_sums(backend, shape, axes):
    """The backends' strided pass itself: sums per output and the gradient in one pass (the
    summing-only kernels for columns and rows must not take it over)."""
    from fastl2 import _backends
    from fastl2._plan import penalty_plan, strided_pass

    params = np.random.default_rng(3).standard_normal(shape)
    grad = np.full(shape, np.nan)
    s = strided_pass(penalty_plan(params), axes, grad=grad)
    loss_sums = _backends.active().run_strided(s, True, 2.0, 1.0)[0]
    np.testing.assert_array_equal(grad, 2.0 * params)
    expected = (params * params).sum(axis=axes).reshape(-1)
    np.testing.assert_allclose(loss_sums, expected, rtol=1e-13)
