"""The compiled fast path answers the common call by itself, with the planned path's bits."""

import numpy as np
import pytest

import fastl2
from cases import LOSS_FUNCTIONS
from fastl2._losses import SQUARED

core = fastl2._backends.compiled_module()
pytestmark = pytest.mark.skipif(core is None, reason="the compiled kernels are not built (pure-Python install)")

FUNCTIONS = core.FAST_PATH_FUNCTIONS if core is not None else ()
#: The losses of the table (cases.LOSS_FUNCTIONS) that have a fast path (with axis=).
FAST_LOSSES = tuple(name for name in LOSS_FUNCTIONS if name in FUNCTIONS)
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

    monkeypatch.setattr(fastl2._api, name, planned_must_not_run)  # (where the fast paths hand calls)
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


# ---- axis reductions and layouts other than C order (every loss, unweighted) -----------

def _layouts():
    """(name, y_true, y_pred) for arrays the axis fast path takes, none of them C-contiguous
    except the first."""
    rng = np.random.default_rng(11)
    a32 = rng.standard_normal((7, 6, 5)).astype(np.float32)
    b32 = rng.standard_normal((7, 6, 5)).astype(np.float32)
    b64 = rng.standard_normal((7, 6, 5))
    wide = rng.standard_normal((40, 9000)).astype(np.float32)  # rows of more than a block
    return [
        ("c_order", a32, b32),
        ("fortran", np.asfortranarray(a32), np.asfortranarray(b32)),
        ("transposed_mixed", a32.transpose(2, 0, 1), b64.transpose(2, 0, 1)),
        ("reversed_step2", a32[::-1, :, ::2], b32[::-1, :, ::2]),
        ("one_element_dim", a32[:, :1], b64[:, :1]),
        ("broadcast", np.broadcast_to(a32[:1], a32.shape), b32),
        ("wide_rows", wide, wide[::-1] * 0.5),
        ("wide_columns", wide.T, (wide * 2.0).T),
    ]


LAYOUT_AXES = [
    pytest.param(y_true, y_pred, axis, id=f"{name}-{axis}")
    for name, y_true, y_pred in _layouts()
    for axis in [None, 0, 1, -1, (0, 1), (2, 0), (0, 1, 2)]
    if axis is None or max(np.atleast_1d(axis)) < y_pred.ndim
]


