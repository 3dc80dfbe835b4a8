"""Fuzzing: calls drawn from the whole argument space for a fixed time, each checked four ways.

A call is a `Call` (plain values: hypothesis shrinks it and prints it so that it can be pasted
into REGRESSIONS below): a public function; its operands' dtypes (float16/32/64 in both byte
orders, bfloat16 (ml_dtypes), integers, bool, and dtypes fastl2 refuses), shapes (0-d to 4-d,
empty, past a block),
layouts (C, Fortran, transposed, stepped, reversed, broadcast, unaligned, read-only) and
carriers (ndarray, subclass, list, memoryview, PyTorch tensor, bfloat16 ones too); weights of every accepted shape
and some refused ones; reduction, axis, delta, lam and ``out=`` (fresh, unaligned,
Fortran-ordered, in place, or of a wrong dtype or shape, or read-only); finite values, and
NaN / inf.

Each call runs on every available backend, on operands built afresh for each, and:

* every backend returns the same bits (NaNs compared as NaNs: their payload is unspecified),
  or raises the same exception with the same message, with the same warnings;
* an exception is a TypeError or ValueError whose message names the argument at fault;
* no input is written (an ``out=`` that is ``y_pred`` itself excepted);
* a result of finite inputs is within the documented ulps of the exact reference (reference.py:
  Fractions and math.fsum), with the documented dtype.

The budget: FASTL2_FUZZ_SECONDS (default 20) of calls, in batches of BATCH examples, each batch
shrunk to its smallest failing call if one fails.  `.ci/run` runs it again with a longer
budget on the sanitizer build.
"""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastl2
import reference as ref

try:
    import torch
except ImportError:  # an optional peer: no tensor carrier without it
    torch = None
try:
    import ml_dtypes  # noqa: F401 (registers NumPy's name "bfloat16")
except ImportError:  # (the test extras install it: bfloat16 operands with it)
    ml_dtypes = None

BUDGET_SECONDS = float(os.environ.get("FASTL2_FUZZ_SECONDS", "20"))
BATCH = 25
BACKENDS = fastl2.available_backends()

LOSSES = {"mse": "mse", "mae": "mae", "rmse": "rmse", "huber": "huber"}
GRADS = {"mse_grad": "mse", "mae_grad": "mae", "huber_grad": "huber"}
AND_GRADS = {"mse_and_grad": "mse", "mae_and_grad": "mae", "huber_and_grad": "huber"}
PENALTIES = ("l2_penalty", "l2_penalty_grad")
FUNCTIONS = (*LOSSES, *GRADS, *AND_GRADS, *PENALTIES)

NON_NATIVE = ">" if np.little_endian else "<"
GOOD_DTYPES = ("float64", "float32", "float16", NON_NATIVE + "f8", NON_NATIVE + "f4", NON_NATIVE + "f2",
               "int64", "int32", "uint8", "bool") + (
                   ("bfloat16", "bfloat16 swapped") if ml_dtypes is not None else ())


def _dtype_of(name: str) -> np.dtype:
    """A dtype of GOOD_DTYPES or BAD_DTYPES by its name ("bfloat16 swapped": ml_dtypes'
    bfloat16 in the non-native byte order)."""
    if name == "bfloat16 swapped":
        return np.dtype("bfloat16").newbyteorder(NON_NATIVE)
    return np.dtype(name)
BAD_DTYPES = ("complex128", "object", "U3", "datetime64[s]")
LAYOUTS = ("C", "F", "transposed", "step2", "reversed", "broadcast", "unaligned", "readonly")
CARRIERS = ("ndarray", "subclass", "list", "memoryview") + (("tensor",) if torch is not None else ())
ARGUMENT_NAMES = ("y_true", "y_pred", "weights", "reduction", "axis", "out", "delta", "params", "lam")


class Subclass(np.ndarray):
    """An ndarray subclass (fastl2 reads it through a base-class view)."""


@dataclass(frozen=True)
class Operand:
    dtype: str
    shape: tuple
    layout: str = "C"
    carrier: str = "ndarray"
    values: str = "normal"  # "normal", "positive", "zeros", "special" (NaN and inf among them)
    seed: int = 0


@dataclass(frozen=True)
class Call:
    function: str
    y_true: Operand | None = None  # (None for the penalty)
    y_pred: Operand | None = None  # (the penalty's params)
    weights: Operand | None = None
    reduction: str | None = None  # None: the default
    axis: object = None
    delta: object = None
    lam: object = None
    out: str | None = None  # see _make_out
    second_param: Operand | None = None  # the penalty of a list of two arrays


