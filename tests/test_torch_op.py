"""fastl2.torch's custom operator: opcheck, gradcheck (and double backward), torch.compile without
graph breaks, fake and real layouts, inputs read in place, the eager path's bits."""
from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import warnings
from fractions import Fraction

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is an optional dependency: pip install 'fastl2[torch]'")

import numpy as np  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import fastl2  # noqa: E402
import fastl2.torch as ft  # noqa: E402
from fastl2._exact import round_fraction  # noqa: E402
from fastl2.torch import _ops  # noqa: E402

FUNCTIONS = {"mse": ft.mse_loss, "l1": ft.l1_loss, "huber": ft.huber_loss, "smooth_l1": ft.smooth_l1_loss}
REFERENCE = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss, "smooth_l1": F.smooth_l1_loss}
WEIGHTED = ("mse", "l1", "huber")  # smooth_l1_loss has no weight in PyTorch


def _layout(kind, shape, dtype, seed=0):
    """A tensor of ``shape`` laid out as ``kind`` says (not a copy: a view of a larger tensor)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "contiguous":
        return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    if kind == "transposed":
        return torch.randn(tuple(reversed(shape)), generator=g, dtype=torch.float64).to(dtype).permute(
            tuple(reversed(range(len(shape)))))
    if kind == "sliced":  # every other element of every axis, offset by one
        big = torch.randn(tuple(2 * s + 1 for s in shape), generator=g, dtype=torch.float64).to(dtype)
        return big[tuple(slice(1, None, 2) for _ in shape)]
    raise ValueError(kind)


def _data(shape=(4, 3), dtype=torch.float64, layout="contiguous", grad=True, seed=0):
    x = _layout(layout, shape, dtype, seed).requires_grad_(grad)
    t = _layout(layout, shape, dtype, seed + 1)
    w = _layout(layout, shape, dtype, seed + 2).abs() + 0.25
    return x, t, w


# --------------------------------------------------------------------------- opcheck

OPCHECK_CASES = [
    # kind, reduction, weighted, shape, dtype, layout, want_grad
    ("mse", "mean", False, (4, 3), torch.float64, "contiguous", True),
    ("mse", "weighted_mean", True, (4, 3), torch.float32, "transposed", True),
    ("mse", "none", True, (2, 3, 4), torch.float64, "sliced", True),
    ("mse", "sum", False, (), torch.float32, "contiguous", False),
    ("l1", "mean", True, (5,), torch.float64, "sliced", True),
    ("l1", "none", False, (3, 4), torch.float32, "transposed", True),
    ("huber", "sum", True, (6, 2), torch.float64, "contiguous", True),
    ("huber", "none", False, (2, 2, 3), torch.float64, "transposed", True),
    ("huber", "sum", False, (0, 3), torch.float32, "contiguous", True),  # (a NaN mean: opcheck's
    # comparisons take NaN != NaN; the empty mean is tested in test_torch_functional.py)
    ("mse", "mean", False, (4, 3), torch.float16, "sliced", True),
    ("huber", "none", True, (4, 3), torch.bfloat16, "transposed", True),
    ("smooth_l1", "mean", False, (4, 3), torch.float64, "contiguous", True),
    ("smooth_l1", "none", True, (2, 3, 4), torch.float32, "sliced", True),
    ("smooth_l1", "sum", False, (5, 2), torch.bfloat16, "transposed", True),
]


@pytest.mark.parametrize("kind, reduction, weighted, shape, dtype, layout, want_grad", OPCHECK_CASES)
def test_opcheck(kind, reduction, weighted, shape, dtype, layout, want_grad):
    x, t, w = _data(shape, dtype, layout, grad=want_grad)
    args = (x, t, w if weighted else None, kind, reduction, 0.7, 0.5 if kind == "huber" else 1.0, want_grad)
    torch.library.opcheck(_ops.loss, args)  # schema, autograd registration, fake tensor, aot dispatch


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
@pytest.mark.parametrize("shape", [(), (5,), (1, 4), (4, 1), (3, 1, 4), (0, 2)])
def test_fake_kernel_promises_the_real_layout(shape, layout):
    x, t, w = _data(shape, torch.float32, layout)
    for x_ in (x, x.detach().t() if x.dim() == 2 else x):
        t_ = t.t() if x_ is not x else t
        real = _ops.loss(x_, t_, None, "mse", "none", 1.0, 1.0, True)
        fake = _ops._loss_fake(x_, t_, None, "mse", "none", 1.0, 1.0, True)
        for r, f in zip(real, fake):
            assert (r.shape, r.stride(), r.dtype) == (f.shape, f.stride(), f.dtype)


# --------------------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name, weighted", [(n, False) for n in FUNCTIONS] + [(n, True) for n in WEIGHTED])
def test_gradcheck_and_gradgradcheck(name, weighted, reduction):
    x, t, w = _data((4, 3), torch.float64, "transposed")
    t.requires_grad_()
    # keep l1's residuals away from its kink, and huber's from its branch points
    with torch.no_grad():
        x.add_(torch.sign(x - t) * 0.05)
    kwargs = {"reduction": reduction}
    if weighted:
        kwargs["weight"] = w
    if name == "huber":
        kwargs["delta"] = 0.8
    if name == "smooth_l1":
        kwargs["beta"] = 0.6

    def fn(a, b):
        return FUNCTIONS[name](a, b, **kwargs)

    assert torch.autograd.gradcheck(fn, (x, t))
    assert torch.autograd.gradgradcheck(fn, (x, t))  # double backward works (curvature term)


@pytest.mark.parametrize("name", ["mse", "l1", "huber", "smooth_l1"])
def test_second_derivatives_are_pytorchs(name):
    # d/dx of the gradient taken with create_graph=True: the curvature, zeros for L1 (as
    # torch.nn.functional's, not "does not require grad")
    x = torch.randn(6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    t = torch.zeros(6, dtype=torch.float64)
    results = []
    for function in (FUNCTIONS[name], REFERENCE[name]):
        a = x.clone().requires_grad_()
        (g,) = torch.autograd.grad(function(a, t), a, create_graph=True)
        (h,) = torch.autograd.grad(g.sum(), a)
        results.append(h)
    torch.testing.assert_close(results[0], results[1])


@pytest.mark.parametrize("kind, reduction", [("mse", "weighted_mean"), ("huber", "none"), ("l1", "sum"),
                                             ("smooth_l1", "mean"), ("smooth_l1", "none")])
def test_gradcheck_through_the_dispatcher(kind, reduction):
    """The operator itself (torch.ops.fastl2.loss, its registered autograd), not the eager path."""
    x, t, w = _data((3, 4), torch.float64, "sliced")
    t.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: torch.ops.fastl2.loss(a, b, w, kind, reduction, 0.9, 1.5, True)[0], (x, t))


def test_weight_that_requires_grad_goes_to_torch_and_is_differentiated():
    x, t, w = _data((4, 3), torch.float64)
    w.requires_grad_()
    for name in WEIGHTED:
        for reduction in ("mean", "sum", "none"):
            assert torch.autograd.gradcheck(
                lambda a, b, c: FUNCTIONS[name](a, b, reduction=reduction, weight=c), (x, t, w))
            ours = FUNCTIONS[name](x, t, reduction=reduction, weight=w)
            assert ours.grad_fn is not None and "Fastl2" not in type(ours.grad_fn).__name__


def test_operator_refuses_to_differentiate_its_weight():
    x, t, w = _data((4, 3), torch.float64)
    w.requires_grad_()
    loss, _ = torch.ops.fastl2.loss(x, t, w, "mse", "sum", 1.0, 1.0, True)
    with pytest.raises(RuntimeError, match="does not differentiate its weight"):
        loss.backward()


def test_operator_without_its_gradient_cannot_backward():
    x, t, _ = _data((4, 3), torch.float64)
    loss, grad = torch.ops.fastl2.loss(x, t, None, "mse", "sum", 1.0, 1.0, False)
    assert grad.numel() == 0
    with pytest.raises(RuntimeError, match="want_grad=False"):
        loss.backward()


@pytest.mark.parametrize("args, error, match", [
    (("mse", "avg"), ValueError, "reduction must be one of"),
    (("l2", "mean"), ValueError, "kind must be one of"),
])
def test_operator_checks_its_arguments(args, error, match):
    x, t, _ = _data((3,), torch.float32, grad=False)
    with pytest.raises(error, match=match):
        torch.ops.fastl2.loss(x, t, None, *args, 1.0, 1.0, False)
    with pytest.raises(TypeError, match="one dtype"):
        torch.ops.fastl2.loss(x, t.double(), None, "mse", "mean", 1.0, 1.0, False)


# --------------------------------------------------------------------------- one pass, in place


def _recording(monkeypatch):
    """Wrap fastl2's loss functions: record the data pointers and strides they read and the
    gradient arrays they return."""
    seen = []
    for name in ("mse", "mae", "huber"):
        for function_name in (name, name + "_and_grad"):
            original = getattr(fastl2, function_name)

            def wrapper(y_true, y_pred, weights=None, *, _original=original, **kwargs):
                result = _original(y_true, y_pred, weights, **kwargs)
                arrays = [a for a in (y_true, y_pred, weights) if a is not None]
                seen.append({
                    "types": [type(a) for a in arrays],
                    "pointers": [a.__array_interface__["data"][0] for a in arrays],
                    "strides": [a.strides for a in arrays],
                    "grad": result[1] if isinstance(result, tuple) else None,
                })
                return result

            monkeypatch.setattr(fastl2, function_name, wrapper)
    return seen


HALF_IN_PLACE = [torch.float16] + ([torch.bfloat16] if importlib.util.find_spec("ml_dtypes") else [])


@pytest.mark.parametrize("layout", ["contiguous", "transposed", "sliced"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, *HALF_IN_PLACE], ids=str)
def test_inputs_are_read_in_place_and_the_gradient_is_not_copied(monkeypatch, layout, dtype):
    seen = _recording(monkeypatch)
    x, t, w = _data((5, 4, 3), dtype, layout)
    for name in WEIGHTED:
        seen.clear()
        value, grad = torch.ops.fastl2.loss(x, t, w, name, "weighted_mean", 1.0, 1.0, True)
        (call,) = seen
        assert call["types"] == [np.ndarray] * 3
        assert call["pointers"] == [t.data_ptr(), x.data_ptr(), w.data_ptr()]
        assert call["strides"] == [tuple(s * t.element_size() for s in u.stride()) for u in (t, x, w)]
        assert grad.data_ptr() == call["grad"].__array_interface__["data"][0]  # wrapped, not copied
        seen.clear()
        FUNCTIONS[name](x, t, weight=w).backward()  # the eager path reads in place too
        assert seen[0]["pointers"] == [t.data_ptr(), x.data_ptr(), w.data_ptr()]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bfloat16_without_ml_dtypes_computes_on_float32_copies_with_the_same_bits(monkeypatch, reduction):
    x, t, w = _data((40, 9), torch.bfloat16, "transposed")
    x.requires_grad_()
    expected = ft.huber_loss(x, t, weight=w, reduction=reduction, delta=0.75)
    expected.sum().backward()
    expected_grad, x.grad = x.grad, None
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # (its import raises ImportError)
    monkeypatch.setattr(_ops, "_bfloat16_numpy", lambda: None)  # (the cached answer, as without it)
    got = ft.huber_loss(x, t, weight=w, reduction=reduction, delta=0.75)
    got.sum().backward()
    assert got.dtype == x.grad.dtype == torch.bfloat16
    assert torch.equal(got, expected) and torch.equal(x.grad, expected_grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=lambda dtype: str(dtype).removeprefix("torch."))
def test_without_ml_dtypes_every_dtype_has_the_same_bits(backend, monkeypatch, dtype):
    """Without ml_dtypes, every dtype on both roads (the common call, and a weight's), every
    function, every backend: the same losses and gradients as with it (bfloat16 on float32
    copies). A float64 gradient was taken for a bfloat16 one without it (NumPy's
    ``dtype == None`` is True) and every float64 backward failed."""
    x, t, w = _data((6, 5), dtype, "contiguous")
    calls = [(name, {}) for name in FUNCTIONS] + [(name, {"weight": w}) for name in WEIGHTED]

    def run():
        out = []
        for name, kwargs in calls:
            value = FUNCTIONS[name](x, t, **kwargs)
            value.backward()
            out.append((value.detach(), x.grad))
            x.grad = None
        return out

    expected = run()
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # (its import raises ImportError)
    monkeypatch.setattr(_ops, "_bfloat16_numpy", lambda: None)  # (the cached answer, as without it)
    for (value, grad), (want, want_grad) in zip(run(), expected):
        assert value.dtype == grad.dtype == dtype
        assert torch.equal(value, want) and torch.equal(grad, want_grad)


def test_without_ml_dtypes_in_a_fresh_process():
    """The same in a process where ml_dtypes cannot be imported at all (the answer that
    fastl2.torch caches is its own there): float64 and float32 backward, and bfloat16 on
    float32 copies."""
    code = (
        "import sys; sys.modules['ml_dtypes'] = None\n"
        "import torch, fastl2.torch as ft\n"
        "for dtype in (torch.float64, torch.float32, torch.bfloat16):\n"
        "    x = torch.linspace(-1, 2, 12, dtype=dtype).reshape(4, 3).requires_grad_()\n"
        "    t = torch.zeros(4, 3, dtype=dtype)\n"
        "    for loss in (ft.mse_loss(x, t), ft.huber_loss(x, t, weight=t + 1)):\n"
        "        loss.backward()\n"
        "        assert x.grad.dtype == dtype and x.grad.shape == (4, 3), (dtype, x.grad)\n"
        "        x.grad = None\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.parametrize("factor", [1.0, 3.0, -0.5])
def test_the_eager_backward_scales_by_grad_output(factor):
    # (a factor of 1, loss.backward()'s, hands fastl2's gradient on without a pass over it)
    x, t, _ = _data((50, 3), torch.float32)
    ft.mse_loss(x, t).backward(torch.tensor(factor))
    expected = (2 * (x.detach().double() - t.double()) / x.numel() * factor).float()
    torch.testing.assert_close(x.grad, expected, rtol=2e-7, atol=0)


def test_one_fastl2_pass_per_training_step(monkeypatch):
    """Forward computes loss and gradient together; backward never calls fastl2 again."""
    seen = _recording(monkeypatch)
    x, t, _ = _data((64, 8), torch.float32)
    loss = ft.mse_loss(x, t)
    assert len(seen) == 1 and seen[0]["grad"] is not None
    loss.backward()
    assert len(seen) == 1
    with torch.no_grad():
        ft.mse_loss(x, t)
    assert len(seen) == 2 and seen[1]["grad"] is None  # no gradient computed without autograd


class _PassThrough(torch.utils._python_dispatch.TorchDispatchMode):
    """A dispatch mode that changes nothing: with it active, calls must go through the dispatcher."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def test_the_gradient_handed_on_is_the_memory_fastl2_wrote(monkeypatch):
    """Eager backward scales the forward's gradient in place: a leaf's .grad is fastl2's array
    (no copy, no fresh pages); a second backward (retain_graph) recomputes the same bits."""
    seen = _recording(monkeypatch)
    x, t, _ = _data((300, 7), torch.float32, "transposed")
    loss = ft.huber_loss(x, t, delta=0.5, reduction="sum")
    loss.backward(retain_graph=True)
    assert x.grad.data_ptr() == seen[0]["grad"].__array_interface__["data"][0]
    first, x.grad = x.grad.clone(), None
    loss.backward()  # the graph's second backward
    assert len(seen) == 2 and torch.equal(x.grad, first)
    x.grad = None
    value = ft.mse_loss(x, t, reduction="none")
    value.backward(torch.full_like(value, 3.0), retain_graph=True)
    second = x.grad.clone()
    value.backward(torch.full_like(value, 3.0))
    assert torch.equal(x.grad, 2 * second)  # accumulated, as with any loss
    torch.testing.assert_close(second, 6 * (x - t).detach())


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("layout", ["transposed", "contiguous"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
def test_eager_path_and_operator_give_the_same_bits(name, reduction, layout, dtype):
    """Every eager road (the common call of contiguous tensors, read by address; of other
    layouts, through NumPy views; the general one) gives the operator's bits and node name."""
    x, t, _ = _data((7, 5), dtype, layout)
    t.requires_grad_()

    def run(force_operator):
        x_, t_ = x.detach().clone().requires_grad_(), t.detach().clone().requires_grad_()
        if force_operator:  # a dispatch mode makes every call go through the dispatcher
            with _PassThrough():
                value = FUNCTIONS[name](x_, t_, reduction=reduction)
        else:
            value = FUNCTIONS[name](x_, t_, reduction=reduction)
        value.sum().backward()
        return value.detach(), x_.grad, t_.grad, type(value.grad_fn).__name__

    eager, operator = run(False), run(True)
    assert eager[3] == "Fastl2LossBackward" and "fastl2" in operator[3].lower() and operator[3] != eager[3]
    for a, b in zip(eager[:3], operator[:3]):
        assert torch.equal(a, b)


def test_functorch_transforms_go_to_torch():
    """torch.func transforms do not support custom operators with a registered autograd (torch
    2.13): fastl2.torch hands those calls to torch.nn.functional, which gives the same results."""
    x, t, _ = _data((6,), torch.float64, grad=False)
    with pytest.raises(RuntimeError, match="functorch transforms"):
        torch.func.grad(lambda a: torch.ops.fastl2.loss(a, t, None, "mse", "mean", 1.0, 1.0, True)[0])(x)
    grad = torch.func.grad(lambda a: ft.mse_loss(a, t))(x)
    torch.testing.assert_close(grad, torch.func.grad(lambda a: F.mse_loss(a, t))(x), rtol=0, atol=0)
    batched = torch.func.vmap(lambda a, b: ft.huber_loss(a, b, delta=0.5))(x.view(2, 3), t.view(2, 3))
    torch.testing.assert_close(batched, torch.func.vmap(lambda a, b: F.huber_loss(a, b, delta=0.5))(
        x.view(2, 3), t.view(2, 3)), rtol=0, atol=0)


# --------------------------------------------------------------------------- torch.compile


def _mixed_losses(a, b, w):
    return (
        ft.mse_loss(a, b)
        + ft.huber_loss(a, b, delta=0.5, weight=w, reduction="sum")
        + ft.smooth_l1_loss(a, b, beta=2.0)
        + ft.l1_loss(a, b, reduction="none", weight=w).sum()
        + ft.mse_loss(a.t(), b.t(), reduction="none")[1:].mean()
    )


def test_compile_fullgraph_function_has_no_graph_break():
    torch._dynamo.reset()
    x, t, w = _data((16, 4), torch.float32)
    explanation = torch._dynamo.explain(_mixed_losses)(x, t, w)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1
    compiled = torch.compile(_mixed_losses, fullgraph=True, backend="aot_eager")
    value = compiled(x, t, w)
    value.backward()
    grad, x.grad = x.grad, None
    eager = _mixed_losses(x, t, w)
    eager.backward()
    assert torch.equal(value, eager) and torch.equal(grad, x.grad)


def _every_loss(a, b, w):
    """Each function on the common call's road (no weight, "mean" or "sum") and on the general
    one (a weight, "none")."""
    return torch.stack([
        ft.mse_loss(a, b), ft.l1_loss(a, b, reduction="sum"), ft.huber_loss(a, b, delta=0.5),
        ft.smooth_l1_loss(a, b, beta=2.0), ft.mse_loss(a, b, weight=w, reduction="sum"),
        ft.l1_loss(a, b, weight=w), ft.huber_loss(a, b, reduction="none", weight=w).sum(),
    ])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16],
                         ids=lambda dtype: str(dtype).removeprefix("torch."))
@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no-grad"])
def test_compile_fullgraph_every_dtype(dtype, grad):
    """torch.compile(fullgraph=True) of every function, both roads, in every dtype fastl2 reads,
    with and without autograd: no graph break, and the eager call's bits (bfloat16 failed to
    trace: the common call asked for ml_dtypes, a first-use import under a lock, before asking
    whether it was compiling)."""
    torch._dynamo.reset()
    x, t, w = _data((8, 4), dtype, grad=grad)
    compiled = torch.compile(_every_loss, fullgraph=True, backend="aot_eager")
    value = compiled(x, t, w)
    eager = _every_loss(x, t, w)
    assert value.dtype == dtype and torch.equal(value, eager)
    if grad:
        value.sum().backward()
        compiled_grad, x.grad = x.grad, None
        eager.sum().backward()
        assert torch.equal(compiled_grad, x.grad)


@pytest.mark.parametrize("name, weighted", [(name, False) for name in FUNCTIONS] + [(name, True) for name in WEIGHTED])
@pytest.mark.parametrize("traced_with_grad", [False, True], ids=["traced-without-grad", "traced-with-grad"])
def test_jit_trace_replays_with_and_without_autograd(name, weighted, traced_with_grad):
    """A torch.jit.trace graph is traced once and run with and without autograd: fastl2's
    operator is traced computing the gradient (it was traced with the tracing call's want_grad:
    one traced without autograd could not be differentiated, one traced with it failed the
    trace's check)."""
    x, t, w = _data((5, 3), torch.float32, grad=traced_with_grad)
    kwargs = {"weight": w} if weighted else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # (torch.jit.trace's own, torch 2.13)
        traced = torch.jit.trace(lambda a, b: FUNCTIONS[name](a, b, **kwargs), (x, t))
    plain = x.detach()
    assert torch.equal(traced(plain, t), FUNCTIONS[name](plain, t, **kwargs))
    replayed, eager = plain.clone().requires_grad_(), plain.clone().requires_grad_()
    value, expected = traced(replayed, t), FUNCTIONS[name](eager, t, **kwargs)
    value.backward()
    expected.backward()
    assert torch.equal(value, expected) and torch.equal(replayed.grad, eager.grad)


def _training(loss_fn, compile_backend, steps=4):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    params = list(model.parameters())
    x = torch.randn(64, 8)
    y = torch.randn(64, 2)

    def step(inputs, targets):  # model, loss, backward, SGD update: one graph
        loss = loss_fn(model(inputs), targets)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.sub_(0.05 * p.grad)
                p.grad = None
        return loss.detach()

    if compile_backend is not None:
        step = torch.compile(step, fullgraph=True, backend=compile_backend)
    return torch.stack([step(x, y) for _ in range(steps)])


def test_compile_fullgraph_training_step(monkeypatch):
    """torch.compile(fullgraph=True) of model + fastl2 loss + backward + update: no graph break
    (Dynamo traces Tensor.backward() with trace_autograd_ops; torch.optim's step itself graph-breaks
    in torch 2.13 whatever the loss, so the update is written out)."""
    monkeypatch.setattr(torch._dynamo.config, "trace_autograd_ops", True)
    torch._dynamo.reset()
    compiled = _training(ft.nn.MSELoss(), "aot_eager")
    eager = _training(ft.nn.MSELoss(), None)
    torch_eager = _training(torch.nn.MSELoss(), None)
    assert torch.equal(compiled, eager)
    torch.testing.assert_close(eager, torch_eager, rtol=1e-6, atol=0)


def test_compile_inductor_forward_and_backward():
    torch._dynamo.reset()
    x, t, w = _data((32, 8), torch.float32)
    compiled = torch.compile(_mixed_losses, fullgraph=True, backend="inductor")
    value = compiled(x, t, w)
    value.backward()
    grad, x.grad = x.grad, None
    eager = _mixed_losses(x, t, w)
    eager.backward()
    torch.testing.assert_close(value, eager, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad, x.grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("requires", ["input", "target", "both", "neither"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_common_call_on_every_backend_and_tie(backend, requires, reduction, monkeypatch):
    """The common call (two contiguous float32 tensors, no weight) on each backend: a sum that
    sits exactly on a float32 tie (1 + 2**-24, and its mean: their float64 values fail the
    certificate) goes to the exact path from the compiled module's address path too, and rounds
    to even; gradients are fastl2's."""
    x = torch.tensor([1.0, 2.0 ** -12], dtype=torch.float32, requires_grad=requires in ("input", "both"))
    t = torch.zeros(2, dtype=torch.float32, requires_grad=requires in ("target", "both"))
    calls = []
    monkeypatch.setattr(fastl2._passes, "exact_loss", _counted(fastl2._passes.exact_loss, calls))
    value = ft.mse_loss(x, t, reduction=reduction)
    exact = (Fraction(1) + Fraction(1, 2 ** 24)) / (1 if reduction == "sum" else 2)
    assert value.dtype == torch.float32 and value.item() == round_fraction(exact, np.float32)
    assert value.item() in (1.0, 0.5)  # (ties to even, where float64 rounding would go up)
    assert calls or backend != "cython"  # (the address path asked for the exact value)
    assert value.item() == float(fastl2.mse(t.detach().numpy(), x.detach().numpy(), reduction=reduction))
    if requires == "neither":
        assert value.grad_fn is None
        return
    value.backward()
    _, grad = fastl2.mse_and_grad(t.detach().numpy(), x.detach().numpy(), reduction=reduction)
    if requires in ("input", "both"):
        assert torch.equal(x.grad, torch.from_numpy(grad))
    if requires in ("target", "both"):
        assert torch.equal(t.grad, -torch.from_numpy(grad))


def _counted(function, calls):
    def counted(*args, **kwargs):
        calls.append(args)
        return function(*args, **kwargs)
    return counted


def test_common_call_of_0d_and_unaligned_tensors():
    """The common call's address path takes only aligned memory (a tensor over a byte buffer at
    an odd offset goes through its NumPy view, which fastl2 reads aligned or not), and 0-d
    tensors."""
    x = torch.tensor(1.5, requires_grad=True)
    loss = ft.mse_loss(x, torch.tensor(0.25))
    loss.backward()
    assert loss.item() == 1.5625 and x.grad.item() == 2.5 and loss.dim() == 0
    buffer = bytearray(4 * 101)
    a = torch.frombuffer(buffer, dtype=torch.float32, offset=1, count=100)
    assert a.data_ptr() % 4 and a.is_contiguous()
    a[:] = torch.linspace(-3, 7, 100)
    b = torch.linspace(1, 2, 100)
    expected = fastl2.mse(b.numpy(), np.ascontiguousarray(a.numpy()))
    for reduction in ("mean", "sum"):
        assert ft.mse_loss(a, b, reduction=reduction).item() == float(
            fastl2.mse(b.numpy(), np.ascontiguousarray(a.numpy()), reduction=reduction))
    assert ft.mse_loss(a, b).item() == float(expected)


@pytest.mark.parametrize("name", ["mse", "l1"])
@pytest.mark.parametrize("layout", ["contiguous", "transposed"])
@pytest.mark.parametrize("changed", ["input", "target"])
def test_a_tensor_changed_in_place_before_backward_raises_on_every_road(name, layout, changed):
    """As PyTorch's own losses (found by a helper: the common call's backward did not look at
    its saved tensors, where PyTorch checks their versions)."""
    x, t, w = _data((4, 3), torch.float32, layout)
    for kwargs in ({}, {"weight": torch.ones_like(w)}):  # (the common call; the general road)
        x_ = x.detach().clone().requires_grad_()
        y = x_ * 1.0  # (a non-leaf input, which may be changed in place)
        t_ = t.detach().clone()
        loss = FUNCTIONS[name](y, t_, reduction="sum", **kwargs)
        with torch.no_grad():
            (y if changed == "input" else t_).add_(1.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


@pytest.mark.parametrize("name", ["mse", "l1"])
@pytest.mark.parametrize("which", ["zero input", "zero target", "functional input"])
def test_tensors_without_memory_go_to_torch(name, which):
    """A ZeroTensor or a functionalization wrapper has no memory of its values (data pointer 0:
    reading it crashed the common call's address path, a helper found); such calls are
    torch.nn.functional's."""
    t = torch.randn(3)
    if which == "zero input":
        a, b = torch._efficientzerotensor(3), t
    elif which == "zero target":
        a, b = t, torch._efficientzerotensor(3)
    else:
        a, b = torch._to_functional_tensor(torch.tensor([1.0, -2.0, 0.5])), t
    got = FUNCTIONS[name](a, b)
    expected = REFERENCE[name](a, b)
    assert torch.equal(torch._from_functional_tensor(got) if torch._is_functional_tensor(got) else got,
                       torch._from_functional_tensor(expected) if torch._is_functional_tensor(expected) else expected)


@pytest.mark.parametrize("beta", [5e-324, 1e-310, 2.0 ** -65, 2.0 ** 65, 1e306])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_smooth_l1_with_a_beta_out_of_range_is_torchs(beta, dtype):
    """beta outside [2**-64, 2**64]: Huber's loss of a subnormal delta underflows (7.0 for 6.75
    at 5e-324) and divisor * beta overflowed (0 at 1e306): found by a helper; such betas are
    torch.nn.functional's."""
    x = torch.tensor([1.5, -2.25, 3.0], dtype=dtype, requires_grad=True)
    x_ = x.detach().clone().requires_grad_()
    t = torch.zeros(3, dtype=dtype)
    for reduction in ("sum", "mean"):
        got, expected = ft.smooth_l1_loss(x, t, beta=beta, reduction=reduction), F.smooth_l1_loss(x_, t, beta=beta, reduction=reduction)
        got.backward()
        expected.backward()
        assert torch.equal(got, expected) and torch.equal(x.grad, x_.grad)
        x.grad = x_.grad = None


def test_smooth_l1_of_a_large_beta_in_range_does_not_overflow():
    # (weighted sums times beta overflowed before the divisions were made one after the other)
    x = torch.full((1000,), 1e10, dtype=torch.float64, requires_grad=True)
    loss = ft.smooth_l1_loss(x, torch.zeros(1000, dtype=torch.float64), beta=2.0 ** 64)
    loss.backward()
    expected = 1e20 / 2 / 2.0 ** 64  # (every |d| below beta: d² / (2 beta))
    assert abs(loss.item() - expected) <= 2 * math.ulp(expected)
    assert abs(x.grad[0].item() - 1e10 / 2.0 ** 64 / 1000) <= math.ulp(1e10 / 2.0 ** 64 / 1000)


@pytest.mark.parametrize("name, weighted", [(n, False) for n in FUNCTIONS] + [(n, True) for n in WEIGHTED])
def test_forward_mode_ad_goes_to_torch(name, weighted):
    """Under forward-mode AD (a dual level open) the calls are torch.nn.functional's: fastl2's
    autograd has no forward formula, and the tangent was dropped silently (a helper found it)."""
    import torch.autograd.forward_ad as fwAD
    x, t, w = _data((4, 3), torch.float64, grad=False)
    kwargs = {"weight": w} if weighted else {}
    with fwAD.dual_level():
        dual = fwAD.make_dual(x, torch.ones_like(x))
        got = fwAD.unpack_dual(FUNCTIONS[name](dual, t, **kwargs))
        expected = fwAD.unpack_dual(REFERENCE[name](dual, t, **kwargs))
    assert got.tangent is not None
    assert torch.equal(got.tangent, expected.tangent) and torch.equal(got.primal, expected.primal)
