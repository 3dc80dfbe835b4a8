"""The exact sums (fastl2._exact.dyadic_totals) and the mergeable exact state built on them
(fastl2._state.ExactState): exact for operands of any real dtype and any finite value, and the
same bits for every split of the data into parts merged in any order.

What can break: an error-free piece that is not error-free where the inputs under- or
overflow (subnormals, values near the largest float64, a difference that overflows, a Huber
delta far from the data), an integer past 2**53 rounded by a cast to float64, a weight product
or a weight sum rounded, a merge that loses or doubles a part, a plain form (``to_arrays``) that
does not carry the state back, a result rounded twice (the sum, then its mean; the mean, then
its root).

The reference is independent of fastl2: each element's loss in Fractions from its inputs as
given, the reduction exact, rounded once by tests/ulp.py (float(Fraction) is correctly rounded
to float64) and reference.sqrt_fraction for the root.
"""
from __future__ import annotations

import math
import os
import pickle
import random
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastl2
import reference as ref
from fastl2 import _exact
from fastl2._state import ExactState

LOSS_NAMES = ("squared", "absolute", "huber")
EXAMPLES = int(os.environ.get("FASTL2_STATE_EXAMPLES", "300"))
BIG = float(np.finfo(np.float64).max)


# ------------------------------------------------------------------------ the exact reference


def element_loss(name: str, delta: float, t, p, w) -> Fraction:
    """w * l(p - t) exactly, from the Python values (ints of any size stay exact)."""
    return ref.fraction_loss(name, abs(Fraction(p) - Fraction(t)), delta) * Fraction(w)


def exact_totals(name, delta, t, p, w) -> tuple[Fraction, Fraction]:
    t = [0] * len(p) if t is None else list(t)
    w = [1] * len(p) if w is None else list(w)
    return (sum((element_loss(name, delta, *e) for e in zip(t, p, w)), Fraction(0)),
            sum((Fraction(x) for x in w), Fraction(0)))


def rounded(value: Fraction, dtype, root: bool = False) -> float:
    """The exact ``value`` (or its square root) rounded once to dtype (inf past its largest)."""
    if root:
        value = ref.sqrt_fraction(value)
    try:
        as64 = float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
    if np.dtype(dtype) == np.float64:
        return as64
    return float(ref.round_exact(np.array([value], dtype=object), dtype)[0])


def expected(name, delta, t, p, w, reduction, root, dtype) -> float:
    loss, weight = exact_totals(name, delta, t, p, w)
    divisor = {"sum": 1, "mean": len(p), "weighted_mean": weight}[reduction]
    return rounded(loss / divisor, dtype, root)


# ------------------------------------------------------------------------ operands of every kind

# float64 values of every range: ordinary, subnormal, near overflow, and a grid (ties)
finite64 = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-1e-300, 1e-300, allow_nan=False, allow_subnormal=True),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 2.0 ** -1022, BIG, -BIG, BIG / 3, 1.0, 2.0 ** 53 + 2]),
    st.integers(-8, 8).map(lambda k: k / 4),
)
wide_ints = st.one_of(st.integers(-2 ** 63, 2 ** 63 - 1),
                      st.integers(-2 ** 53 - 64, -2 ** 53 + 64), st.integers(2 ** 53 - 64, 2 ** 53 + 64))


@st.composite
def operands(draw, max_size=12, min_size=1, allow_ints=True):
    """(name, delta, y_true or None, y_pred, weights or None): NumPy arrays of one dtype each
    (float64, float32 or int64) and their Python values."""
    n = draw(st.integers(min_size, max_size))
    kinds = ["float64", "float32"] + (["int64"] if allow_ints else [])

    def array(kind):
        if kind == "int64":
            return np.array(draw(st.lists(wide_ints, min_size=n, max_size=n)), np.int64)
        values = draw(st.lists(finite64, min_size=n, max_size=n))
        if kind == "float32":
            with np.errstate(over="ignore"):
                values = np.array(values).astype(np.float32)
            return np.where(np.isfinite(values), values, np.float32(1.5))
        return np.array(values, np.float64)

    name = draw(st.sampled_from(LOSS_NAMES))
    delta = draw(st.one_of(st.just(1.0), st.floats(2.0 ** -1074, BIG, allow_nan=False).filter(lambda x: x > 0)))
    y_true = None if draw(st.integers(0, 9)) == 0 else array(draw(st.sampled_from(kinds)))
    y_pred = array(draw(st.sampled_from(kinds)))
    weights = None if draw(st.booleans()) else array(draw(st.sampled_from(kinds)))
    return name, delta, y_true, y_pred, weights