# --------------------------------------------------------------------------- building a call


def _values(op: Operand, shape) -> np.ndarray:
    """Values of `shape` in op.dtype, from op.seed."""
    rng = np.random.default_rng(op.seed)
    dtype = _dtype_of(op.dtype)
    size = math.prod(shape)
    if dtype.kind == "b":
        return (rng.random(size) < 0.5).reshape(shape)
    if dtype.kind in "iu":
        low = 0 if dtype.kind == "u" or op.values == "positive" else -100
        high = 1 if op.values == "zeros" else 100
        return rng.integers(low, high, size).astype(dtype).reshape(shape)
    if ref.is_float(dtype):
        if op.values == "zeros":
            x = np.zeros(size)
        elif op.values == "positive":
            x = rng.uniform(0.125, 2.0, size)
        else:
            x = rng.standard_normal(size) * 3.0
            if op.values == "special" and size:
                x[rng.integers(0, size, 1 + size // 4)] = rng.choice([np.nan, np.inf, -np.inf], 1 + size // 4)
        return x.astype(dtype).reshape(shape)
    if dtype.kind == "c":
        return (rng.standard_normal(size) + 1j).astype(dtype).reshape(shape)
    if dtype.kind == "M":
        return np.arange(size).astype(dtype).reshape(shape)
    if dtype.kind == "U":
        return np.array(["ab"] * size, dtype=dtype).reshape(shape)
    return np.array([1.5] * size, dtype=object).reshape(shape)


def _laid_out(op: Operand) -> np.ndarray:
    shape, layout = tuple(op.shape), op.layout
    if layout == "F":
        return np.asfortranarray(_values(op, shape))
    if layout == "transposed" and len(shape) >= 2:
        return _values(op, shape[::-1]).T
    if layout == "step2" and shape:
        return _values(op, shape[:-1] + (2 * shape[-1],))[..., ::2]
    if layout == "reversed" and shape:
        return _values(op, shape)[::-1]
    if layout == "broadcast" and shape:
        return np.broadcast_to(_values(op, (1,) + shape[1:]), shape)
    if layout == "unaligned" and _dtype_of(op.dtype).itemsize > 1 and _dtype_of(op.dtype).kind != "O":
        data = _values(op, shape)
        buffer = np.zeros(data.nbytes + 1, np.uint8)
        view = buffer[1:].view(data.dtype).reshape(shape)
        view[...] = data
        return view
    if layout == "readonly":
        data = _values(op, shape)
        data.flags.writeable = False
        return data
    return np.ascontiguousarray(_values(op, shape))


def make_operand(op: Operand | None):
    """The object passed to fastl2, and the ndarray fastl2 should read (or None)."""
    if op is None:
        return None, None
    array = _laid_out(op)
    carrier = op.carrier
    if carrier == "subclass":
        return array.view(Subclass), array
    if carrier == "list":
        as_list = array.tolist()
        return as_list, np.asarray(as_list)  # (what NumPy makes of it: an empty list is 1-d)
    if carrier == "memoryview" and array.dtype.kind in "fiub" and array.ndim > 0:
        return memoryview(array), array
    if carrier == "tensor" and torch is not None and _tensor_ok(array):
        if array.dtype.name == "bfloat16":  # (torch.from_numpy has no bfloat16: its bits)
            return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16), array
        return torch.from_numpy(array), array
    return array, array


def _tensor_ok(array):
    return (array.dtype.isnative and (array.dtype.kind in "fiub" or array.dtype.name == "bfloat16")
            and array.flags.writeable and all(s >= 0 for s in array.strides)
            and (array.ndim == 0 or array.size))


def _make_out(kind, y_pred_obj, y_pred, grad_shape, grad_dtype):
    """An out= argument: None, or a fresh, Fortran-ordered, unaligned, wrong-dtype,
    wrong-shape or read-only array, or y_pred itself ('in_place')."""
    if kind is None:
        return None
    if kind == "in_place":
        return y_pred_obj
    dtype = np.dtype(grad_dtype)
    if kind == "fresh":
        return np.full(grad_shape, -7, dtype)
    if kind == "fortran":
        return np.asfortranarray(np.full(grad_shape, -7, dtype))
    if kind == "unaligned":
        buffer = np.zeros(max(1, math.prod(grad_shape)) * dtype.itemsize + 1, np.uint8)
        return buffer[1:1 + math.prod(grad_shape) * dtype.itemsize].view(dtype).reshape(grad_shape)
    if kind == "wrong_dtype":
        return np.zeros(grad_shape, np.float32 if dtype == np.float64 else np.float64)
    if kind == "wrong_shape":
        return np.zeros(grad_shape + (1,), dtype)
    if kind == "readonly":
        array = np.zeros(grad_shape, dtype)
        array.flags.writeable = False
        return array
    raise AssertionError(kind)


def _kwargs(call: Call, out):
    kwargs = {}
    for name in ("reduction", "delta"):
        if getattr(call, name) is not None:
            kwargs[name] = getattr(call, name)
    if call.axis is not None:
        kwargs["axis"] = call.axis
    if out is not None:
        kwargs["out"] = out
    return kwargs


def run_call(call: Call):
    """One call on the active backend, on operands built for it: (outcome, operands as
    read, the out= object or None, snapshots of the inputs taken before the call)."""
    t_obj, t = make_operand(call.y_true)
    p_obj, p = make_operand(call.y_pred)
    w_obj, w = make_operand(call.weights)
    grad_dtype = (ref.grad_dtype(p) if p is not None and (np.asarray(p).dtype.kind in "fiub" or ref.is_float(np.asarray(p).dtype))
                  else np.float64)
    grad_shape = np.shape(p) if p is not None else ()
    out = _make_out(call.out, p_obj, p, grad_shape, grad_dtype)
    inputs = [(name, x) for name, x in (("y_true", t), ("y_pred", p), ("weights", w)) if x is not None]
    if call.function in PENALTIES:
        second_obj, second = make_operand(call.second_param)
        if second is not None:
            inputs.append(("params[1]", second))
        params = p_obj if call.second_param is None else [p_obj, second_obj]
        args = (params, call.lam)
    else:
        args = (t_obj, p_obj) if call.weights is None else (t_obj, p_obj, w_obj)
    before = [(name, x, x.copy()) for name, x in inputs]
    read = tuple(None if x is None else _native(x) for x in (t, p, w))  # (before an in-place call)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = getattr(fastl2, call.function)(*args, **_kwargs(call, out))
            outcome = ("ok", result)
        except Exception as exc:  # every exception is compared across backends and checked
            outcome = ("error", exc)
    outcome += (tuple((type(w.message).__name__, str(w.message)) for w in caught),)
    return outcome, read, out, before


def _native(x):
    """A copy of x in native byte order (the dtype rules of reference.py are the native ones)."""
    x = np.array(x)
    return x.astype(x.dtype.newbyteorder("=")) if x.dtype.byteorder not in "=|" else x


def _canonical(value):
    """What must be identical across backends: the type, dtype, shape and bits (NaNs as one)."""
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_canonical(v) for v in value))
    array = np.asarray(value)
    if ref.is_float(array.dtype):
        array = np.where(np.isnan(array), np.array(np.nan, array.dtype), array).astype(array.dtype)
    return (type(value).__name__, str(array.dtype), array.shape, array.tobytes())


