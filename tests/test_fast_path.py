"""The compiled fast path answers the common call by itself, with the planned path's bits."""

import numpy as np
import pytest

import fastl2

core = fastl2._backends.compiled_module()
pytestmark = pytest.mark.skipif(core is None, reason="the compiled kernels are not built (pure-Python install)")

FUNCTIONS = core.FAST_PATH_FUNCTIONS if core is not None else ()
DTYPES = [(np.float32, np.float32), (np.float64, np.float64), (np.float32, np.float64)]


@pytest.fixture
def cython_backend():
    previous = fastl2.get_backend()
    fastl2.set_backend("cython")
    yield
    fastl2.set_backend(previous)


def _inputs(dtypes, n, weighted, shape_2d=False):
    rng = np.random.default_rng(n)
    y_true = rng.standard_normal(n).astype(dtypes[0])
    y_pred = rng.standard_normal(n).astype(dtypes[1])
    weights = (rng.random(n) + 0.5).astype(dtypes[1]) if weighted else None
    if shape_2d:
        y_true, y_pred = y_true.reshape(-1, 4), y_pred.reshape(-1, 4)
        weights = None if weights is None else weights.reshape(-1, 4)
    return y_true, y_pred, weights


def _bits(result):
    parts = result if isinstance(result, tuple) else (result,)
    return [(np.asarray(r).dtype, np.asarray(r).shape, np.asarray(r).tobytes()) for r in parts]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtypes", DTYPES, ids=["float32", "float64", "mixed"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", ["mean", "weighted_mean", "sum"])
@pytest.mark.parametrize("n", [16, 8192 * 3 + 4])
def test_fast_path_gives_the_planned_paths_bits(name, dtypes, weighted, reduction, n, cython_backend):
    public = getattr(fastl2, name)
    planned = public.__wrapped__
    y_true, y_pred, weights = _inputs(dtypes, n, weighted, shape_2d=True)
    assert _bits(public(y_true, y_pred, weights, reduction=reduction)) == _bits(
        planned(y_true, y_pred, weights, reduction=reduction)
    )


@pytest.mark.parametrize("name", FUNCTIONS)
def test_common_calls_never_reach_the_planned_path(name, cython_backend, monkeypatch):
    def planned_must_not_run(*args, **kwargs):
        raise AssertionError("the planned path ran for a common call")

    monkeypatch.setitem(core._planned_for_tests(), name, planned_must_not_run)
    public = getattr(fastl2, name)
    y_true, y_pred, weights = _inputs((np.float64, np.float64), 16, weighted=True)
    for reduction in ("mean", "weighted_mean", "sum"):
        public(y_true, y_pred, reduction=reduction)
        public(y_true, y_pred, weights, reduction=reduction)
    if name.endswith("grad"):
        out = np.empty_like(y_pred)
        public(y_true, y_pred, out=out)
        public(y_true, y_pred, out=y_pred.copy())


@pytest.mark.parametrize(
    "call",
    [
        lambda a, b: fastl2.mse_grad(a, b, out=a),  # out overlaps y_true
        lambda a, b: fastl2.mse_and_grad(a, b, out=b[::-1]),  # out overlaps y_pred, not in place
        lambda a, b: fastl2.mse(a, b, np.zeros_like(a), reduction="weighted_mean"),
        lambda a, b: fastl2.mse_grad(a, b, np.zeros_like(a), reduction="weighted_mean"),
    ],
    ids=["out_is_y_true", "out_reverses_y_pred", "zero_weights_loss", "zero_weights_grad"],
)
def test_calls_that_must_raise_leave_the_fast_path_and_raise(call, cython_backend):
    a, b = np.arange(16.0), np.arange(16.0)[::-1].copy()
    with pytest.raises(ValueError):
        call(a, b)


def test_in_place_gradient_on_the_fast_path(cython_backend):
    y_true, y_pred, _ = _inputs((np.float32, np.float32), 1000, weighted=False)
    expected = fastl2.mse_grad(y_true, y_pred)
    result = fastl2.mse_grad(y_true, y_pred, out=y_pred)
    assert result is y_pred
    assert np.array_equal(result, expected)


def test_large_gradients_reuse_freed_memory_without_touching_live_arrays(cython_backend):
    n = (1 << 20) // 4 * 3  # 3 MiB of float32: above the reuse threshold
    rng = np.random.default_rng(3)
    a, b, c = (rng.random(n, dtype=np.float32) for _ in range(3))
    first = fastl2.mse_grad(a, b)
    expected_first = first.copy()
    second = fastl2.mse_grad(a, c)  # `first` is alive: its memory must not be handed out
    assert np.array_equal(first, expected_first)
    address = second.__array_interface__["data"][0]
    del second  # freed: kept for the next gradient of its size
    assert core.cached_gradient_bytes() >= first.nbytes
    third = fastl2.mse_grad(b, c)
    assert third.__array_interface__["data"][0] == address
    assert np.array_equal(third, fastl2.mse_grad.__wrapped__(b, c))
    assert third.flags.writeable and third.flags.c_contiguous
    view = third[::2]
    del third  # the view keeps the memory alive
    assert np.array_equal(view, fastl2.mse_grad.__wrapped__(b, c)[::2])
    core.release_cached_gradient_memory()
    assert core.cached_gradient_bytes() == 0
