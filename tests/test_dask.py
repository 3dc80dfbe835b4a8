"""fastl2.dask on a real distributed.LocalCluster (two worker processes started here): every
chunking gives the bits of one fastl2 call on the whole arrays, on every backend, by the
certified road and by the exact one; scikit-learn's metrics on Dask arrays as
fastl2.metrics gives them; the errors of fastl2.mse and of fastl2.metrics."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fastl2
import fastl2.metrics

from test_exact_state import expected as exact_value  # (Fractions, element by element)

da = pytest.importorskip("dask.array", reason="the test extra installs dask[array]")
distributed = pytest.importorskip("distributed", reason="the test extra installs distributed")

import fastl2.dask as fd  # noqa: E402  (after the skip: it needs dask)

LOSSES = {"mse": (fd.mse, fastl2.mse), "mae": (fd.mae, fastl2.mae), "rmse": (fd.rmse, fastl2.rmse),
          "huber": (fd.huber, fastl2.huber)}
CHUNKINGS = 5  # (different chunkings per case, the whole array as one chunk among them)


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two worker processes (one thread each), and its client."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (distributed's own deprecation and port warnings)
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=50)
        with cluster, distributed.Client(cluster) as c:
            c.wait_for_workers(2)
            yield c


@pytest.fixture
def cluster_backend(client, backend):
    """The test's backend (conftest's ``backend``: on the client) on every worker too."""
    previous = client.run(fastl2.get_backend)
    client.run(fastl2.set_backend, backend)
    try:
        yield backend
    finally:
        for name in set(previous.values()):
            client.run(fastl2.set_backend, name)


def test_the_cluster_has_two_worker_processes(client):
    pids = client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()


def _chunkings(rng, shape, count=CHUNKINGS):
    """Up to ``count`` different chunkings of ``shape`` (fewer where it has fewer): the whole
    array, then random splits."""
    out = [tuple((size,) for size in shape)]
    for _ in range(20 * count):
        if len(out) == count:
            break
        chunks = []
        for size in shape:
            cuts = sorted(set(rng.integers(1, size, rng.integers(0, min(size - 1, 6) + 1)).tolist())) if size > 1 else []
            edges = [0, *cuts, size]
            chunks.append(tuple(b - a for a, b in zip(edges, edges[1:])))
        if tuple(chunks) not in out:
            out.append(tuple(chunks))
    return out


def _same(a, b) -> bool:
    """Same type, dtype, shape and bits (a NaN's sign and payload aside: docs/api.md, "Special
    values", leaves them open on every path)."""
    x, y = np.asarray(a), np.asarray(b)
    if type(a) is not type(b) or x.dtype != y.dtype or x.shape != y.shape:
        return False
    nan = np.isnan(x) & np.isnan(y)
    return np.where(nan, 0, x).tobytes() == np.where(nan, 0, y).tobytes()


CASE = st.fixed_dictionaries({
    "seed": st.integers(0, 2 ** 32 - 1),
    "loss": st.sampled_from(sorted(LOSSES)),
    "shape": st.one_of(st.tuples(st.integers(1, 300)), st.tuples(st.integers(1, 80), st.integers(1, 4))),
    "dtype": st.sampled_from([np.float32, np.float64, np.int32]),
    "weights": st.sampled_from([None, "elements", "samples", "signed"]),
    "reduction": st.sampled_from(["mean", "weighted_mean", "sum"]),
    "axis": st.sampled_from([None, 0]),
    "near": st.booleans(),  # (y_pred within a few ulps of y_true: heavy cancellation)
})


def _operands(case):
    rng = np.random.default_rng(case["seed"])
    shape, dtype = case["shape"], np.dtype(case["dtype"])
    if dtype.kind == "i":
        y_true = rng.integers(-1000, 1000, shape).astype(dtype)
        y_pred = rng.integers(-1000, 1000, shape).astype(dtype)
    else:
        y_true = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4)).astype(dtype)
        y_pred = (y_true * (1 + rng.integers(-4, 5, shape) * np.finfo(dtype).eps)).astype(dtype) if case["near"] \
            else rng.standard_normal(shape).astype(dtype)
    weights = None
    if case["weights"] is not None:
        weight_shape = shape if case["weights"] in ("elements", "signed") else shape[:1]
        weights = rng.random(weight_shape).astype(np.float64 if dtype.kind == "i" else dtype)
        if case["weights"] == "signed":
            weights = (weights - 0.25).astype(weights.dtype)
            weights.reshape(-1)[0] = 2.0  # (their sum stays well away from 0)
    return rng, y_true, y_pred, weights