def _describe(outcome):
    if outcome[0] == "error":
        return ("error", type(outcome[1]).__name__, str(outcome[1]), outcome[2])
    return ("ok", _canonical(outcome[1]), outcome[2])


# --------------------------------------------------------------------------- the checks


def check_call(call: Call):
    outcomes = {}
    for backend in BACKENDS:
        previous = fastl2.get_backend()
        fastl2.set_backend(backend)
        try:
            outcome, operands, out, before = run_call(call)
        finally:
            fastl2.set_backend(previous)
        for name, original, copy in before:
            if call.out == "in_place" and name == "y_pred":
                continue  # (written in place, as asked)
            assert original.tobytes() == copy.tobytes(), f"{backend}: {name} was written"
        outcomes[backend] = _describe(outcome)
        if outcome[0] == "error":
            exc = outcome[1]
            assert isinstance(exc, (TypeError, ValueError)), f"{backend}: {type(exc).__name__}: {exc}"
            assert any(name in str(exc) for name in ARGUMENT_NAMES), f"{backend}: names no argument: {exc}"
        elif backend == BACKENDS[0]:
            _check_value(call, outcome[1], operands, out)
    first = BACKENDS[0]
    for backend in BACKENDS[1:]:
        assert outcomes[backend] == outcomes[first], f"{backend} and {first} differ:\n{outcomes[backend]}\n{outcomes[first]}"


def _finite(*arrays):
    return all(a is None or np.all(np.isfinite(np.asarray(a, dtype=np.float64))) for a in arrays)


