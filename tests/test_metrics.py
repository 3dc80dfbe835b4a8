"""fastl2.metrics against scikit-learn's own metrics and against the exact values.

Values: each per-output error is the exact value (Fractions) of the inputs as scikit-learn
converts them, rounded once to their dtype; the averages over outputs are what the module's
docstring promises (the pooled exact mean for the three mean metrics' "uniform_average", else
``numpy.average`` of the correctly rounded per-output errors).  So wherever scikit-learn's own
result is the correctly rounded one, fastl2's has its bits.  Types, dtypes, shapes, and the
error types of bad inputs are scikit-learn's (its metrics are called on every case).
"""
from __future__ import annotations

import math
import subprocess
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import fastl2
import fastl2.metrics as fm
import reference as ref

sk = pytest.importorskip("sklearn.metrics", reason="scikit-learn is an optional peer (the test extra installs it)")

METRICS = ["mean_squared_error", "root_mean_squared_error", "mean_absolute_error",
           "mean_squared_log_error", "root_mean_squared_log_error"]
LOG = {"mean_squared_log_error", "root_mean_squared_log_error"}
ROOT = {"root_mean_squared_error", "root_mean_squared_log_error"}


def _converted(y_true, y_pred, weights):
    """The inputs as scikit-learn converts them: the floating dtype of those that have one."""
    floating = [np.asarray(v).dtype for v in (y_true, y_pred, weights)
                if v is not None and hasattr(v, "dtype") and np.issubdtype(v.dtype, np.floating)]
    dtype = np.result_type(*floating) if floating else np.dtype(np.float64)
    convert = (lambda v: None if v is None else np.asarray(v).astype(dtype))
    return dtype, convert(y_true), convert(y_pred), convert(weights)


def expected(name, y_true, y_pred, weights, multioutput):
    """The promised result, from exact rationals."""
    dtype, y_true, y_pred, weights = _converted(y_true, y_pred, weights)
    if name in LOG:
        y_true, y_pred = np.log1p(y_true), np.log1p(y_pred)
    y_true, y_pred = y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)
    w = [Fraction(1)] * len(y_true) if weights is None else [Fraction(float(v)) for v in weights]
    outputs = y_true.shape[1]
    means = []
    for j in range(outputs):
        total = Fraction(0)
        for i in range(len(y_true)):
            d = Fraction(float(y_pred[i, j])) - Fraction(float(y_true[i, j]))
            total += w[i] * (abs(d) if name == "mean_absolute_error" else d * d)
        means.append(total / sum(w))
    exact = [ref.sqrt_fraction(m) if name in ROOT else m for m in means]
    raw = np.array([ref.round_exact(v, dtype if dtype != np.float16 else np.float32) for v in exact]
                   ).astype(dtype).reshape(outputs)
    if isinstance(multioutput, str):
        if multioutput == "raw_values":
            return raw
        if name not in ROOT:
            pooled = sum(means) / outputs
            return float(np.asarray(ref.round_exact(pooled, dtype if dtype != np.float16 else np.float32)).astype(dtype))
        return float(np.average(raw))
    return float(np.average(raw, weights=multioutput))


def same_bits(actual, wanted) -> bool:
    return (type(actual) is type(wanted) and np.shape(actual) == np.shape(wanted)
            and np.asarray(actual).dtype == np.asarray(wanted).dtype
            and np.asarray(actual).tobytes() == np.asarray(wanted).tobytes())


def _kappa_ok(y_true, y_pred, weights) -> bool:
    """Mixed-sign weights within the promise's condition number (1024) for the loss sums and
    the weight sum (README: correctly rounded up to it)."""
    if weights is None or (np.asarray(weights) >= 0).all():
        return True
    _, y_true, y_pred, weights = _converted(y_true, y_pred, weights)
    w = [Fraction(float(v)) for v in weights]
    if sum(w) == 0 or sum(abs(v) for v in w) > 1024 * abs(sum(w)):
        return False
    yt, yp = y_true.reshape(len(y_true), -1), y_pred.reshape(len(y_pred), -1)
    for logs in (False, True) if (yt > -1).all() and (yp > -1).all() else (False,):
        a, b = (np.log1p(yt), np.log1p(yp)) if logs else (yt, yp)
        for j in range(a.shape[1]):
            for absolute in (False, True):
                terms = []
                for i in range(len(a)):
                    d = Fraction(float(b[i, j])) - Fraction(float(a[i, j]))
                    terms.append(w[i] * (abs(d) if absolute else d * d))
                if sum(abs(t) for t in terms) > 1024 * abs(sum(terms)):
                    return False
    return True