@settings(max_examples=int(os.environ.get("DASK_EXAMPLES", 40)), deadline=None, suppress_health_check=list(HealthCheck))
@given(case=CASE)
def test_every_chunking_gives_one_calls_bits(client, cluster_backend, case):
    rng, y_true, y_pred, weights = _operands(case)
    loss, reduction, axis = case["loss"], case["reduction"], case["axis"]
    if loss == "rmse" and reduction == "sum":
        reduction = "mean"
    dask_function, function = LOSSES[loss]
    expected = function(y_true, y_pred, weights, axis=axis, reduction=reduction)
    # fastl2's own bits: the exact value rounded once (a Fraction reference, output by output)
    name = {"mse": "squared", "mae": "absolute", "rmse": "squared", "huber": "huber"}[loss]
    full = None if weights is None else np.broadcast_to(weights.reshape(weights.shape + (1,) * (y_pred.ndim - weights.ndim)), y_pred.shape)
    columns = [slice(None)] if axis is None or y_pred.ndim == 1 else [np.s_[:, j] for j in range(y_pred.shape[1])]
    as_list = lambda a, c: None if a is None else [int(v) if a.dtype.kind == "i" else float(v) for v in a[c].reshape(-1)]  # noqa: E731
    exact = [exact_value(name, 1.0, as_list(y_true, c), as_list(y_pred, c), as_list(full, c),
                         reduction if weights is not None or reduction != "weighted_mean" else "mean",
                         loss == "rmse", np.asarray(expected).dtype) for c in columns]
    assert np.array_equal(np.asarray(expected, np.float64).reshape(-1), np.array(exact), equal_nan=True)
    for chunks in _chunkings(rng, y_pred.shape):
        arrays = [da.from_array(a, chunks=chunks if a.ndim == len(chunks) else chunks[:1]) for a in (y_true, y_pred)]
        w = None if weights is None else da.from_array(weights, chunks=chunks[:weights.ndim])
        got = dask_function(*arrays, w, axis=axis, reduction=reduction, split_every=int(rng.integers(2, 5)))
        assert _same(got, expected), (chunks, got, expected)


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_the_exact_road_gives_the_same_bits(client, loss):
    """The road the certificate declines to (every block's exact state, merged exactly)."""
    rng = np.random.default_rng(7)
    y_true = rng.standard_normal((90, 3)).astype(np.float32)
    y_pred = rng.standard_normal((90, 3)).astype(np.float32)
    weights = rng.random(90).astype(np.float32) - 0.2
    dask_function, function = LOSSES[loss]
    entry = {"mse": "squared", "mae": "absolute", "rmse": "squared", "huber": "huber"}[loss]
    for axis in (None, 0):
        for w, reduction in ((None, "mean"), (weights, "weighted_mean")):
            expected = function(y_true, y_pred, w, axis=axis, reduction=reduction)
            for chunks in _chunkings(rng, y_pred.shape):
                got = fd._reduce(entry, da.from_array(y_true, chunks=chunks), da.from_array(y_pred, chunks=chunks),
                                 None if w is None else da.from_array(w, chunks=chunks[:1]), reduction, axis,
                                 1.0 if loss == "huber" else 0.0, loss == "rmse", None, exact=True)
                assert _same(got, expected), (axis, reduction, chunks, got, expected)


def test_a_result_on_a_rounding_boundary_takes_the_exact_road(client, monkeypatch):
    """|d| = 1 and 1 + 2**-23: the mean is the float32 midpoint 1 + 2**-24 (ties to even: 1.0),
    which no bound can decide; the exact road runs and gives one call's bits."""
    roads = []
    exact_reduce = fd._exact_reduce
    monkeypatch.setattr(fd, "_exact_reduce", lambda *a, **k: roads.append(1) or exact_reduce(*a, **k))
    y_pred = np.array([1.0, 1.0 + 2.0 ** -23] * 8, np.float32)
    y_true = np.zeros_like(y_pred)
    for chunks in (16, 3, 5, 1, 8):
        got = fd.mae(da.from_array(y_true, chunks=chunks), da.from_array(y_pred, chunks=chunks))
        assert _same(got, fastl2.mae(y_true, y_pred)) and got == np.float32(1.0)
    assert len(roads) == 5
    roads.clear()
    y_pred = np.linspace(0.5, 2.0, 64, dtype=np.float32)  # (an ordinary mean: the certified road)
    assert _same(fd.mae(da.from_array(np.zeros_like(y_pred), chunks=7), da.from_array(y_pred, chunks=9)),
                 fastl2.mae(np.zeros_like(y_pred), y_pred))
    assert roads == []


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_and_empty_arrays(client, special):
    rng = np.random.default_rng(3)
    y_true, y_pred = rng.standard_normal(50), rng.standard_normal(50)
    y_pred[17] = special
    for chunks in (50, 7, 1):
        for name, (dask_function, function) in LOSSES.items():
            got = dask_function(da.from_array(y_true, chunks=chunks), da.from_array(y_pred, chunks=chunks))
            assert _same(got, function(y_true, y_pred)), name
    empty = da.zeros(0, chunks=1)
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        assert np.isnan(fd.mse(empty, empty))
    assert _same(fd.mse(empty, empty, reduction="sum"), fastl2.mse(np.zeros(0), np.zeros(0), reduction="sum"))