def _check_value(call: Call, result, operands, out):
    """The result against the exact reference, when every input is finite."""
    t, p, w = (None if x is None else np.asarray(x) for x in operands)
    if call.function in PENALTIES:
        second = None if call.second_param is None else _native(make_operand(call.second_param)[1])
        if not _finite(p, second):
            return
        params = [p] if second is None else [p, second]
        lam = float(call.lam)
        if call.function == "l2_penalty":
            flat = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in params])
            dtype = ref.loss_dtype(*params)
            assert np.asarray(result).dtype == dtype
            ref.assert_ulp(result, ref.l2_penalty(flat, lam), ref.loss_ulp(dtype))
        else:
            results = [result] if second is None else result
            for r, x in zip(results, params):
                ref.assert_ulp(r, ref.l2_penalty_grad(x, lam), ref.grad_ulp(ref.grad_dtype(x)))
        return
    if not _finite(t, p, w):
        return
    reduction = call.reduction or "mean"
    delta = ref.HUBER_DELTA if call.delta is None else float(call.delta)
    function = call.function
    if function in GRADS or function in AND_GRADS:
        kind = GRADS.get(function) or AND_GRADS[function]
        grad = result if function in GRADS else result[1]
        expected = ref.grad(kind, t, p, w, reduction, delta=delta)
        dtype = ref.grad_dtype(p)
        assert grad.dtype == dtype and grad.shape == p.shape
        if out is not None:
            assert grad is out
        ref.assert_ulp(grad, expected, ref.grad_ulp(dtype))
        if function in GRADS:
            return
        result = result[0]
    else:
        kind = LOSSES[function]
    dtype = ref.loss_dtype(t, p, w)
    negative_weights = w is not None and np.any(np.asarray(w, dtype=np.float64) < 0)
    if negative_weights and (kind == "rmse" or call.axis is not None):
        return  # (a negative mean has no root; along axes: the backends' agreement alone)
    if reduction == "none":
        assert np.asarray(result).dtype == dtype and np.shape(result) == p.shape
        expected = ref.loss(kind, t, p, w, "none", delta=delta)
    elif call.axis is not None:
        expected = ref.loss_axis(kind, t, p, w, reduction, axis=call.axis, delta=delta)
    elif kind == "rmse":
        expected = ref.loss("rmse", t, p, w, reduction)
    else:
        expected = ref.loss(kind, t, p, w, reduction, delta=delta)
    assert np.asarray(result).dtype == dtype
    if negative_weights and reduction != "none":
        # Terms of both signs cancel: the bound is relative to the sum of |w * loss| (api.md)
        if p.size:
            magnitude = ref.loss(kind, t, p, np.abs(np.asarray(w, dtype=np.float64)), "sum", delta=delta)
            divisor = {"mean": p.size, "sum": 1}.get(reduction)
            if divisor is None:
                divisor = abs(ref.exact_sum(ref.broadcast_weights(w, p.shape)))
            if divisor:
                bound = ref.loss_ulp(dtype) * np.spacing(dtype.type(float(magnitude / divisor)))
                assert abs(float(result) - float(expected)) <= float(bound), (result, float(expected), bound)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (empty means: NaN, checked as NaN)
        ref.assert_ulp(result, expected, ref.loss_ulp(dtype))


# --------------------------------------------------------------------------- drawing calls

SHAPES = st.one_of(
    st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple),
    st.sampled_from([(8191,), (8193,), (2 * 8192 + 5,), (3, 8195), (8200, 2)]),  # past a block
)


@st.composite
def operands(draw, shape, good=True, seed=None):
    dtype = draw(st.sampled_from(GOOD_DTYPES)) if good else draw(st.sampled_from(BAD_DTYPES))
    return Operand(
        dtype=dtype,
        shape=tuple(shape),
        layout=draw(st.sampled_from(LAYOUTS)),
        carrier=draw(st.sampled_from(CARRIERS)),
        values=draw(st.sampled_from(["normal", "normal", "normal", "special", "zeros"])),
        seed=draw(st.integers(0, 3)) if seed is None else seed,
    )