finite = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, width=64),
    st.integers(-1000, 1000).map(float),
    st.floats(0.0, 10.0, allow_nan=False).map(lambda x: x * 2.0**-30 + 1.0),  # near-equal pairs
)


@st.composite
def cases(draw):
    n = draw(st.integers(1, 24))
    outputs = draw(st.sampled_from([None, 1, 2, 4]))
    shape = (n,) if outputs is None else (n, outputs)
    dtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
    size = int(np.prod(shape))
    values = draw(st.lists(finite, min_size=2 * size, max_size=2 * size))
    data = np.abs(np.array(values)) if draw(st.booleans()) else np.array(values)  # (>= 0: the log metrics' domain)
    y_true = data[:size].reshape(shape).astype(dtype)
    y_pred = data[size:].reshape(shape).astype(dtype)
    weights = draw(st.one_of(
        st.none(),
        st.lists(st.floats(0.0, 100.0), min_size=n, max_size=n).map(np.array),
        st.lists(st.floats(-4.0, 4.0), min_size=n, max_size=n).map(np.array),
        st.lists(st.floats(0.0, 2.0, width=32), min_size=n, max_size=n).map(lambda v: np.array(v, np.float32)),
    ))
    if weights is not None:
        assume(math.fsum(weights.tolist()) != 0.0)
    m = 1 if outputs is None else outputs
    forms = ["raw_values", "uniform_average"]
    if m > 1:
        forms.append(np.array(draw(st.lists(st.floats(0.0, 5.0), min_size=m, max_size=m))))
        assume(forms[-1].sum() > 0)
    return y_true, y_pred, weights, forms


