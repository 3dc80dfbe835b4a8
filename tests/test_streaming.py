"""Streaming metrics (fastl2.MeanSquaredError and the others): any split of the data into
updates, merged in any order, gives the bits of one fastl2 call on all of it."""
from __future__ import annotations

import io
import pickle
import random
import threading
import warnings

import numpy as np
import pytest

import fastl2

METRICS = {
    "mse": (fastl2.MeanSquaredError, fastl2.mse, {}),
    "mae": (fastl2.MeanAbsoluteError, fastl2.mae, {}),
    "rmse": (fastl2.RootMeanSquaredError, fastl2.rmse, {}),
    "huber": (fastl2.HuberLoss, fastl2.huber, {"delta": 0.75}),
}
CONFIGS = [  # (axis, reduction, weighted, dtype)
    (None, "mean", False, np.float64),
    (None, "weighted_mean", True, np.float32),
    (0, "mean", False, np.float32),
    (0, "sum", True, np.float64),
]
SPLITS_PER_METRIC = 1000


def _data(rng, axis, weighted, dtype, rows=60):
    shape = (rows,) if axis is None else (rows, 3)
    y_true = (rng.standard_normal(shape) * 2.0 ** rng.integers(-20, 20, shape)).astype(dtype)
    y_pred = (y_true + rng.standard_normal(shape) * 2.0 ** rng.integers(-30, 5, shape)).astype(dtype)
    weights = rng.random(rows).astype(dtype) if weighted else None
    return y_true, y_pred, weights


def _random_split_result(cls, kwargs, data, rng: random.Random):
    """A random split of the rows into batches, each batch into one of several metrics
    (shards), the shards merged in a random order (some through pickle or plain arrays)."""
    y_true, y_pred, weights = data
    rows = len(y_true)
    cuts = sorted(rng.sample(range(1, rows), rng.randint(0, min(12, rows - 1))))
    bounds = list(zip([0] + cuts, cuts + [rows]))
    shards = [cls(**kwargs) for _ in range(rng.randint(1, 4))]
    for start, stop in bounds:
        shard = rng.choice(shards)
        shard.update(y_true[start:stop], y_pred[start:stop], None if weights is None else weights[start:stop])
    rng.shuffle(shards)
    total = shards[0]
    for shard in shards[1:]:
        how = rng.randrange(3)
        if how == 1:
            shard = pickle.loads(pickle.dumps(shard))
        elif how == 2:
            shard = cls(**kwargs).from_arrays(shard.to_arrays())
        total.merge(shard)
    return total.result()


