"""Inputs of every layout give correct results, read-only inputs work, and inputs are never written."""
from __future__ import annotations

import numpy as np
import pytest

import fastl2
import reference as ref
from cases import AND_GRAD_FUNCTIONS, GRAD_FUNCTIONS, LOSS_FUNCTIONS, random_pair, random_weights

# Every loss of the table and rmse, then each loss's functions that take out=
OUT_FUNCS = tuple(name for pair in zip(GRAD_FUNCTIONS, AND_GRAD_FUNCTIONS) for name in pair)
PAIR_FUNCS = {name: getattr(fastl2, name) for name in (*LOSS_FUNCTIONS, "rmse", *OUT_FUNCS)}
pair_funcs = pytest.mark.parametrize("name", list(PAIR_FUNCS))


def _kind(name):
    """The loss of a public function: "mse" for "mse", "mse_grad" and "mse_and_grad"."""
    return name.removesuffix("_and_grad").removesuffix("_grad")


def check_against_reference(name, result, y_true, y_pred, weights, reduction="mean"):
    kind = _kind(name)
    if name in LOSS_FUNCTIONS or name == "rmse" or name.endswith("_and_grad"):
        loss = result[0] if isinstance(result, tuple) else result
        dtype = ref.loss_dtype(y_true, y_pred, weights)
        ref.assert_ulp(loss, ref.loss(kind, y_true, y_pred, weights, reduction), ref.loss_ulp(dtype))
    if name.endswith("grad"):
        grad = result[1] if isinstance(result, tuple) else result
        assert grad.shape == y_pred.shape
        dtype = ref.grad_dtype(y_pred)
        ref.assert_ulp(grad, ref.grad(kind, y_true, y_pred, weights, reduction), ref.grad_ulp(dtype))


def _bits(result):
    parts = result if isinstance(result, tuple) else (result,)
    return [np.asarray(p).dtype.str + np.asarray(p).tobytes().hex() for p in parts]


# --------------------------------------------------------------------------- read-only / never written


@pytest.mark.parametrize("weighted", [False, True])
@pair_funcs
def test_read_only_inputs_work(backend, name, weighted):
    y_true, y_pred = random_pair(20_000, seed=4)
    weights = random_weights(20_000) if weighted else None
    expected = PAIR_FUNCS[name](y_true, y_pred, weights)
    for a in (y_true, y_pred, weights):
        if a is not None:
            a.flags.writeable = False
    assert _bits(PAIR_FUNCS[name](y_true, y_pred, weights)) == _bits(expected)


def test_read_only_params_work_for_l2(backend):
    params = np.linspace(-1, 1, 20_001)
    params.flags.writeable = False
    ref.assert_ulp(fastl2.l2_penalty(params, 0.5), ref.l2_penalty(params, 0.5), 2)
    ref.assert_ulp(fastl2.l2_penalty_grad(params, 0.5), ref.l2_penalty_grad(params, 0.5), 0)


# Every function with each reduction it has (rmse: only the means), with out= where it takes one.
NEVER_WRITTEN_CASES = [
    (name, reduction, use_out)
    for name in PAIR_FUNCS
    for reduction in ("mean", "weighted_mean", "sum", "none")
    if name != "rmse" or reduction in ("mean", "weighted_mean")
    for use_out in ((False, True) if name in OUT_FUNCS else (False,))
]


@pytest.mark.parametrize("name, reduction, use_out", NEVER_WRITTEN_CASES)
def test_inputs_are_never_written(backend, name, reduction, use_out):
    y_true, y_pred = random_pair(10_000, dtype=np.float32, seed=5, shape=(5_000, 2))
    weights = random_weights(5_000, dtype=np.float32)
    before = [y_true.copy(), y_pred.copy(), weights.copy()]
    kwargs = {"out": np.empty_like(y_pred)} if use_out else {}
    PAIR_FUNCS[name](y_true, y_pred, weights, reduction=reduction, **kwargs)
    for a, b in zip((y_true, y_pred, weights), before):
        assert a.tobytes() == b.tobytes(), f"{name} wrote into an input"


@pytest.mark.parametrize("use_out", [False, True])
def test_l2_params_are_never_written(backend, use_out):
    params = np.linspace(-1, 1, 10_001)
    before = params.copy()
    fastl2.l2_penalty(params, 0.5)
    fastl2.l2_penalty_grad(params, 0.5, **({"out": np.empty_like(params)} if use_out else {}))
    assert params.tobytes() == before.tobytes()


# --------------------------------------------------------------------------- layouts