def _call(module, name, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (scikit-learn's own overflow or precision warnings)
        return getattr(module, name)(*args, **kwargs)


@pytest.mark.parametrize("backend", fastl2.available_backends())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(case=cases())
def test_every_metric_is_the_exact_value_rounded_and_has_scikit_learns_types(backend, case):
    y_true, y_pred, weights, forms = case
    assume(_kappa_ok(y_true, y_pred, weights))
    before = [a.copy() for a in (y_true, y_pred) + (() if weights is None else (weights,))]
    previous = fastl2.get_backend()
    fastl2.set_backend(backend)
    try:
        for name in METRICS:
            if name in LOG and ((y_true < 0).any() or (y_pred < 0).any()):
                continue
            for multioutput in forms:
                ours = _call(fm, name, y_true, y_pred, sample_weight=weights, multioutput=multioutput)
                wanted = expected(name, y_true, y_pred, weights, multioutput)
                assert same_bits(ours, wanted), (name, multioutput, ours, wanted)
                theirs = _call(sk, name, y_true, y_pred, sample_weight=weights, multioutput=multioutput)
                assert type(theirs) is type(ours) and np.shape(theirs) == np.shape(ours)
                assert np.asarray(theirs).dtype == np.asarray(ours).dtype
                # wherever scikit-learn's value is the correctly rounded one, fastl2's is too
                if isinstance(multioutput, str) and multioutput == "raw_values":
                    right = np.asarray(theirs) == np.asarray(wanted)
                    assert (np.asarray(ours)[right] == np.asarray(theirs)[right]).all()
                elif theirs == wanted:
                    assert ours == theirs
    finally:
        fastl2.set_backend(previous)
    for old, new in zip(before, (y_true, y_pred) + (() if weights is None else (weights,))):
        assert old.tobytes() == new.tobytes()  # nothing written to an input


def test_float32_results_are_correctly_rounded_where_scikit_learns_are_not():
    # float32 sums rounded at every step (scikit-learn) against the exact value rounded once
    rng = np.random.default_rng(7)
    y_true = rng.random((3000, 2), dtype=np.float32)
    y_pred = y_true + rng.standard_normal((3000, 2), dtype=np.float32)
    weights = rng.random(3000).astype(np.float32)
    differ = 0
    for name in ("mean_squared_error", "mean_absolute_error"):
        ours = fm.__dict__[name](y_true, y_pred, sample_weight=weights, multioutput="raw_values")
        wanted = expected(name, y_true, y_pred, weights, "raw_values")
        theirs = _call(sk, name, y_true, y_pred, sample_weight=weights, multioutput="raw_values")
        assert ours.tobytes() == wanted.tobytes()
        differ += int((theirs != wanted).sum())
    assert differ > 0  # (the case is one where scikit-learn's last bits are off)


GOOD_INPUTS = {
    "lists": ([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0], {}),
    "n beside (n, 1)": (np.array([3.0, 0.5, 2.0]), np.array([[2.5], [0.0], [2.0]]), {}),
    "integers": (np.array([3, 1, 2]), np.array([2, 0, 7]), {}),
    "booleans": (np.array([True, False, True]), np.array([True, True, False]), {}),
    "numeric strings": (np.array(["1.5", "2", "3"]), np.array([1.0, 2.5, 3.0]), {}),
    "numeric objects": (np.array([1.5, 2, 3], dtype=object), [1, 2, 3], {}),
    "float32 beside float64": (np.array([1.5, 2.0, 3.0], np.float32), np.array([1.0, 2.5, 3.25]), {}),
    "float32 with float64 weights": (np.array([1.5, 2.0], np.float32), np.array([1.0, 2.5], np.float32),
                                     {"sample_weight": np.array([0.5, 2.0])}),
    "float16": (np.array([1.5, 2.0, 3.0], np.float16), np.array([1.0, 2.5, 3.25], np.float16), {}),
    "list weights": ([[1.0, 2.0], [3.0, 4.0]], [[1.5, 2.0], [3.0, 5.0]], {"sample_weight": [1, 3]}),
    "mixed-sign weights": ([1.0, 2.0, 3.0], [1.5, 2.0, 5.0], {"sample_weight": [2.0, -1.0, 1.0]}),
    "integer multioutput": ([[1.0, 2.0], [3.0, 4.0]], [[1.5, 2.0], [3.0, 5.0]], {"multioutput": [1, 3]}),
    "list multioutput": ([[1.0, 2.0], [3.0, 4.0]], [[1.5, 2.0], [3.0, 5.0]], {"multioutput": [0.3, 0.7]}),
    "raw values of one output": ([1.0, 2.0], [1.5, 2.0], {"multioutput": "raw_values"}),
    "squares beyond float64": ([1e200, 0.0], [3e200, 0.0], {}),
    "zero weight beside others": ([1.0, 5.0], [2.0, 1.0], {"sample_weight": [0.0, 1.0]}),
    "float16 with weights (float64 errors)": (np.array([1, 2, 3], np.float16), np.array([1.5, 2, 4], np.float16),
                                              {"sample_weight": [1, 2, 3], "multioutput": "raw_values"}),
    "integers with float16 weights": (np.array([1, 2, 3]), np.array([2, 2, 4]),
                                      {"sample_weight": np.array([1, 2, 3], np.float16)}),
}
try:
    import torch  # (a CPU tensor is an array-like for scikit-learn: converted with numpy.asarray)
except ImportError:
    pass
else:
    GOOD_INPUTS.update({
        "torch float32 tensors": (torch.tensor([1.0, 2.0, 4.0]), torch.tensor([1.0, 3.0, 3.5]), {}),
        "torch integers, float64 weights": (torch.tensor([1, 2, 4]), np.array([1.0, 3.0, 3.5]),
                                            {"sample_weight": torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)}),
        "torch float16": (torch.tensor([1.0, 2.0], dtype=torch.float16), torch.tensor([1.5, 2.0], dtype=torch.float16), {}),
    })


@pytest.mark.parametrize("name", METRICS)
@pytest.mark.parametrize("case", list(GOOD_INPUTS))
def test_accepted_inputs_give_scikit_learns_types_and_values(name, case):
    y_true, y_pred, kwargs = GOOD_INPUTS[case]
    theirs = _call(sk, name, y_true, y_pred, **kwargs)
    ours = _call(fm, name, y_true, y_pred, **kwargs)
    assert type(ours) is type(theirs) and np.shape(ours) == np.shape(theirs)
    assert np.asarray(ours).dtype == np.asarray(theirs).dtype
    np.testing.assert_allclose(np.asarray(ours, np.float64), np.asarray(theirs, np.float64), rtol=1e-3)


def _matrix(rows):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # (NumPy's note on np.matrix)
        return np.matrix(rows)


BAD_INPUTS = {
    "scalar y_true": (1.0, [1.0], {}),
    "string y_true": ("abc", [1.0, 2.0, 3.0], {}),
    "0-d y_true": (np.array(1.0), np.array([1.0]), {}),
    "None y_pred": ([1.0], None, {}),
    "lengths differ": ([1.0, 2.0, 3.0], [1.0, 2.0], {}),
    "nan in y_true": ([1.0, np.nan], [1.0, 2.0], {}),
    "inf in y_pred": ([1.0, 2.0], [1.0, np.inf], {}),
    "-inf in float32 y_pred": (np.array([1.0, 2.0], np.float32), np.array([1.0, -np.inf], np.float32), {}),
    "nan with weights summing to zero": ([1.0, np.nan], [1.0, 2.0], {"sample_weight": [1.0, -1.0]}),
    "empty": ([], [], {}),
    "3-D": (np.ones((2, 2, 2)), np.ones((2, 2, 2)), {}),
    "no outputs": (np.ones((3, 0)), np.ones((3, 0)), {}),
    "complex": (np.array([1 + 1j, 2]), np.array([1.0, 2.0]), {}),
    "complex list": ([1 + 1j, 2], [1.0, 2.0], {}),
    "complex list sample_weight": ([1.0, 2.0], [1.0, 2.0], {"sample_weight": [1 + 1j, 2]}),
    "np.matrix": (_matrix([[1.0], [2.0]]), np.ones((2, 1)), {}),
    "0-d multioutput": (np.ones((3, 2)), np.ones((3, 2)), {"multioutput": np.array(1.0)}),
    "strings": (np.array(["a", "b"]), np.array([1.0, 2.0]), {}),
    "outputs differ": (np.ones((3, 2)), np.ones((3, 3)), {}),
    "multioutput unknown": (np.ones((3, 2)), np.ones((3, 2)), {"multioutput": "foo"}),
    "multioutput variance_weighted": (np.ones((3, 2)), np.ones((3, 2)), {"multioutput": "variance_weighted"}),
    "multioutput int": (np.ones((3, 2)), np.ones((3, 2)), {"multioutput": 3}),
    "multioutput None": (np.ones((3, 2)), np.ones((3, 2)), {"multioutput": None}),
    "multioutput weights of one output": ([1.0, 2.0], [1.0, 3.0], {"multioutput": [1.0]}),
    "multioutput weights too few": (np.ones((3, 2)), np.ones((3, 2)), {"multioutput": [1.0]}),
    "multioutput weights with nan": (np.ones((3, 2)), np.ones((3, 2)), {"multioutput": [1.0, np.nan]}),
    "multioutput weights strings": (np.ones((3, 2)), np.ones((3, 2)), {"multioutput": np.array(["a", "b"])}),
    "multioutput weights summing to zero": (np.ones((3, 2)), np.zeros((3, 2)), {"multioutput": [1.0, -1.0]}),
    "scalar sample_weight": ([1.0, 2.0], [1.0, 3.0], {"sample_weight": 2.0}),
    "string sample_weight": ([1.0, 2.0], [1.0, 3.0], {"sample_weight": "ab"}),
    "2-D sample_weight": ([1.0, 2.0], [1.0, 3.0], {"sample_weight": [[1.0, 2.0]]}),
    "sample_weight too long": ([1.0, 2.0], [1.0, 3.0], {"sample_weight": [1.0, 2.0, 3.0]}),
    "sample_weight with nan": ([1.0, 2.0], [1.0, 3.0], {"sample_weight": [1.0, np.nan]}),
    "sample_weight with inf": ([1.0, 2.0], [1.0, 3.0], {"sample_weight": [1.0, np.inf]}),
    "sample_weight all zero": ([1.0, 2.0], [1.0, 3.0], {"sample_weight": [0.0, 0.0]}),
    "sample_weight summing to zero": ([1.0, 2.0], [1.0, 3.0], {"sample_weight": [1.0, -1.0]}),
    "targets at -1": ([-1.0, 2.0], [1.0, 3.0], {}),
    "targets below -1": ([1.0, 2.0], [1.0, -3.0], {}),
}


def _outcome(module, name, y_true, y_pred, kwargs):
    try:
        return "value", _call(module, name, y_true, y_pred, **kwargs)
    except Exception as exc:  # noqa: BLE001 (the type is the comparison)
        return "raises", type(exc).__name__


@pytest.mark.parametrize("name", METRICS)
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_inputs_raise_what_scikit_learn_raises(name, case):
    y_true, y_pred, kwargs = BAD_INPUTS[case]
    theirs = _outcome(sk, name, y_true, y_pred, kwargs)
    ours = _outcome(fm, name, y_true, y_pred, kwargs)
    if theirs[0] == "value":  # (e.g. -1 targets of the non-log metrics)
        assert ours[0] == "value" and type(ours[1]) is type(theirs[1]), (ours, theirs)
        np.testing.assert_allclose(np.asarray(ours[1], np.float64), np.asarray(theirs[1], np.float64), rtol=1e-12)
    else:
        assert ours == theirs


def test_invalid_parameter_error_is_a_value_error_and_a_type_error():
    for kwargs in ({"multioutput": "foo"}, {"sample_weight": 2.0}):
        with pytest.raises(ValueError, match="must be"):
            fm.mean_squared_error([1.0], [2.0], **kwargs)
        with pytest.raises(TypeError, match="must be"):
            fm.mean_squared_error([1.0], [2.0], **kwargs)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="Input sample_weight contains NaN"):
        fm.mean_absolute_error([1.0, 2.0], [1.0, 3.0], sample_weight=[1.0, np.nan])
    with pytest.raises(ValueError, match="'multioutput' parameter of root_mean_squared_error"):
        fm.root_mean_squared_error([1.0], [1.0], multioutput="variance_weighted")
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[3, 2\]"):
        fm.mean_squared_error([1.0, 2.0, 3.0], [1.0, 2.0])