@pytest.mark.parametrize("name", list(METRICS))
def test_any_split_and_merge_order_gives_the_bits_of_one_call(name):
    cls, function, extra = METRICS[name]
    rng = np.random.default_rng(hash(name) % 2**32)
    shuffle = random.Random(name)
    configs = [c for c in CONFIGS if not (name == "rmse" and c[1] == "sum")]  # (no root of a sum)
    checked = 0
    for axis, reduction, weighted, dtype in configs:
        kwargs = dict(extra, axis=axis, reduction=reduction)
        for _ in range(3):  # (three data sets per configuration)
            data = _data(rng, axis, weighted, dtype)
            one_call = function(*data[:2], data[2], axis=axis, reduction=reduction, **extra)
            for _ in range(-(-SPLITS_PER_METRIC // (3 * len(configs)))):
                checked += 1
                result = _random_split_result(cls, kwargs, data, shuffle)
                assert np.asarray(result).dtype == np.asarray(one_call).dtype
                assert np.asarray(result).tobytes() == np.asarray(one_call).tobytes(), (axis, reduction)
    assert checked >= SPLITS_PER_METRIC


def test_updates_from_several_threads_give_the_bits_of_one_call():
    rng = np.random.default_rng(5)
    y_true, y_pred, weights = _data(rng, None, True, np.float64, rows=4000)
    metric = fastl2.MeanSquaredError(reduction="weighted_mean")
    batches = [slice(i, i + 100) for i in range(0, 4000, 100)]

    def work(part):
        for s in part:
            metric.update(y_true[s], y_pred[s], weights[s])

    threads = [threading.Thread(target=work, args=(batches[k::4],)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert metric.result().tobytes() == fastl2.mse(y_true, y_pred, weights, reduction="weighted_mean").tobytes()


def test_the_state_is_plain_arrays_that_any_transport_carries():
    rng = np.random.default_rng(6)
    y_true, y_pred, _ = _data(rng, 0, False, np.float32)
    parts = [fastl2.MeanAbsoluteError(axis=0).update(y_true[s], y_pred[s]) for s in (slice(0, 25), slice(25, None))]
    carried = []
    for part in parts:
        buffer = io.BytesIO()
        np.savez(buffer, **part.to_arrays())  # (what an all-gather or a queue would carry)
        buffer.seek(0)
        with np.load(buffer, allow_pickle=False) as loaded:
            carried.append(fastl2.MeanAbsoluteError(axis=0).from_arrays(dict(loaded)))
    merged = carried[1].merge(carried[0])
    assert merged.result().tobytes() == fastl2.mae(y_true, y_pred, axis=0).tobytes()
    assert all(a.dtype != object for a in parts[0].to_arrays().values())


def test_reset_result_before_updates_and_repr():
    metric = fastl2.MeanSquaredError()
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        assert np.isnan(metric.result())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fastl2.MeanSquaredError(reduction="sum").result() == 0.0
    metric.update([1.0, 2.0], [2.0, 2.0])
    assert metric.result() == 0.5 and "2 elements" in repr(metric)
    metric.reset()
    metric.update([1.0], [4.0])
    assert metric.result() == 9.0
    assert metric.compute() == 9.0


def test_inconsistent_updates_and_merges_are_refused_and_leave_the_metric_unchanged():
    metric = fastl2.MeanSquaredError(axis=0).update(np.ones((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="weights, or none"):
        metric.update(np.ones((3, 2)), np.zeros((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match=r"outputs of shape \(3,\) after batches of outputs of shape \(2,\)"):
        metric.update(np.ones((3, 3)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="y_pred"):  # (fastl2.mse's own check of the batch)
        metric.update(np.ones((3, 2)), np.zeros((4, 2)))
    assert metric.result().tolist() == [1.0, 1.0]
    with pytest.raises(TypeError, match="MeanAbsoluteError"):
        metric.merge(fastl2.MeanAbsoluteError(axis=0))
    with pytest.raises(ValueError, match="same axis, reduction"):
        metric.merge(fastl2.MeanSquaredError(axis=None))
    with pytest.raises(ValueError, match="another loss"):
        fastl2.MeanSquaredError().from_arrays(fastl2.HuberLoss().update([1.0], [2.0]).to_arrays())
    with pytest.raises(ValueError, match="axis must be None"):
        fastl2.MeanSquaredError(axis=1)
    with pytest.raises(ValueError, match="reduction"):
        fastl2.RootMeanSquaredError(reduction="sum")
    with pytest.raises(ValueError, match="delta"):
        fastl2.HuberLoss(delta=-1.0).update([1.0], [2.0])


def test_nothing_is_written_to_the_batches():
    rng = np.random.default_rng(8)
    y_true, y_pred, weights = _data(rng, 0, True, np.float64)
    copies = [a.copy() for a in (y_true, y_pred, weights)]
    fastl2.HuberLoss(axis=0, reduction="weighted_mean").update(y_true, y_pred, weights).result()
    assert all(a.tobytes() == b.tobytes() for a, b in zip(copies, (y_true, y_pred, weights)))


def test_result_types_follow_one_call_and_from_arrays_checks_the_outputs():
    y_true, y_pred = np.array([1.0, 2.0, 4.0]), np.array([1.5, 2.0, 3.0])
    metric = fastl2.MeanSquaredError(axis=0).update(y_true[:2], y_pred[:2]).update(y_true[2:], y_pred[2:])
    one_call = fastl2.mse(y_true, y_pred, axis=0)
    assert type(metric.result()) is type(one_call) and metric.result().shape == one_call.shape == ()
    assert metric.result().tobytes() == one_call.tobytes()
    assert type(fastl2.MeanSquaredError().update(y_true, y_pred).result()) is type(fastl2.mse(y_true, y_pred))
    per_output = fastl2.MeanSquaredError(axis=0).update(np.ones((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"outputs of shape \(3,\)"):
        fastl2.MeanSquaredError().from_arrays(per_output.to_arrays())


def test_where_one_call_overflows_the_metric_is_the_exact_value_rounded_once():
    # (README: the metric's promise is the exact value; one call overflows inside its sum)
    args = ([0.0, 0.0], [1e200, 1.0], [1e-100, 1.0])
    assert fastl2.mse(*args, reduction="sum") == np.inf
    from fractions import Fraction
    exact = Fraction(1e-100) * Fraction(1e200) ** 2 + 1
    assert fastl2.MeanSquaredError(reduction="sum").update(*args).result() == float(exact)