def test_weights_summing_to_zero_raise_as_fastl2_does(client):
    y_true, weights = np.arange(6.0), np.array([1.0, -1.0, 2.0, -2.0, 0.5, -0.5])
    for axis, shape in ((None, (6,)), (0, (6, 1))):
        with pytest.raises(ValueError) as expected:
            fastl2.mse(y_true.reshape(shape), np.zeros(shape), weights, axis=axis, reduction="weighted_mean")
        with pytest.raises(ValueError) as got:
            fd.mse(da.from_array(y_true.reshape(shape), chunks=2), da.zeros(shape, chunks=3),
                   da.from_array(weights, chunks=4), axis=axis, reduction="weighted_mean")
        assert str(got.value) == str(expected.value)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weights_of_mixed_sign_beyond_any_condition_number_give_the_exact_value(client, dtype):
    """Terms that cancel to 2**-40 of their magnitudes (a condition number of 2**40, past the
    one call's 1024): the bounds are measured on |weights|, so the result is still the exact
    value rounded once, for every chunking."""
    rng = np.random.default_rng(11)
    d = rng.standard_normal(64).astype(dtype)
    w = rng.random(64).astype(dtype) + 0.5
    y_pred = np.concatenate([d, d])
    weights = np.concatenate([w, -w])
    weights[0] = weights[0] * (1 + np.finfo(dtype).eps)  # (all that is left of the sum)
    y_true = np.zeros_like(y_pred)
    for reduction in ("sum", "weighted_mean"):
        exact = exact_value("squared", 1.0, [0.0] * 128, [float(v) for v in y_pred], [float(v) for v in weights],
                            reduction, False, dtype)
        for chunks in (128, 64, 9, 1, 100):
            got = fd.mse(da.from_array(y_true, chunks=chunks), da.from_array(y_pred, chunks=chunks),
                         da.from_array(weights, chunks=chunks), reduction=reduction)
            assert got.dtype == dtype and float(got) == exact, (reduction, chunks, got, exact)


def test_found_by_review(client):
    """A fresh reviewer's finds, each a kind: outputs of zero columns; a zero weight sum in a
    later block of columns named by its index among all outputs; a length-1 dimension in
    several chunks (one empty), which blockwise would broadcast; in-memory weights of zeros
    named before a bad multioutput, as fastl2.metrics orders its checks."""
    y = np.zeros((5, 0))
    assert _same(fd.mse(da.from_array(y), da.from_array(y), axis=0), fastl2.mse(y, y, axis=0))
    rng = np.random.default_rng(0)
    y_true = rng.standard_normal((4, 40))
    weights = np.ones((4, 40))
    weights[:, 32] = [1, -1, 2, -2]
    with pytest.raises(ValueError) as expected:
        fastl2.mse(y_true, y_true + 1, weights, axis=0, reduction="weighted_mean")
    for chunks in ((4, 30), (2, 7), (4, 40)):
        with pytest.raises(ValueError) as got:
            fd.mse(*(da.from_array(a, chunks=chunks) for a in (y_true, y_true + 1, weights)), axis=0,
                   reduction="weighted_mean")
        assert str(got.value) == str(expected.value)
    one = da.from_array(np.array([1.0]), chunks=((0, 1),))
    assert _same(fd.mse(one, da.from_array(np.array([3.0]), chunks=1)), fastl2.mse([1.0], [3.0]))
    with pytest.raises(ValueError, match="non-zero number"):
        fd.mean_squared_error([1.0, 2.0], [1.0, 3.0], sample_weight=[0.0, 0.0], multioutput=[1.0, 2.0])