def test_the_metrics_work_without_scikit_learn():
    script = ("import sys; sys.modules['sklearn'] = None\n"  # (any import of it raises ImportError)
              "import numpy as np, fastl2.metrics as m\n"
              "print(m.mean_squared_error([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.5], [3.0, 6.0]], multioutput=[1, 3]),\n"
              "      m.root_mean_squared_log_error([1.0, 2.0], [1.5, 2.0], sample_weight=[1, 2]))\n"
              "try:\n    m.mean_absolute_error([1.0], [2.0], multioutput='foo')\n"
              "except m.InvalidParameterError as e:\n    print('raised', isinstance(e, (ValueError, TypeError)))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    mse = 3 * ((0.25 + 4.0) / 2) / 4  # (outputs 0 and 2.125, weighted 1 and 3)
    rmsle = math.sqrt((math.log1p(1.5) - math.log1p(1.0)) ** 2 / 3)
    assert result.stdout.split() == [repr(mse), repr(rmsle), "raised", "True"]


def test_importing_the_metrics_imports_no_optional_peer():
    script = ("import sys, fastl2.metrics as m\n"
              "m.mean_squared_error([1.0, 2.0], [1.0, 3.0])\n"
              "print(sorted(p for p in ('sklearn', 'scipy', 'torch', 'numba', 'dask') if p in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