def python_values(a):
    return None if a is None else a.tolist()


CODES = {name: code for code, name in enumerate(LOSS_NAMES)}


# ----------------------------------------------------------------------------------- the sums

# The exact sums have two implementations: the compiled long accumulator (csrc/exact.c) where
# the compiled module is built, and NumPy's error-free pieces where it is not.
SUM_PATHS = (["compiled"] if _exact._compiled() is not None else []) + ["numpy"]


@pytest.fixture(params=SUM_PATHS)
def sum_path(request, monkeypatch):
    if request.param == "numpy":
        monkeypatch.setattr(_exact, "_compiled", lambda: None)
    return request.param


@settings(max_examples=EXAMPLES * 3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=operands())
def test_exact_sums_are_exact_for_every_dtype_and_range(sum_path, case):
    name, delta, t, p, w = case
    (m, e), (mw, ew), count = _exact.dyadic_totals(CODES[name], delta, t, p, w)
    loss, weight = exact_totals(name, delta, python_values(t), python_values(p), python_values(w))
    assert _exact._fraction(m, e) == loss
    if w is not None:
        assert _exact._fraction(mw, ew) == weight
    assert count == p.size


def test_exact_sums_of_many_elements_span_chunks(sum_path):
    """More elements than a chunk of the slow path (fastl2._exact._CHUNK), of every range."""
    rng = np.random.default_rng(16)
    n = 3 * _exact._CHUNK + 5
    t = np.ldexp(rng.standard_normal(n), rng.integers(-1070, 1000, n))
    p = np.ldexp(rng.standard_normal(n), rng.integers(-1070, 1000, n))
    w = np.ldexp(rng.random(n), rng.integers(-1000, 20, n))
    for name in LOSS_NAMES:
        (m, e), (mw, ew), _ = _exact.dyadic_totals(CODES[name], 1.0, t, p, w)
        loss, weight = exact_totals(name, 1.0, t.tolist(), p.tolist(), w.tolist())
        assert _exact._fraction(m, e) == loss and _exact._fraction(mw, ew) == weight


# --------------------------------------------------------------------------------- the state


def _cuts(draw, n: int) -> list[int]:
    return sorted(draw(st.lists(st.integers(0, n), max_size=4)))


def _merge_in_order(states, order_seed):
    """Merges the states in a random tree: random pairs, either side first."""
    states = list(states)
    rng = random.Random(order_seed)
    while len(states) > 1:
        a = states.pop(rng.randrange(len(states)))
        b = states.pop(rng.randrange(len(states)))
        states.append(a + b if rng.random() < 0.5 else b + a)
    return states[0]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_split_merged_in_any_order_gives_the_bits_of_the_exact_value(data):
    name, delta, t, p, w = data.draw(operands(allow_ints=True))
    t = np.zeros(p.size, np.float32) if t is None else t  # (a state is of y_true and y_pred both)
    cuts = _cuts(data.draw, p.size)
    pieces = lambda a: [None] * (len(cuts) + 1) if a is None else np.split(a, cuts)  # noqa: E731
    parts = [ExactState.of(name, ti, pi, wi, delta=delta) for ti, pi, wi in zip(pieces(t), pieces(p), pieces(w))]
    whole = ExactState.of(name, t, p, w, delta=delta)
    merged = _merge_in_order(parts, data.draw(st.integers(0, 2 ** 32)))
    assert merged == whole
    dtype = np.float32 if all(a is None or a.dtype == np.float32 for a in (t, p, w)) else np.float64
    reductions = ["sum", "mean"] + (["weighted_mean"] if w is not None else [])
    for reduction in reductions:
        for root in (False, True):
            if reduction == "weighted_mean" and exact_totals(name, delta, python_values(t), python_values(p),
                                                             python_values(w))[1] == 0:
                with pytest.raises(ValueError, match="weighted_mean"):
                    merged.result(reduction, root=root)
                continue
            want = expected(name, delta, python_values(t), python_values(p), python_values(w),
                            reduction, root, dtype)
            got = merged.result(reduction, root=root)
            assert got.dtype == dtype
            assert np.array_equal(np.asarray(got), np.asarray(whole.result(reduction, root=root)), equal_nan=True)
            if math.isnan(want):
                assert math.isnan(got)
            else:
                assert float(got) == want


