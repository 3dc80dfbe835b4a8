"""Faults found in the field (replayed bug reports, fuzzing), each tested as a whole kind: what
fastl2 writes -- out= overlapping an input of any carrier, outputs of any alignment and layout
written where the caller reads them, out= of any ndarray kind, and the gradient memory kept.

Every kind runs on every backend, and on the fast paths (plain C-contiguous ndarrays, which the
compiled and numba modules answer themselves) as well as the planned path.  The other kinds:
test_field_faults_inputs.py and test_field_faults_backends.py; the numba disk cache's kind lives
in test_numba_cache.py.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided
from hypothesis import given
from hypothesis import strategies as st

import fastl2
import reference as ref
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS
from field_faults import CARRIERS, SETTINGS, bits_equal, needs_torch, torch


# --------------------------------------------------------------------------- out= overlap


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
@pytest.mark.parametrize(  # (the same view of y_pred is the in-place update, tested below)
    "role, view", [("y_true", "transposed"), ("y_true", "same"), ("y_pred", "transposed"),
                   ("weights", "transposed"), ("weights", "same")])
def test_out_overlapping_an_input_of_any_carrier_is_refused(backend, carrier, role, view):
    buf = np.arange(40000.0).reshape(200, 200)
    before = buf.copy()
    overlapping = CARRIERS[carrier](buf.T if view == "transposed" else buf)
    args = {"y_true": np.zeros((200, 200)), "y_pred": np.ones((200, 200)), "weights": None}
    args[role] = overlapping
    for function in (*GRAD_FUNCTIONS, *AND_GRAD_FUNCTIONS):  # every function that takes out=
        with pytest.raises(ValueError, match=f"out overlaps {role}"):
            getattr(fastl2, function)(args["y_true"], args["y_pred"], args["weights"], out=buf)
        np.testing.assert_array_equal(buf, before)


SHARED = {  # layouts of out whose elements share memory
    "zero stride": lambda: as_strided(np.zeros(1), (6, 5), (0, 0), writeable=True),
    "broadcast row": lambda: as_strided(np.zeros(5), (6, 5), (0, 8), writeable=True),
    "interleaved": lambda: as_strided(np.zeros(40), (6, 5), (16, 8), writeable=True),
}


@pytest.mark.parametrize("layout", sorted(SHARED))
def test_out_whose_elements_share_memory_is_refused(backend, layout):
    """An out= whose elements share memory would keep one of several gradient elements:
    refused by every function that takes out= (also as y_pred itself, in place)."""
    y_true, y_pred = np.zeros((6, 5)), np.arange(30.0).reshape(6, 5)
    for function in (*GRAD_FUNCTIONS, *AND_GRAD_FUNCTIONS):
        out = SHARED[layout]()
        with pytest.raises(ValueError, match="out has elements that share memory"):
            getattr(fastl2, function)(y_true, y_pred, out=out)
        assert not out.any()
        with pytest.raises(ValueError, match="out has elements that share memory"):
            getattr(fastl2, function)(y_true, out, out=out)
    with pytest.raises(ValueError, match="out has elements that share memory"):
        fastl2.l2_penalty_grad(y_pred, 0.5, out=SHARED[layout]())


def test_out_whose_dims_interleave_without_sharing_is_accepted(backend):
    """The positive control: dims that interleave (strides 16 and 24 bytes over 3 x 3
    float64) but give every element its own place are a valid out=."""
    y_true, y_pred = np.zeros((3, 3)), np.arange(9.0).reshape(3, 3)
    out = as_strided(np.zeros(20), (3, 3), (16, 24), writeable=True)
    for function in (*GRAD_FUNCTIONS, *AND_GRAD_FUNCTIONS):
        result = getattr(fastl2, function)(y_true, y_pred, out=out)
        grad = result[1] if isinstance(result, tuple) else result
        assert grad is out
        assert bits_equal(out, getattr(fastl2, function)(y_true, y_pred) if "and" not in function
                          else getattr(fastl2, function)(y_true, y_pred)[1])


@pytest.mark.parametrize("carrier", sorted(CARRIERS))
def test_out_is_y_pred_in_place_through_any_carrier(backend, carrier):
    rng = np.random.default_rng(3)
    buf = rng.standard_normal((50, 40))
    y_true = rng.standard_normal((50, 40))
    expected = ref.grad("mse", y_true, buf)
    expected_loss = ref.loss("mse", y_true, buf)
    loss, grad = fastl2.mse_and_grad(y_true, CARRIERS[carrier](buf), out=buf)
    assert grad is buf
    ref.assert_ulp(loss, expected_loss, 2)
    ref.assert_ulp(buf, expected, 2)


@needs_torch
def test_field_input_out_overlapping_a_transposed_tensor(backend):
    buf = np.arange(40000.0).reshape(200, 200)
    with pytest.raises(ValueError, match="out overlaps y_true"):
        fastl2.mse_and_grad(torch.from_numpy(buf).t(), np.zeros((200, 200)), out=buf)


@needs_torch
def test_out_overlapping_params_of_another_carrier_is_refused(backend):
    buf = np.arange(100.0).reshape(10, 10)
    with pytest.raises(ValueError, match="out overlaps params"):
        fastl2.l2_penalty_grad(torch.from_numpy(buf).t(), 0.5, out=buf)
    fastl2.l2_penalty_grad(torch.from_numpy(buf), 0.5, out=buf)  # in place
    np.testing.assert_array_equal(buf, np.arange(100.0).reshape(10, 10))


def test_out_overlapping_an_input_that_was_converted_is_refused(backend):
    y_true = np.array([1.0, 2.0], np.float16)
    with pytest.raises(ValueError, match="out overlaps y_true"):
        fastl2.mse_grad(y_true, np.zeros(2, np.float16), out=y_true)
    integers = np.array([5, 6])
    with pytest.raises(ValueError, match="out overlaps y_true"):
        fastl2.mse_grad(integers, np.array([1.0, 2.0]), out=integers.view(np.float64))
    np.testing.assert_array_equal(y_true, [1.0, 2.0])
    np.testing.assert_array_equal(integers, [5, 6])
    y_pred = np.array([1.0, 2.0], np.float16)  # a converted y_pred itself: in place
    assert fastl2.mse_grad(np.zeros(2, np.float16), y_pred, out=y_pred) is y_pred
    np.testing.assert_array_equal(y_pred, [1.0, 2.0])


# --------------------------------------------------------------------------- outputs where read


def placed(values: np.ndarray, aligned: bool, layout: str) -> np.ndarray:
    """``values`` copied into fresh memory: aligned or one byte off, C-ordered, Fortran-ordered
    or a reversed view."""
    values = np.asarray(values)
    order = "F" if layout == "F" else "C"
    if aligned:
        array = np.empty(values.shape, values.dtype, order=order)
    else:
        buffer = bytearray(values.nbytes + 1)
        array = np.frombuffer(buffer, values.dtype, values.size, offset=1).reshape(values.shape, order=order)
    if layout == "reversed" and values.ndim:
        array = array[(slice(None, None, -1),) * values.ndim]
    array[...] = values
    return array


# Every kernel path of the compiled backend (and numba's), on operands one byte off their
# element alignment: each path's vector chunks and scalar tails read them and write the
# gradient, elementwise losses and out= with loads and stores C defines for any address (the
# sanitizer part of .ci/run runs this under UBSan, which flagged the scalar tails' plain ones).
UNALIGNED_PATHS = {
    "1d_blocks_and_tail": ((2 * 8192 + 37,), None, lambda a: a),
    "step2": ((2 * (8192 + 37),), None, lambda a: a[::2]),
    "columns_of_a_vector": ((300, 8), 0, lambda a: a),
    "columns": ((301, 3), 0, lambda a: a),
    "rows": ((300, 7), 1, lambda a: a),
    "transposed": ((40, 31), None, lambda a: a.T),
    "strided_columns": ((50, 12), 0, lambda a: a[:, ::3]),
}


@pytest.mark.parametrize("weights_kind", ["none", "full", "per_sample"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("path", sorted(UNALIGNED_PATHS))
def test_unaligned_operands_give_the_bits_of_aligned_ones_on_every_kernel_path(backend, path, dtype, weights_kind):
    shape, axis, view = UNALIGNED_PATHS[path]
    rng = np.random.default_rng(3)
    bases = [rng.standard_normal(shape).astype(dtype) for _ in range(2)]
    views = [view, view]
    if weights_kind == "full":
        bases.append(rng.uniform(0.5, 2.0, shape).astype(dtype))
        views.append(view)
    elif weights_kind == "per_sample":
        bases.append(rng.uniform(0.5, 2.0, view(bases[0]).shape[:1]).astype(dtype))
        views.append(lambda a: a)
    aligned = [v(base) for v, base in zip(views, bases)]
    off = [v(placed(base, False, "C")) for v, base in zip(views, bases)]  # (the same views, one byte off)
    assert not any(x.flags.aligned for x in off)
    for name in ("mse", "huber"):
        for reduction in ("mean", "weighted_mean", "sum") + (("none",) if axis is None else ()):
            expected = getattr(fastl2, name)(*aligned, axis=axis, reduction=reduction)
            assert bits_equal(getattr(fastl2, name)(*off, axis=axis, reduction=reduction), expected), (name, reduction)
    for name in AND_GRAD_FUNCTIONS:
        expected = getattr(fastl2, name)(*aligned)
        out = placed(np.zeros(aligned[1].shape, dtype), False, "C")
        got = getattr(fastl2, name)(*off, out=out)
        assert got[1] is out and bits_equal(got[0], expected[0]) and bits_equal(out, expected[1]), name
    grad = placed(np.zeros(aligned[1].shape, dtype), False, "C")
    assert bits_equal(fastl2.l2_penalty_grad(off[1], 0.25, out=grad), fastl2.l2_penalty_grad(aligned[1], 0.25))
    assert bits_equal(fastl2.l2_penalty(off[1], 0.25), fastl2.l2_penalty(aligned[1], 0.25))


shapes = st.integers(0, 3).flatmap(lambda rank: st.tuples(*[st.integers(1, 5)] * rank))


@SETTINGS
@given(
    shape=shapes,
    dtype=st.sampled_from(["float32", "float64"]),
    true_aligned=st.booleans(), pred_aligned=st.booleans(), out_aligned=st.booleans(),
    true_layout=st.sampled_from(["C", "F", "reversed"]), pred_layout=st.sampled_from(["C", "F", "reversed"]),
    out_layout=st.sampled_from([None, "C", "F", "reversed"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_output_is_written_where_the_caller_reads_it(
    backend, shape, dtype, true_aligned, pred_aligned, out_aligned, true_layout, pred_layout, out_layout, seed
):
    rng = np.random.default_rng(seed)
    t = rng.standard_normal(shape).astype(dtype)
    p = rng.standard_normal(shape).astype(dtype)
    y_true, y_pred = placed(t, true_aligned, true_layout), placed(p, pred_aligned, pred_layout)
    out = None if out_layout is None else placed(np.zeros(shape, dtype), out_aligned, out_layout)
    grad = fastl2.mse_grad(y_true, y_pred, out=out)
    assert grad.shape == tuple(shape) and grad.dtype == np.dtype(dtype)
    if out is not None:
        assert grad is out
    ref.assert_ulp(grad, ref.grad("mse", t, p), 1)
    loss, grad = fastl2.mae_and_grad(y_true, y_pred, reduction="none")
    ref.assert_ulp(loss, ref.loss("mae", t, p, reduction="none"), 1)
    ref.assert_ulp(grad, ref.grad("mae", t, p, reduction="none"), 1)
    ref.assert_ulp(fastl2.mse(y_true, y_pred, reduction="none"), ref.loss("mse", t, p, reduction="none"), 1)
    ref.assert_ulp(fastl2.mse(y_true, y_pred), ref.loss("mse", t, p), 2)
    penalty_out = None if out is None else placed(np.zeros(shape, dtype), out_aligned, out_layout)
    ref.assert_ulp(fastl2.l2_penalty_grad(y_pred, 0.75, out=penalty_out), ref.l2_penalty_grad(p, 0.75), 1)


def test_field_input_unaligned_0d(backend):
    yt = np.frombuffer(bytearray(8), np.float32, 1, 1).reshape(())
    yt[...] = 1.5
    assert fastl2.mse_grad(yt, np.array(0.5, np.float32)) == np.float32(-2.0)
    assert fastl2.mse(yt, np.array(0.5, np.float32), reduction="none") == np.float32(1.0)


@pytest.mark.parametrize("kind", ["memmap", "subclass", "unaligned", "fortran"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_out_of_any_ndarray_kind_is_accepted_on_every_backend(backend, kind, dtype, tmp_path):
    class Sub(np.ndarray):
        pass

    rng = np.random.default_rng(5)
    t, p = rng.standard_normal((30, 4)).astype(dtype), rng.standard_normal((30, 4)).astype(dtype)
    if kind == "memmap":
        out = np.memmap(tmp_path / "out.bin", dtype, "w+", shape=(30, 4))
    elif kind == "subclass":
        out = np.zeros((30, 4), dtype).view(Sub)
    elif kind == "unaligned":
        out = placed(np.zeros((30, 4), dtype), False, "C")
    else:
        out = np.zeros((30, 4), dtype, order="F")
    loss, grad = fastl2.mse_and_grad(t, p, out=out)
    assert grad is out
    assert bits_equal(np.asarray(out).copy(), fastl2.mse_grad(t, p))
    assert fastl2.l2_penalty_grad(p, 0.5, out=out) is out
    ref.assert_ulp(np.asarray(out), ref.l2_penalty_grad(p, 0.5), 1)


# --------------------------------------------------------------------------- gradient memory


needs_core = pytest.mark.skipif(fastl2._backends.compiled_module() is None,
                                reason="only the compiled module keeps gradient memory")


@needs_core
def test_gradient_cache_is_bounded_switchable_and_released():
    core = fastl2._backends.compiled_module()
    limit = fastl2.get_gradient_cache_limit()
    try:
        t, p = np.zeros(1 << 19), np.ones(1 << 19)  # 4 MiB gradients
        fastl2.empty_cache()
        del_me = fastl2.mse_grad(t, p)
        del del_me
        assert core.cached_gradient_bytes() >= 4 << 20
        fastl2.empty_cache()
        assert core.cached_gradient_bytes() == 0
        fastl2.mse_grad(t, p)  # (freed at once)
        assert core.cached_gradient_bytes() >= 4 << 20
        fastl2.set_gradient_cache_limit(1 << 20)  # lower than what is held: freed now
        assert core.cached_gradient_bytes() == 0
        fastl2.mse_grad(t, p)
        assert core.cached_gradient_bytes() == 0
        fastl2.set_gradient_cache_limit(0)
        assert fastl2.get_gradient_cache_limit() == 0
        np.testing.assert_array_equal(fastl2.mse_grad(t, p), np.full(1 << 19, 2.0 / (1 << 19)))
        assert core.cached_gradient_bytes() == 0
    finally:
        fastl2.set_gradient_cache_limit(limit)
    for bad, error in ((-1, ValueError), (1.5, TypeError), (True, TypeError), (2**63, ValueError)):
        with pytest.raises(error, match="nbytes must be an int"):
            fastl2.set_gradient_cache_limit(bad)
    assert fastl2.get_gradient_cache_limit() == limit


@needs_core
def test_gradient_cache_limit_from_the_environment():
    code = "import fastl2; print(fastl2.get_gradient_cache_limit())"
    for value, expected in (("0", 0), ("12345", 12345)):
        env = {**__import__("os").environ, "FASTL2_GRADIENT_CACHE_LIMIT": value}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        assert out.stdout.strip() == str(expected)
    env = {**__import__("os").environ, "FASTL2_GRADIENT_CACHE_LIMIT": "lots"}
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "FASTL2_GRADIENT_CACHE_LIMIT='lots' ignored" in out.stderr