def _layout(kind, dtype, seed):
    """(y_true, y_pred, weights) with a non-trivial memory layout, weights laid out alike."""
    rng = np.random.default_rng(seed)

    def base(shape):
        return (rng.standard_normal(shape) * 3).astype(dtype)

    def wbase(shape):
        return rng.uniform(0.1, 2.0, shape).astype(dtype)

    if kind == "every_second":
        return base(20_002)[::2], base(20_002)[::2], wbase(20_002)[::2]
    if kind == "every_third_reversed":
        return base(30_003)[::-3], base(30_003)[::-3], wbase(30_003)[::-3]
    if kind == "negative_stride":
        return base(10_001)[::-1], base(10_001)[::-1], wbase(10_001)[::-1]
    if kind == "transposed":
        return base((97, 103)).T, base((97, 103)).T, wbase((97, 103)).T
    if kind == "fortran_order":
        return (np.asfortranarray(base((103, 97))), np.asfortranarray(base((103, 97))),
                np.asfortranarray(wbase((103, 97))))
    if kind == "column_slice_of_2d":
        return base((300, 70))[:, 3:60:2], base((300, 70))[:, 3:60:2], wbase((300, 70))[:, 3:60:2]
    if kind == "mixed_layouts":
        return base(10_001), base(20_002)[::2].copy()[::-1], np.asfortranarray(wbase(10_001))
    if kind == "3d_transposed":
        return base((20, 30, 40)).transpose(2, 0, 1), base((20, 40, 30)).transpose(1, 0, 2), wbase((40, 20, 30))
    raise ValueError(kind)


LAYOUTS = ["every_second", "every_third_reversed", "negative_stride", "transposed", "fortran_order",
           "column_slice_of_2d", "mixed_layouts", "3d_transposed"]


@pytest.mark.parametrize("weights_kind", ["none", "full", "per_sample"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", LAYOUTS)
@pair_funcs
def test_non_contiguous_inputs_give_correct_results(backend, name, layout, dtype, weights_kind):
    y_true, y_pred, full_weights = _layout(layout, dtype, seed=len(layout))
    assert y_true.shape == y_pred.shape
    if weights_kind == "none":
        weights = None
    elif weights_kind == "full":
        weights = full_weights
    else:
        rows = y_pred.shape[0]
        weights = random_weights(2 * rows, dtype=dtype)[::-2]  # strided 1-D, one weight per sample
    for reduction in ("mean", "weighted_mean"):
        result = PAIR_FUNCS[name](y_true, y_pred, weights, reduction=reduction)
        check_against_reference(name, result, y_true, y_pred, weights, reduction)


@pytest.mark.parametrize("layout", ["every_second", "transposed", "negative_stride"])
def test_non_contiguous_params_give_correct_l2(backend, layout):
    params = _layout(layout, np.float64, seed=9)[0]
    ref.assert_ulp(fastl2.l2_penalty(params, 0.5), ref.l2_penalty(params, 0.5), 2)
    ref.assert_ulp(fastl2.l2_penalty_grad(params, 0.5), ref.l2_penalty_grad(params, 0.5), 0)


@pytest.mark.parametrize("name", [*LOSS_FUNCTIONS, *GRAD_FUNCTIONS, *AND_GRAD_FUNCTIONS])
def test_non_contiguous_reduction_none_keeps_y_pred_shape(backend, name):
    y_true, y_pred, weights = _layout("transposed", np.float32, seed=1)
    result = PAIR_FUNCS[name](y_true, y_pred, weights, reduction="none")
    values = result[1] if isinstance(result, tuple) else result
    assert values.shape == y_pred.shape
    expected = (ref.grad if name.endswith("grad") else ref.loss)(_kind(name), y_true, y_pred, weights, "none")
    ref.assert_ulp(values, expected, 1)


# --------------------------------------------------------------------------- array-likes


class ArrayInterfaceOnly:
    """An object that is only convertible through __array__."""

    def __init__(self, array):
        self._array = array

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)


class DLPackOnly:
    """An object that is only convertible through the DLPack protocol."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, *args, **kwargs):
        return self._array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


@pytest.mark.parametrize("wrapper", [ArrayInterfaceOnly, DLPackOnly], ids=["__array__", "__dlpack__"])
def test_array_like_objects_are_accepted(backend, wrapper):
    y_true, y_pred = random_pair(1_000, dtype=np.float32, seed=6)
    expected = fastl2.mse_and_grad(y_true, y_pred)
    loss, grad = fastl2.mse_and_grad(wrapper(y_true), wrapper(y_pred))
    assert _bits((loss, grad)) == _bits(expected)


def test_torch_cpu_tensors_are_accepted(backend):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional peer; not installed here")
    y_true, y_pred = random_pair(1_000, dtype=np.float32, seed=7)
    expected = fastl2.mse_and_grad(y_true, y_pred)
    loss, grad = fastl2.mse_and_grad(torch.from_numpy(y_true), torch.from_numpy(y_pred))
    assert _bits((loss, np.asarray(grad))) == _bits(expected)


def test_memory_mapped_inputs_are_accepted(backend, tmp_path):
    y_true, y_pred = random_pair(10_000, dtype=np.float64, seed=8)
    path = tmp_path / "y.npy"
    np.save(path, np.stack([y_true, y_pred]))
    mapped = np.load(path, mmap_mode="r")
    assert _bits(fastl2.mse_and_grad(mapped[0], mapped[1])) == _bits(fastl2.mse_and_grad(y_true, y_pred))