@settings(max_examples=EXAMPLES // 3, deadline=None)
@given(operands(max_size=8), st.integers(0, 2 ** 32))
def test_the_plain_form_carries_the_state_and_its_limbs_concatenate_into_the_merge(case, seed):
    name, delta, t, p, w = case
    t = np.zeros(p.size, np.float32) if t is None else t
    rng = random.Random(seed)
    cut = rng.randint(0, p.size)
    split = lambda a: (None, None) if a is None else (a[:cut], a[cut:])  # noqa: E731
    a, b = (ExactState.of(name, ti, pi, wi, delta=delta) for ti, pi, wi in zip(split(t), split(p), split(w)))
    for state in (a, b, a + b):
        arrays = state.to_arrays()
        assert all(isinstance(v, np.ndarray) and v.dtype.kind in "fi" for v in arrays.values())
        assert ExactState.from_arrays(arrays) == state
        assert pickle.loads(pickle.dumps(state)) == state
        # each limb: an integer digit of at most 53 bits and an integer exponent
        limbs = arrays["loss"].reshape(-1, 2)
        assert np.all(np.abs(limbs[:, 0]) < 2.0 ** 53) and np.array_equal(limbs, np.trunc(limbs))
    # a gather of two states' arrays (limbs side by side, counts and specials added) is their merge
    x, y = a.to_arrays(), b.to_arrays()
    gathered = {"loss": np.concatenate([x["loss"], y["loss"]], axis=-2),
                "weight": np.concatenate([x["weight"], y["weight"]], axis=-2),
                "special": x["special"] + y["special"], "count": x["count"] + y["count"],
                "meta": np.minimum(x["meta"], y["meta"])}  # (the same but the last: float32 where both are)
    assert ExactState.from_arrays(gathered) == a + b


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_per_output_states_along_axes(name, sum_path):
    """Many outputs are summed in groups of rows (_exact.dyadic_totals_rows); a row whose
    difference overflows is redone alone."""
    rng = np.random.default_rng(3)
    t = rng.standard_normal((3, 4, 5))
    p = rng.standard_normal((3, 4, 5)) * 2.0 ** rng.integers(-60, 60, (3, 4, 5))
    t[1, 2, 3], p[1, 2, 3] = -BIG, BIG  # (a difference past float64's range)
    w = rng.random(3)  # one weight per sample
    for axis in (0, 1, (0, 2), -1):
        state = ExactState.of(name, t, p, w, axis=axis, delta=0.75)
        got = state.result("weighted_mean", root=name == "squared")
        axes = ref.normalise_axes(axis, 3)
        kept = tuple(a for a in range(3) if a not in axes)
        wf = np.broadcast_to(w.reshape(3, 1, 1), t.shape)
        moved = [a.transpose(kept + axes).reshape(got.shape + (-1,)) for a in (t, p, wf)]
        for index in np.ndindex(got.shape):
            want = expected(name, 0.75, *(a[index].tolist() for a in moved), "weighted_mean",
                            name == "squared", np.float64)
            assert got[index] == want
        # and split along the reduced axis into two states, merged
        first = axes[0]
        half = t.shape[first] // 2
        parts = [ExactState.of(name, *(np.take(a, idx, axis=first) for a in (t, p)),
                               (np.take(w, idx) if first == 0 else w), axis=axis, delta=0.75)
                 for idx in (np.arange(half), np.arange(half, t.shape[first]))]
        assert parts[1] + parts[0] == state


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", LOSS_NAMES)
def test_state_results_equal_the_correctly_rounded_calls(name, backend, dtype):
    """float32 and float64 results are correctly rounded by every backend's call
    (test_correct_rounding, test_float64_rounding): any split's merged state must give the same
    bits."""
    rng = np.random.default_rng(5)
    t = rng.standard_normal(1000).astype(dtype)
    p = (t + rng.standard_normal(1000).astype(dtype) * dtype(1e-3))
    w = rng.random(1000).astype(dtype)
    call = {"squared": fastl2.mse, "absolute": fastl2.mae, "huber": fastl2.huber}[name]
    for cut in (0, 1, 499, 1000):
        state = ExactState.of(name, t[:cut], p[:cut], w[:cut]) + ExactState.of(name, t[cut:], p[cut:], w[cut:])
        for reduction in ("sum", "mean", "weighted_mean"):
            got = state.result(reduction)
            want = call(t, p, w, reduction=reduction)
            assert got.dtype == dtype and got.tobytes() == dtype(want).tobytes()


def test_non_finite_inputs_and_empty_states():
    nan_state = ExactState.of("squared", [np.nan, 1.0], [1.0, 2.0])
    assert math.isnan(nan_state.result()) and math.isnan((nan_state + ExactState.of("squared", [1.0], [5.0])).result())
    inf_state = ExactState.of("squared", [np.inf, 1.0], [1.0, 2.0])
    assert inf_state.result() == math.inf
    assert (inf_state + ExactState.of("squared", [1.0], [1.0])).result("sum") == math.inf
    opposite = ExactState.of("squared", [np.inf], [1.0], [1.0]) + ExactState.of("squared", [np.inf], [1.0], [-1.0])
    assert math.isnan(opposite.result("sum"))  # (inf - inf, in either order)
    empty = ExactState.of("squared", np.zeros(0), np.zeros(0))
    assert empty.result("sum") == 0.0
    with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
        assert math.isnan(empty.result("mean"))
    assert (empty + ExactState.of("squared", [1.0], [4.0])).result() == 9.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ExactState.of("absolute", [BIG, -BIG], [-BIG, BIG]).result() == math.inf  # (2 * BIG: past float64)
        assert ExactState.of("absolute", [BIG, -BIG], [-BIG, BIG]).result("mean") == math.inf
        assert ExactState.of("absolute", [BIG / 2], [-BIG / 2]).result() == BIG  # (its difference: BIG, exactly)


def test_refusals_name_what_was_given():
    state = ExactState.of("squared", [1.0], [2.0])
    with pytest.raises(ValueError, match="loss must be one of"):
        ExactState.of("hinge", [1.0], [2.0])
    with pytest.raises(ValueError, match="same shape"):
        ExactState.of("squared", [1.0], [2.0, 3.0])
    with pytest.raises(ValueError, match="same \\(loss, parameter, weighted, outputs shape\\)"):
        state + ExactState.of("absolute", [1.0], [2.0])
    with pytest.raises(ValueError, match="same \\(loss"):
        state + ExactState.of("squared", [1.0], [2.0], [1.0])
    with pytest.raises(TypeError, match="ExactState"):
        state.merge(1.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        state.result("none")
    with pytest.raises(ValueError, match="not the arrays of an ExactState"):
        ExactState.from_arrays({"loss": np.zeros((1, 2))})
    arrays = state.to_arrays()
    arrays["loss"] = arrays["loss"] + 0.5
    with pytest.raises(ValueError, match="integer digit"):
        ExactState.from_arrays(arrays)
    with pytest.raises(ValueError, match="weights sum to 0"):
        ExactState.of("squared", [1.0, 1.0], [2.0, 3.0], [1.0, -1.0]).result("weighted_mean")
    inputs = [np.array([1.0, 2.0]), np.array([3.0, 5.0]), np.array([1.0, 2.0])]
    copies = [a.copy() for a in inputs]
    ExactState.of("huber", *inputs, delta=0.5).result()
    assert all(np.array_equal(a, b) for a, b in zip(inputs, copies))  # (nothing written to an input)


# ------------------------------------------------- what a review found, each tested as a kind

try:
    import ml_dtypes
    HALF_DTYPES = [np.float16, ml_dtypes.bfloat16]
except ImportError:  # (the test extras install it; without it, float16 alone)
    HALF_DTYPES = [np.float16]
CALLS = {"squared": fastl2.mse, "absolute": fastl2.mae, "huber": fastl2.huber}


@pytest.mark.parametrize("dtype", [np.float64, np.float32] + HALF_DTYPES)
@pytest.mark.parametrize("where", ["y_true", "y_pred", "weights"])
def test_non_finite_operands_of_every_dtype_give_the_calls_result(dtype, where):
    """A nan or inf in any operand of any floating dtype (bfloat16 is NumPy kind "V") gives what
    fastl2's call gives: the IEEE sums of the non-finite terms, the finite weights of those
    elements still in the weight sum (so a weighted mean keeps its sign)."""
    rng = np.random.default_rng(7)
    for trial in range(12):
        n = 6
        arrays = {"y_true": rng.standard_normal(n), "y_pred": rng.standard_normal(n),
                  "weights": rng.standard_normal(n)}  # (weights of both signs)
        arrays[where][rng.integers(0, n)] = [np.nan, np.inf, -np.inf][trial % 3]
        if trial >= 6:
            arrays[where][rng.integers(0, n)] = [np.inf, -np.inf, np.nan][trial % 3]
        arrays = {k: v.astype(dtype) for k, v in arrays.items()}
        for name, call in CALLS.items():
            state = ExactState.of(name, arrays["y_true"], arrays["y_pred"], arrays["weights"])
            for reduction in ("sum", "mean", "weighted_mean"):
                want = call(arrays["y_true"], arrays["y_pred"], arrays["weights"], reduction=reduction)
                got = state.result(reduction)
                assert got.dtype == want.dtype
                assert np.array_equal(got, want, equal_nan=True), (name, reduction, arrays, got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32] + HALF_DTYPES)
def test_a_non_finite_elements_finite_weight_stays_in_the_weight_sum(dtype):
    """The weight of an element whose loss is not finite decides the weighted mean's sign (and
    whether the weights sum to 0, which raises as the call does)."""
    cases = [([1.0], [np.inf], [-1.0]), ([np.inf, 0.0], [0.0, 0.0], [2.0, -1.0]),
             ([np.nan, 0.0], [0.0, 1.0], [-3.0, 1.0]), ([-np.inf, 0.0, 1.0], [0.0, 0.0, 0.0], [-1.0, 0.25, 0.5])]
    for y_true, y_pred, weights in cases:
        y_true, y_pred, weights = (np.array(a).astype(dtype) for a in (y_true, y_pred, weights))
        for name, call in CALLS.items():
            got = ExactState.of(name, y_true, y_pred, weights).result("weighted_mean")
            want = call(y_true, y_pred, weights, reduction="weighted_mean")
            assert np.array_equal(got, want, equal_nan=True), (name, y_true, y_pred, weights, got, want)
    zero = (np.array([np.inf, 0.0]).astype(dtype), np.zeros(2, dtype), np.array([1.0, -1.0]).astype(dtype))
    with pytest.raises(ValueError, match="weights sum to 0"):
        fastl2.mse(*zero, reduction="weighted_mean")
    with pytest.raises(ValueError, match="weights sum to 0"):
        ExactState.of("squared", *zero).result("weighted_mean")


@pytest.mark.parametrize("weighted", [False, True])
def test_empty_means_are_nan_with_numpys_warning_as_the_calls(weighted):
    for shape, axis in (((0,), None), ((0, 3), 0), ((2, 0), 1)):
        z = np.zeros(shape)
        w = np.zeros(shape) if weighted else None
        state = ExactState.of("squared", z, z, w, axis=axis)
        for reduction in ("mean", "weighted_mean"):
            with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
                want = fastl2.mse(z, z, w, axis=axis, reduction=reduction)
            with pytest.warns(RuntimeWarning, match="Mean of empty slice"):
                got = state.result(reduction)
            assert np.shape(got) == np.shape(want) and np.isnan(got).all()


@pytest.mark.parametrize("shape, axis", [((3, 0), 0), ((0, 4), 1), ((2, 0, 3), (0, 2))])
def test_states_of_zero_outputs_round_trip(shape, axis):
    state = ExactState.of("huber", np.zeros(shape), np.ones(shape), np.ones(shape), axis=axis)
    assert ExactState.from_arrays(state.to_arrays()) == state
    assert pickle.loads(pickle.dumps(state)) == state
    assert state.result("sum").shape == state.shape


def test_from_arrays_refuses_every_malformed_field():
    good = ExactState.of("huber", [1.0, 2.0], [3.0, 7.0], [1.0, 2.0], delta=0.5).to_arrays()
    bad = []
    for key, value in (
        ("meta", np.array([9.0, 0.5, 1.0, 0.0])), ("meta", np.array([2.0, -1.0, 1.0, 0.0])),
        ("meta", np.array([2.0, np.nan, 1.0, 0.0])), ("meta", np.array([2.0, 0.5, 0.5, 0.0])),
        ("meta", np.array([0.0, 0.5, 1.0, 0.0])), ("meta", np.zeros(3)),
        ("count", np.array(1.5)), ("count", np.array(-1)), ("count", np.array([2])),
        ("special", np.array([1.0, 0.0])), ("special", np.zeros(3)),
        ("loss", good["loss"][..., :1]), ("loss", good["loss"].ravel()),
        ("loss", np.array([[np.inf, 0.0]])), ("loss", np.array([[1.0, 1e15]])),
        ("loss", np.array([[2.0 ** 60, 0.0]])), ("loss", np.array([[np.nan, 0.0]])),
        ("weight", np.array([[0.5, 3.0]])),
    ):
        arrays = dict(good)
        arrays[key] = value
        bad.append(arrays)
    unweighted = ExactState.of("squared", [1.0], [2.0]).to_arrays()
    unweighted["weight"] = np.array([[3.0, 0.0]])
    bad += [unweighted, {"loss": np.zeros((1, 2))}, {}, None]
    for arrays in bad:
        with pytest.raises(ValueError, match="^not the arrays of an ExactState"):
            ExactState.from_arrays(arrays)


@settings(max_examples=EXAMPLES * 10, deadline=None)
@given(st.integers(-2 ** 3000, 2 ** 3000), st.integers(-2 ** 200, 2 ** 200).filter(bool),
       st.integers(-4000, 3000), st.integers(-1200, 1200))
def test_the_quick_float64_quotient_is_the_exact_one_rounded_once(m, k, e, f):
    """ExactState.result's float64 road without Fractions (_state._quotient64: Python's
    correctly rounded int division, then an exact power of two) gives the exact quotient rounded
    once wherever it answers; subnormal, overflowing and zero cases go the exact road."""
    from fastl2._state import _quotient64
    quick = _quotient64((m, e), (k, f))
    if quick is not None:
        exact = Fraction(m) * Fraction(2) ** e / (Fraction(k) * Fraction(2) ** f)
        assert quick == rounded(exact, np.float64)


def test_a_refused_limb_is_named():
    arrays = ExactState.of("squared", [1.0], [2.0]).to_arrays()
    arrays["loss"] = np.array([[1.0, 0.0], [0.5, 3.0]])
    with pytest.raises(ValueError, match=r"got the limb \(0\.5, 3\.0\)"):
        ExactState.from_arrays(arrays)