@st.composite
def calls(draw):
    function = draw(st.sampled_from(FUNCTIONS))
    shape = draw(SHAPES)
    bad = draw(st.integers(0, 9)) == 0  # a dtype fastl2 refuses, now and then
    y_pred = draw(operands(shape, good=not (bad and draw(st.booleans())), seed=1))
    if function in PENALTIES:
        second = draw(st.none() | operands(draw(SHAPES), seed=2))
        if second is not None and second.carrier == "list":
            # ([array, nested list] is one array to NumPy and to fastl2: not a list of params)
            second = replace(second, carrier="ndarray")
        if second is not None and y_pred.carrier == "list":  # ([nested list, array]: the same)
            y_pred = replace(y_pred, carrier="ndarray")
        lam = draw(st.sampled_from([0.5, 0.5, 0.0, 3, -1.0, math.nan, "x"]))
        out = draw(st.sampled_from([None, None, "fresh", "in_place", "wrong_dtype"])) if (
            function == "l2_penalty_grad" and second is None) else None
        return Call(function, y_pred=y_pred, lam=lam, second_param=second, out=out)
    true_shape = shape if draw(st.integers(0, 9)) else tuple(shape) + (1,)  # different shapes now and then
    y_true = draw(operands(true_shape, good=not bad or y_pred.dtype in GOOD_DTYPES, seed=0))
    weights = None
    if draw(st.booleans()):
        choices = [tuple(shape)] + ([(shape[0],)] if shape else []) + [(3, 1, 2)]
        w_shape = draw(st.sampled_from(choices))
        weights = draw(operands(w_shape, seed=3))
        weights = replace(weights, values=draw(st.sampled_from(["positive", "positive", "zeros", "special"])))
    reductions = ["mean", "weighted_mean", "sum", "none", "avg"] if function != "rmse" else ["mean", "weighted_mean", "sum"]
    reduction = draw(st.sampled_from([None, *reductions]))
    axis = None
    if function in LOSSES and draw(st.booleans()):
        ndim = len(shape)
        axis = draw(st.one_of(
            st.integers(-ndim - 1, ndim),
            st.lists(st.integers(-ndim, max(ndim - 1, 0)), min_size=0, max_size=2).map(tuple),
            st.sampled_from([1.5, "0", [0]]),
        ))
    delta = None
    if function in ("huber", "huber_grad", "huber_and_grad") and draw(st.booleans()):
        delta = draw(st.sampled_from([0.5, 2.0, 1e-3, 0.0, -1.0, math.inf, "1"]))
    out = None
    if function not in LOSSES:
        out = draw(st.sampled_from([None, None, "fresh", "fortran", "unaligned", "in_place",
                                    "wrong_dtype", "wrong_shape", "readonly"]))
    return Call(function, y_true=y_true, y_pred=y_pred, weights=weights, reduction=reduction,
                axis=axis, delta=delta, out=out)


FUZZ_SETTINGS = settings(
    max_examples=BATCH,
    deadline=None,
    database=None,  # (failures are printed and kept as REGRESSIONS below, not in a local database)
    suppress_health_check=list(HealthCheck),
)


@FUZZ_SETTINGS
@given(call=calls())
def _fuzz_batch(call):
    check_call(call)


def test_fuzz_for_the_time_budget():
    """Calls drawn at random for FASTL2_FUZZ_SECONDS, in batches (hypothesis shrinks a failing
    call to its smallest form and prints it)."""
    deadline = time.monotonic() + BUDGET_SECONDS
    batches = 0
    while batches == 0 or time.monotonic() < deadline:
        _fuzz_batch()
        batches += 1
    print(f"fuzz: {batches * BATCH} calls in {BUDGET_SECONDS:.0f} s on {', '.join(BACKENDS)}")


# --------------------------------------------------------------------------- saved failures

F8, F4 = "float64", "float32"

# Calls the fuzzer found failing (now fixed), kept as regular tests; each with what failed.
REGRESSIONS = [
    # misaligned gradient out= (UBSan: misaligned stores in the compiled kernels' scalar tails)
    Call("mse_grad", y_true=Operand(F4, (33,)), y_pred=Operand(F4, (33,), seed=1), out="unaligned"),
    # misaligned operands on every kernel: 1-d tail, stepped, columns, rows
    Call("mae_and_grad", y_true=Operand(F8, (1001,), "unaligned"), y_pred=Operand(F8, (1001,), "unaligned", seed=1),
         weights=Operand(F8, (1001,), "unaligned", values="positive", seed=3), out="unaligned"),
    Call("mse", y_true=Operand(F4, (333, 3), "unaligned"), y_pred=Operand(F4, (333, 3), "unaligned", seed=1), axis=0),
    Call("huber", y_true=Operand(F8, (7, 5), "unaligned"), y_pred=Operand(F8, (7, 5), "unaligned", seed=1),
         weights=Operand(F8, (7,), "unaligned", values="positive", seed=3), axis=1),
    Call("mse", y_true=Operand(F4, (4, 4), "step2"), y_pred=Operand(F4, (4, 4), "unaligned", seed=1)),
    Call("l2_penalty_grad", y_pred=Operand(F8, (9,), "unaligned", seed=1), lam=0.5, out="unaligned"),
]


@pytest.mark.parametrize("call", REGRESSIONS, ids=lambda call: call.function)
def test_fuzz_regressions(call):
    check_call(call)