@pytest.mark.parametrize("name", FAST_LOSSES)
@pytest.mark.parametrize("y_true, y_pred, axis", LAYOUT_AXES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_axis_fast_path_gives_the_planned_paths_bits(name, y_true, y_pred, axis, reduction, cython_backend):
    public = getattr(fastl2, name)
    result = public(y_true, y_pred, axis=axis, reduction=reduction)
    expected = public.__wrapped__(y_true, y_pred, axis=axis, reduction=reduction)
    assert type(result) is type(expected)
    assert _bits(result) == _bits(expected)


def _planned_layout(y_true, y_pred, axis):
    from fastl2 import _plan

    plan = _plan.loss_plan(SQUARED, y_true, y_pred, None, "mean")
    s = _plan.strided_pass(plan, _plan.check_axis(axis, y_pred.ndim, "mean"))
    return (s.shape, s.nkept, s.y_true.strides, s.y_pred.strides,
            s.y_true.__array_interface__["data"][0], s.y_pred.__array_interface__["data"][0])


def _more_layouts():
    rng = np.random.default_rng(12)
    big = rng.standard_normal((4, 3, 6, 2, 6))
    return [
        (big, big * 2.0),
        (big[::-1, :, ::-2], big[:, ::-1, 1::2]),                     # reversed in either array
        (big.transpose(4, 2, 0, 3, 1), big.transpose(4, 2, 0, 3, 1)[::-1]),
        (np.broadcast_to(big[:, :1], big.shape), big[..., ::-1]),      # zero strides
        (big[:, 1:2, :, :1], big[:, :1, :, 1:]),                      # dims of one element
        (np.asfortranarray(big)[:, :, 1:4], big[:, :, :3]),
    ]


LAYOUT_PAIRS = [
    pytest.param(y_true, y_pred, axis, id=f"{y_pred.ndim}d-{number}-{axis}")
    for number, (y_true, y_pred) in enumerate(_more_layouts() + [case[1:] for case in _layouts()])
    for axis in [None, 0, -1, 2, (0, 2), (3, 1), (4, 0, 2), (0, 1, 2, 3, 4)]
    if axis is None or max(np.atleast_1d(axis)) < y_pred.ndim
]


@pytest.mark.parametrize("y_true, y_pred, axis", LAYOUT_PAIRS)
def test_axis_fast_path_walks_the_planned_paths_layout(y_true, y_pred, axis):
    """The layout itself, not only results (which seldom show the order of a sum)."""
    assert core._axis_layout_for_tests(y_true, y_pred, axis) == _planned_layout(y_true, y_pred, axis)


@pytest.mark.parametrize("axis", [(), (0, 0), 2, -3, 2**70, True, 0.0, [0], np.int64(0)], ids=str)
def test_axis_fast_path_leaves_other_axes_to_the_planned_path(axis):
    a = np.zeros((3, 4))
    assert core._axis_layout_for_tests(a, a, axis) is None


@pytest.mark.parametrize("name", FAST_LOSSES)
@pytest.mark.parametrize(
    "call",
    [
        lambda f, a, b: f(a, b, axis=0),
        lambda f, a, b: f(a, b, axis=-1, reduction="sum"),
        lambda f, a, b: f(a, b, axis=(1, 0)),
        lambda f, a, b: f(a.T, b.T),
        lambda f, a, b: f(a[:, ::2], b[:, ::2]),
        lambda f, a, b: f(a[::-1], b[::-1], axis=1),
    ],
    ids=["axis0", "axis-1_sum", "both_axes", "transposed", "step2", "reversed"],
)
def test_unweighted_axis_and_strided_calls_never_reach_the_planned_path(call, name, cython_backend, monkeypatch):
    def planned_must_not_run(*args, **kwargs):
        raise AssertionError("the planned path ran for an axis or strided call")

    monkeypatch.setattr(fastl2._api, name, planned_must_not_run)  # (where the fast paths hand calls)
    a, b = _inputs((np.float32, np.float32), 64, weighted=False, shape_2d=True)[:2]
    call(getattr(fastl2, name), a, b)


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda a, b: fastl2.mse(a, b, axis=(0, 0)), ValueError),
        (lambda a, b: fastl2.mse(a, b, axis=(0, -2)), ValueError),
        (lambda a, b: fastl2.mse(a, b, axis=2), np.exceptions.AxisError),
        (lambda a, b: fastl2.mse(a, b, axis=-3), np.exceptions.AxisError),
        (lambda a, b: fastl2.mse(a, b, axis=2**70), np.exceptions.AxisError),
        (lambda a, b: fastl2.mse(a, b, axis=True), TypeError),
        (lambda a, b: fastl2.mse(a, b, axis=0, reduction="none"), ValueError),
        (lambda a, b: fastl2.mae(a, b[:, :2], axis=0), ValueError),
    ],
    ids=["twice", "twice_negative", "too_large", "too_small", "huge", "bool", "none", "shapes"],
)
def test_axis_calls_that_must_raise_leave_the_fast_path_and_raise(call, error, cython_backend):
    a, b = _inputs((np.float64, np.float64), 16, weighted=False, shape_2d=True)[:2]
    with pytest.raises(error):
        call(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axes", [(0,), (1,), (0, 1)], ids=str)
@pytest.mark.parametrize("divisor, root", [(1.0, False), (6.0, False), (6.0, True), (3.0, True)])
def test_outputs_divided_in_c_match_numpy_dividing_the_sums(dtype, axes, divisor, root):
    """``reduce_outputs`` divides, roots and rounds each output as Python finishes the sums:
    float32 as NumPy divides them, float64 as fastl2._exact.finish_float64 does (the same
    decisions, the same bits)."""
    from fastl2 import _plan

    rng = np.random.default_rng(5)
    y_true = (rng.standard_normal((300, 7)) * 1e3).astype(dtype)
    y_pred = rng.standard_normal((300, 7)).astype(dtype)[:, ::-1]
    plan = _plan.loss_plan(SQUARED, y_true, y_pred, None, "mean")
    strided = _plan.strided_pass(plan, axes)
    sums, weights, rests, weight_rests = core.run_strided(strided, True)
    if dtype == np.float32:
        expected = sums / divisor
        if root:
            expected = np.sqrt(expected)
        certain = fastl2._exact.certain_many(expected, strided.n_reduced)
    else:
        expected, certain = fastl2._exact.finish_float64(sums, weights, rests, weight_rests, strided.n_reduced,
                                                         False, False, divisor, root)
    values = np.empty(strided.n_outputs, dtype)
    # (it gives the values that are not certainly correctly rounded: fastl2._exact)
    uncertain = core.reduce_outputs(strided, values, divisor, root)
    assert uncertain.tolist() == np.flatnonzero(~certain).tolist()
    assert values.tobytes() == expected.astype(dtype).tobytes()


def test_axis_calls_go_to_the_active_backend_when_it_is_not_cython(monkeypatch):
    """The compiled module's axis fast path answers for the "cython" backend only."""
    previous = fastl2.get_backend()
    fastl2.set_backend("numpy")
    try:
        monkeypatch.setattr(fastl2._api, "mse", lambda *args, **kwargs: "planned")
        a, b = _inputs((np.float32, np.float32), 64, weighted=False, shape_2d=True)[:2]
        assert fastl2.mse(a, b, axis=0) == "planned"
        assert fastl2.mse(a.T, b.T) == "planned"
    finally:
        fastl2.set_backend(previous)


def test_reduce_outputs_names_what_it_was_given_and_what_it_accepts():
    from fastl2 import _plan

    a = np.ones((4, 3))
    strided = _plan.strided_pass(_plan.loss_plan(SQUARED, a, a, None, "mean"), (0,))
    with pytest.raises(ValueError, match=r"of 3 elements .*got dtype float64, shape \(4,\)"):
        core.reduce_outputs(strided, np.empty(4), 4.0, False)
    with pytest.raises(ValueError, match=r"got dtype int64"):
        core.reduce_outputs(strided, np.empty(3, np.int64), 4.0, False)