@pytest.mark.parametrize("call, error, match", [
    (lambda y: fd.mse(y, y, reduction="none"), ValueError, "reduction"),
    (lambda y: fd.rmse(y, y, reduction="sum"), ValueError, "reduction"),
    (lambda y: fd.mse(y, y[:5]), ValueError, "same shape"),
    (lambda y: fd.mse(y, y, axis=1), ValueError, "axis"),
    (lambda y: fd.mse(y, y, axis=True), (TypeError, ValueError), "axis"),
    (lambda y: fd.mse(y, y, axis=0.0), TypeError, "axis"),
    (lambda y: fd.huber(y, y, delta=0.0), ValueError, "delta"),
    (lambda y: fd.huber(y, y, delta="1"), TypeError, "delta"),
    (lambda y: fd.mse(y, y, da.ones(7, chunks=3)), ValueError, "weights"),
    (lambda y: fd.mse(da.zeros((2, 2, 2)), da.zeros((2, 2, 2))), ValueError, "2-d"),
    (lambda y: fd.mse(y, y.astype(complex)), (TypeError, ValueError), "complex|dtype"),
    (lambda y: fd.mse(y[y > 0], y[y > 0]), ValueError, "known shape"),
])
def test_bad_arguments_raise_before_anything_is_computed(call, error, match):
    y = da.from_array(np.arange(12.0), chunks=5)
    with pytest.raises(error, match=match):
        call(y)


# ---------------------------------------------------------------------------- the metrics

METRICS = ("mean_squared_error", "root_mean_squared_error", "mean_absolute_error")


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(seed=st.integers(0, 2 ** 32 - 1), outputs=st.integers(0, 3), weighted=st.booleans(),
       multioutput=st.sampled_from(["raw_values", "uniform_average", "array"]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_metrics_match_fastl2_metrics(client, seed, outputs, weighted, multioutput, dtype):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    shape = (n,) if outputs == 0 else (n, outputs)
    y_true, y_pred = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    sample_weight = rng.random(n).astype(dtype) if weighted else None
    if multioutput == "array":
        if outputs < 2:
            multioutput = "uniform_average"
        else:
            multioutput = rng.random(outputs)
    for name in METRICS:
        expected = getattr(fastl2.metrics, name)(y_true, y_pred, sample_weight=sample_weight, multioutput=multioutput)
        for chunks in _chunkings(rng, shape, 3):
            got = getattr(fd, name)(da.from_array(y_true, chunks=chunks), da.from_array(y_pred, chunks=chunks),
                                    sample_weight=None if sample_weight is None else
                                    da.from_array(sample_weight, chunks=chunks[:1]), multioutput=multioutput)
            assert _same(got, expected), (name, chunks, got, expected)


def _outcome(call):
    """The error's type and message, or the value's repr (root_mean_squared_error passes an
    array multioutput to numpy.average unchecked, as scikit-learn does: no error for one output)."""
    try:
        return repr(call())
    except Exception as error:  # noqa: BLE001 (the type and message are compared)
        return type(error), str(error)


@pytest.mark.parametrize("case", [
    "nan", "inf", "outputs", "samples", "three_d", "multioutput", "weights_zero", "weights_cancel",
    "weights_2d", "custom_single",
])
@pytest.mark.parametrize("name", METRICS)
def test_metric_errors_as_fastl2_metrics(client, case, name):
    rng = np.random.default_rng(5)
    y_true, y_pred = rng.standard_normal((20, 2)), rng.standard_normal((20, 2))
    kwargs = {}
    if case == "nan":
        y_true[4, 1] = np.nan
    elif case == "inf":
        y_pred[3, 0] = np.inf
    elif case == "outputs":
        y_pred = y_pred[:, :1]
    elif case == "samples":
        y_pred = y_pred[:10]
    elif case == "three_d":
        y_true, y_pred = y_true.reshape(20, 2, 1), y_pred.reshape(20, 2, 1)
    elif case == "multioutput":
        kwargs["multioutput"] = "variance_weighted"
    elif case == "weights_zero":
        kwargs["sample_weight"] = np.zeros(20)
    elif case == "weights_cancel":
        kwargs["sample_weight"] = np.tile([1.0, -1.0], 10)
    elif case == "weights_2d":
        kwargs["sample_weight"] = np.ones((20, 2))
    elif case == "custom_single":
        y_true, y_pred, kwargs["multioutput"] = y_true[:, 0], y_pred[:, 0], [1.0]

    def as_dask(value):
        return da.from_array(value, chunks=7) if isinstance(value, np.ndarray) else value

    expected = _outcome(lambda: getattr(fastl2.metrics, name)(y_true, y_pred, **kwargs))
    got = _outcome(lambda: getattr(fd, name)(as_dask(y_true), as_dask(y_pred),
                                             **{k: as_dask(v) for k, v in kwargs.items()}))
    assert got == expected
    assert isinstance(expected, tuple) or (name, case) == ("root_mean_squared_error", "custom_single")


def test_import_fastl2_does_not_import_dask():
    import subprocess
    import sys

    code = "import sys, fastl2, fastl2.metrics; print(any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
