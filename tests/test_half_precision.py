"""float16 operands read as they are: two bytes an element, converted exactly block by block
(csrc/convert.c), never as a float32 copy of the whole array.

What can break: a conversion that is not exact on the way in (subnormals, signed zeros, inf,
NaN), or not rounded once to nearest even on the way out (a float16 gradient: the float32
gradient rounded once more; ties, subnormals, overflow); a SIMD level (F16C) or backend that
converts differently from another; a layout (stepped, reversed, broadcast, unaligned, axes)
or a mix with float32/float64 operands that reads the wrong elements; an input written; a
whole-array copy after all.  The contract checked: a call with float16 operands gives the bits
of the same call with those operands converted to float32 (a float16 gradient: that call's
float32 gradient rounded to float16 by NumPy), on every backend.
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastl2
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS
from conftest import BACKENDS

F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)
core = fastl2._backends.compiled_module()

#: Every float16 bit pattern, as float16 values.
EVERY_HALF = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(F16)


def _bits(a):
    """The bits of a result (scalar or array), NaNs as one pattern (their payloads are not
    part of the contract)."""
    a = np.asarray(a)
    out = a.copy()
    if a.dtype.kind == "f":
        out[np.isnan(a)] = np.nan
    return out.tobytes(), out.dtype


def _levels(backend):
    """The compiled backend's SIMD levels (F16C above the baseline), one after another; one
    pass for the other backends (they have no levels)."""
    if backend != "cython":
        yield None
        return
    for level in core.simd_levels_available():
        core.set_simd_level(level)
        yield level


def test_every_float16_is_read_exactly(backend, restore_level):
    # |v| of every float16 pattern, reduction="none": float32 losses of the exact values
    # (mae's element loss is |y_pred - y_true| against zeros: the value itself, exactly)
    zeros = np.zeros_like(EVERY_HALF)
    expected = np.abs(EVERY_HALF.astype(F32))
    both = np.empty(2 * EVERY_HALF.size, F16)  # (y_true at a stride: every other element)
    both[::2] = EVERY_HALF
    both[1::2] = 0
    for level in _levels(backend):
        got = fastl2.mae(zeros, EVERY_HALF, reduction="none")
        assert got.dtype == F32
        assert _bits(got) == _bits(expected), level
        got = fastl2.mae(both[::2], zeros, reduction="none")
        assert _bits(got) == _bits(expected), level


def test_float16_gradients_are_the_float32_gradient_rounded_once(backend, restore_level):
    # Every finite float16 as y_pred against zeros, mean over a count that is not a power of
    # two: (2 / n) * v in float64, rounded to float32, then to float16 (subnormal, normal and
    # overflowing results; NumPy's conversion is the reference).
    finite = EVERY_HALF[np.isfinite(EVERY_HALF)]
    zeros = np.zeros_like(finite)
    n = finite.size
    expected = ((2.0 / n) * finite.astype(F64)).astype(F32).astype(F16)
    ties = _ties()
    for level in _levels(backend):
        got = fastl2.mse_grad(zeros, finite)
        assert got.dtype == F16
        assert _bits(got) == _bits(expected), level
        for t, y_pred, tied in ties:
            assert _bits(fastl2.mse_grad(t, y_pred, reduction="sum")) == tied, (level, t.dtype)


def _ties():
    """Ties: gradients 2 * (0 - t) = h exactly halfway between two neighbouring float16s (and
    around the largest, 65504, and past it: inf), from float32 and float64 y_true, so both
    the float32 kernel and the float64 one (through float32) round them to even: (y_true,
    y_pred, the expected bits)."""
    ordered = np.unique(EVERY_HALF[np.isfinite(EVERY_HALF)].astype(F64))
    halfway = (ordered[:-1] + ordered[1:]) / 2  # (12 significant bits: exact in float32)
    halfway = np.concatenate([halfway, [65519.0, 65520.0, 65536.0, -65520.0]])
    zeros = np.zeros(halfway.size, F16)
    with np.errstate(over="ignore"):  # (65520 and past it: inf, as it should)
        expected = _bits(halfway.astype(F32).astype(F16))
    return [((-halfway / 2).astype(dtype), zeros, expected) for dtype in (F32, F64)]


@pytest.mark.skipif(core is None, reason="the compiled kernels are not built (pure-Python install)")
def test_every_simd_level_converts_float16_alike(restore_level):
    results = {}
    rng = np.random.default_rng(3)
    n = 3 * 8192 + 77  # (whole blocks and a tail that is not a multiple of 8)
    y_true = (rng.standard_normal(n) * 100).astype(F16)
    y_pred = EVERY_HALF[rng.integers(0, 1 << 16, n)]
    w = rng.random(n).astype(F16)
    for level in core.simd_levels_available():
        core.set_simd_level(level)
        fastl2.set_backend("cython")
        out = []
        for name, grad_name in zip(LOSS_FUNCTIONS, AND_GRAD_FUNCTIONS):
            for weights in (None, w):
                out.append(getattr(fastl2, name)(y_true, y_pred, weights, reduction="none"))
                out.extend(getattr(fastl2, grad_name)(y_true, y_pred, weights, reduction="sum"))
                out.extend(getattr(fastl2, grad_name)(y_true[::-1], y_pred[::2].repeat(2)[:n], weights))
        results[level] = [_bits(r) for r in out]
    first = next(iter(results.values()))
    for level, bits in results.items():
        assert bits == first, f"{level} differs"


def _layout(array, kind):
    """``array`` (1-d or 2-d float16) in another layout with the same values."""
    if kind == "contiguous":
        return array
    if kind == "reversed":
        return np.ascontiguousarray(array[::-1])[::-1]
    if kind == "stepped":
        wide = np.zeros((2,) + array.shape, array.dtype)
        wide[0] = array
        return np.moveaxis(wide, 0, -1)[..., 0]
    if kind == "unaligned":
        raw = np.zeros(array.nbytes + 1, np.uint8)
        view = raw[1:].view(array.dtype).reshape(array.shape)
        view[...] = array
        return view
    if kind == "fortran":
        return np.asfortranarray(array)
    raise ValueError(kind)


LAYOUTS = ("contiguous", "reversed", "stepped", "unaligned", "fortran")


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_float16_calls_give_the_bits_of_float32_calls(data):
    # Any loss, reduction, axis, layout, weights (float16 or other) and dtype mix: the call on
    # float16 operands equals the call on the same values as float32 (the gradient, rounded
    # once to float16 by NumPy), on every backend.
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    rows = data.draw(st.sampled_from([1, 3, 40]))
    cols = data.draw(st.sampled_from([1, 7, 8200]))
    shape = data.draw(st.sampled_from([(rows * cols,), (rows, cols)]))
    true_dtype = data.draw(st.sampled_from([F16, F16, F32, F64]))
    y_true = (rng.standard_normal(shape) * data.draw(st.sampled_from([1e-6, 1.0, 300.0]))).astype(true_dtype)
    y_pred = (rng.standard_normal(shape) * 3).astype(F16)
    weights_kind = data.draw(st.sampled_from(["none", "full", "per_sample"]))
    weights = None
    if weights_kind == "full":
        weights = rng.random(shape).astype(data.draw(st.sampled_from([F16, F32, F64])))
    elif weights_kind == "per_sample":
        weights = rng.random(shape[0]).astype(data.draw(st.sampled_from([F16, F32])))
    layout = data.draw(st.sampled_from(LAYOUTS))
    y_true_l, y_pred_l = _layout(y_true, layout), _layout(y_pred, layout)
    as32 = lambda a: None if a is None else (a.astype(F32) if a.dtype == F16 else a)  # noqa: E731
    kind = data.draw(st.sampled_from(["loss", "grad", "and_grad"]))
    index = data.draw(st.integers(0, len(LOSS_FUNCTIONS) - 1))
    reduction = data.draw(st.sampled_from(["mean", "sum", "weighted_mean", "none"]))
    axis = None
    if kind == "loss" and len(shape) == 2 and reduction != "none":
        axis = data.draw(st.sampled_from([None, 0, 1, -1]))
    for backend in BACKENDS:
        fastl2.set_backend(backend)
        if kind == "loss":
            name = LOSS_FUNCTIONS[index]
            got = getattr(fastl2, name)(y_true_l, y_pred_l, weights, axis=axis, reduction=reduction)
            expected = getattr(fastl2, name)(as32(y_true), as32(y_pred), as32(weights), axis=axis, reduction=reduction)
            assert _bits(got) == _bits(expected), (backend, name, layout)
            continue
        name = (GRAD_FUNCTIONS if kind == "grad" else AND_GRAD_FUNCTIONS)[index]
        got = getattr(fastl2, name)(y_true_l, y_pred_l, weights, reduction=reduction)
        expected = getattr(fastl2, name)(as32(y_true), as32(y_pred), as32(weights), reduction=reduction)
        if kind == "grad":
            got, expected = (None, got), (None, expected)
        assert got[1].dtype == F16
        assert _bits(got[1]) == _bits(expected[1].astype(F16)), (backend, name, layout)
        assert _bits(got[0]) == _bits(expected[0]), (backend, name, layout)
    np.testing.assert_array_equal(y_pred_l, y_pred)  # (nothing written to an input)


@pytest.mark.parametrize("layout", LAYOUTS + ("broadcast", "step2"))
@pytest.mark.parametrize("weights_kind", ["none", "full", "per_sample"])
def test_every_float16_layout_and_output_gives_the_bits_of_float32(backend, layout, weights_kind):
    # Every operand float16 (the compiled backend's float16 kernels, read in place or
    # gathered), every layout, every output: losses of every reduction and axis (element
    # losses included), gradients, losses with gradients.
    rng = np.random.default_rng(11)
    shape = (24, 700)
    y_true, y_pred = ((rng.standard_normal(shape) * 4).astype(F16) for _ in range(2))
    if layout == "broadcast":
        y_true = np.broadcast_to(y_true[:1], shape)
    elif layout == "step2":  # (a[::2] of the last axis: the kernels' step-2 loads)
        y_true, y_pred = (np.repeat(a, 2, axis=1)[:, ::2] for a in (y_true, y_pred))
    else:
        y_true, y_pred = _layout(y_true, layout), _layout(y_pred, layout)
    weights = {"none": None, "full": rng.random(shape).astype(F16),
               "per_sample": rng.random(shape[0]).astype(F16)}[weights_kind]
    as32 = lambda a: None if a is None else a.astype(F32)  # noqa: E731
    for index, name in enumerate(LOSS_FUNCTIONS):
        for reduction in ("mean", "sum", "weighted_mean", "none"):
            for axis in ([None] if reduction == "none" else [None, 0, 1]):
                got = getattr(fastl2, name)(y_true, y_pred, weights, axis=axis, reduction=reduction)
                expected = getattr(fastl2, name)(as32(y_true), as32(y_pred), as32(weights), axis=axis,
                                                 reduction=reduction)
                assert _bits(got) == _bits(expected), (name, reduction, axis)
            loss, grad = getattr(fastl2, AND_GRAD_FUNCTIONS[index])(y_true, y_pred, weights, reduction=reduction)
            loss32, grad32 = getattr(fastl2, AND_GRAD_FUNCTIONS[index])(as32(y_true), as32(y_pred), as32(weights),
                                                                        reduction=reduction)
            assert _bits(loss) == _bits(loss32), (name, reduction)
            assert _bits(grad) == _bits(grad32.astype(F16)), (name, reduction)
            alone = getattr(fastl2, GRAD_FUNCTIONS[index])(y_true, y_pred, weights, reduction=reduction)
            assert _bits(alone) == _bits(grad), (name, reduction)


def test_a_float16_gradient_written_over_y_pred(backend):
    # out=y_pred: each block is read before its gradient is written over it
    rng = np.random.default_rng(5)
    y_true = (rng.standard_normal(20000)).astype(F16)
    y_pred = (rng.standard_normal(20000)).astype(F16)
    expected = fastl2.mse_grad(y_true.astype(F32), y_pred.astype(F32)).astype(F16)
    out = fastl2.mse_grad(y_true, y_pred, out=y_pred)
    assert out is y_pred
    assert _bits(out) == _bits(expected)


# The backends that read float16 in place (numba has no float16 on the CPU: it converts).
IN_PLACE = [name for name in BACKENDS if name != "numba"]


if IN_PLACE:  # (FASTL2_TEST_BACKENDS=numba alone: no backend of this test)
    @pytest.mark.parametrize("backend", IN_PLACE, indirect=True)
    @pytest.mark.parametrize("call", ["mse", "mse_and_grad", "mse_axis"])
    def test_no_float32_copy_of_a_float16_array(backend, call):
        # NumPy reports its allocations to tracemalloc: a float32 copy of 2**21 elements would be
        # 8 MiB; the result, the gradient (float16: 4 MiB) and the chunks are all there is.
        n = 1 << 21
        y_true = np.zeros(n, F16)
        y_pred = np.ones(n, F16)
        run = {
            "mse": lambda: fastl2.mse(y_true, y_pred),
            "mse_and_grad": lambda: fastl2.mse_and_grad(y_true, y_pred),
            "mse_axis": lambda: fastl2.mse(y_true.reshape(1024, -1), y_pred.reshape(1024, -1), axis=1),
        }[call]
        run()  # (first-call setup outside the measurement)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            run()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        gradient = 2 * n if call == "mse_and_grad" else 0
        assert peak < gradient + (1 << 20), peak
