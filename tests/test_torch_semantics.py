"""fastl2.torch follows torch.nn.functional's rules: signatures, legacy size_average/reduce, the
reductions and their errors, weight, delta/beta, dtype promotion, integer tensors, other devices,
__torch_function__; the one difference (no broadcasting); the nn modules as drop-ins."""
from __future__ import annotations

import inspect
import math
import warnings

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is an optional dependency: pip install 'fastl2[torch]'")

import torch.nn.functional as F  # noqa: E402

import fastl2.torch as ft  # noqa: E402

FUNCTIONS = {"mse_loss": ft.mse_loss, "l1_loss": ft.l1_loss, "huber_loss": ft.huber_loss,
             "smooth_l1_loss": ft.smooth_l1_loss}
LEGACY = ("mse_loss", "l1_loss", "smooth_l1_loss")  # the functions with size_average / reduce
WEIGHTED = ("mse_loss", "l1_loss", "huber_loss")
MODULES = ("MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss")


def pair(shape=(4, 3), dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype)


def outcome(call):
    """(value, None) or (None, (exception type, message)), and the warnings' messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call(), None
        except Exception as error:  # noqa: BLE001 - compared with PyTorch's
            result = None, (type(error), str(error))
    return result, [str(w.message) for w in caught]


def assert_same_outcome(ours, theirs, rtol=1e-6):
    (value, error), messages = outcome(ours)
    (expected, expected_error), expected_messages = outcome(theirs)
    if expected_error == (ValueError, "Weights and input must have the same size."):
        assert error[0] is ValueError and error[1].startswith("Weights and input must have the same size: ")
        error = expected_error  # fastl2.torch's message adds both shapes
    assert error == expected_error
    assert messages == expected_messages
    if expected is not None:
        assert value.dtype == expected.dtype and value.shape == expected.shape
        torch.testing.assert_close(value, expected, rtol=rtol, atol=1e-6, equal_nan=True)


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_signatures_are_torchs(name):
    ours, theirs = inspect.signature(FUNCTIONS[name]), inspect.signature(getattr(F, name))
    assert [(p.name, p.default, p.kind) for p in ours.parameters.values()] == \
        [(p.name, p.default, p.kind) for p in theirs.parameters.values()]


# --------------------------------------------------------------------------- reductions, legacy arguments


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "elementwise_mean", "avg", "MEAN", None, 1, ""])
@pytest.mark.parametrize("name, weighted", [(n, False) for n in FUNCTIONS] + [(n, True) for n in WEIGHTED])
def test_reductions_and_their_errors_are_torchs(name, weighted, reduction):
    x, t = pair()
    kwargs = {"reduction": reduction}
    if weighted:
        kwargs["weight"] = t.abs()
    assert_same_outcome(lambda: FUNCTIONS[name](x, t, **kwargs), lambda: getattr(F, name)(x, t, **kwargs))


@pytest.mark.parametrize("size_average", [None, True, False])
@pytest.mark.parametrize("reduce", [None, True, False])
@pytest.mark.parametrize("name", LEGACY)
def test_legacy_size_average_and_reduce_are_torchs(name, size_average, reduce):
    x, t = pair()
    for reduction in ("mean", "none"):
        args = (x, t, size_average, reduce, reduction)
        assert_same_outcome(lambda: FUNCTIONS[name](*args), lambda: getattr(F, name)(*args))


# --------------------------------------------------------------------------- weight, delta, beta


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", WEIGHTED)
def test_weight_rules_are_torchs(name, reduction):
    """mse/l1 "mean" divide by the weight sum, huber's by n (PyTorch 2.13's rules); a weight must
    have input's size; its dtype promotes the result; weights summing to 0 give inf/NaN."""
    x, t = pair()
    for weight in (t.abs() + 0.5, t.abs().double(), torch.arange(12).view(4, 3), torch.zeros(4, 3),
                   torch.tensor([[1.0, -1.0, 2.0]] * 2 + [[-2.0, 0.5, -0.5]] * 2), torch.ones(3), torch.ones(12)):
        assert_same_outcome(lambda: FUNCTIONS[name](x, t, reduction=reduction, weight=weight),
                            lambda: getattr(F, name)(x, t, reduction=reduction, weight=weight))


def test_zero_weight_sum_gradient_is_torchs():
    x, t = pair()
    w = torch.tensor([[1.0, -1.0, 0.0]] * 4)
    grads = []
    for function in (ft.mse_loss, F.mse_loss):
        x_ = x.clone().requires_grad_()
        function(x_, t, weight=w).backward()
        grads.append(x_.grad)
    torch.testing.assert_close(grads[0], grads[1], equal_nan=True)


@pytest.mark.parametrize("delta", [1.0, 0.5, 3, 1e-30, math.inf, 0.0, -1.0, math.nan, "1", None, True])
def test_huber_delta_is_torchs(delta):
    x, t = pair()
    ours, theirs = outcome(lambda: ft.huber_loss(x, t, delta=delta)), outcome(lambda: F.huber_loss(x, t, delta=delta))
    assert (ours[0][1] is None) == (theirs[0][1] is None)
    if theirs[0][1] is None:
        torch.testing.assert_close(ours[0][0], theirs[0][0])
    else:  # the same exception type (PyTorch's argument parser words a TypeError its own way)
        assert ours[0][1][0] is theirs[0][1][0]
        if theirs[0][1][0] is RuntimeError:
            assert ours[0][1] == theirs[0][1]


@pytest.mark.parametrize("beta", [1.0, 0.25, 2, 0.0, math.inf, -0.5, math.nan])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_smooth_l1_beta_is_torchs(beta, reduction):
    """beta = 0 is l1_loss, beta = inf is 0 (as PyTorch computes them); beta < 0 is an error."""
    x, t = pair()
    x.requires_grad_()
    assert_same_outcome(lambda: ft.smooth_l1_loss(x, t, reduction=reduction, beta=beta),
                        lambda: F.smooth_l1_loss(x, t, reduction=reduction, beta=beta))
    if beta >= 0:
        grads = [torch.autograd.grad(f(x, t, reduction=reduction, beta=beta).sum(), x)[0]
                 for f in (ft.smooth_l1_loss, F.smooth_l1_loss)]
        torch.testing.assert_close(grads[0], grads[1])


# --------------------------------------------------------------------------- shapes, dtypes, devices


@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("shapes", [((3, 1), (3,)), ((3,), (1,)), ((2, 3), (3, 2)), ((), (1,))])
def test_no_broadcasting_names_both_shapes(name, shapes):
    x, t = torch.zeros(shapes[0]), torch.zeros(shapes[1])
    with pytest.raises(ValueError, match="does not broadcast") as info:
        FUNCTIONS[name](x, t)
    assert str(tuple(shapes[0])) in str(info.value) and str(tuple(shapes[1])) in str(info.value)


@pytest.mark.parametrize("dtypes", [
    (torch.float32, torch.float64), (torch.float64, torch.float32), (torch.float16, torch.float32),
    (torch.bfloat16, torch.float16), (torch.int64, torch.float32), (torch.float32, torch.int32),
    (torch.int64, torch.int64), (torch.int32, torch.int64), (torch.bool, torch.bool),
    (torch.float32, torch.bool), (torch.complex64, torch.complex64),
])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_dtype_promotion_and_integers_are_torchs(name, dtypes):
    """The result dtype PyTorch gives (huber_loss keeps input's); integer, bool and complex
    inputs succeed or fail as PyTorch's do (they are handed to it)."""
    x, t = torch.arange(-3, 9).view(4, 3), torch.arange(12).view(4, 3).flip(0)
    x, t = x.to(dtypes[0]), t.to(dtypes[1])
    assert_same_outcome(lambda: FUNCTIONS[name](x, t), lambda: getattr(F, name)(x, t), rtol=2e-3)
    if name in WEIGHTED:
        w = torch.arange(12).view(4, 3)
        assert_same_outcome(lambda: FUNCTIONS[name](x, t, weight=w), lambda: getattr(F, name)(x, t, weight=w), rtol=2e-3)


def test_mixed_dtype_gradients_come_back_in_each_inputs_dtype():
    x, t = pair()
    x.requires_grad_()
    t = t.double().requires_grad_()
    ft.mse_loss(x, t).backward()
    assert x.grad.dtype == torch.float32 and t.grad.dtype == torch.float64
    torch.testing.assert_close(t.grad, -x.grad.double())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_meta_tensors_go_to_torch(name, reduction):
    x = torch.empty(5, 2, device="meta", requires_grad=True)
    t = torch.empty(5, 2, device="meta")
    value = FUNCTIONS[name](x, t, reduction=reduction)
    expected = getattr(F, name)(x, t, reduction=reduction)
    assert (value.device, value.shape, value.dtype) == (expected.device, expected.shape, expected.dtype)
    value.sum().backward()
    assert x.grad.device.type == "meta" and x.grad.shape == x.shape
    with pytest.raises(ValueError, match="does not broadcast"):  # the same rules on every device
        FUNCTIONS[name](x, torch.empty(2, device="meta"))


def test_mixed_devices_fail_as_torch():
    x, t = torch.zeros(3), torch.zeros(3, device="meta")
    assert_same_outcome(lambda: ft.mse_loss(x, t), lambda: F.mse_loss(x, t))


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_non_tensors_are_a_type_error_naming_the_argument(name):
    x, _ = pair()
    with pytest.raises(TypeError, match="argument 'target' must be a torch.Tensor, not list"):
        FUNCTIONS[name](x, [0.0] * 12)
    with pytest.raises(TypeError, match="argument 'input' must be a torch.Tensor, not ndarray"):
        FUNCTIONS[name](x.numpy(), x)


def test_sparse_tensors_go_to_torch():
    x, t = pair()
    assert_same_outcome(lambda: ft.l1_loss(x.to_sparse(), t.to_sparse()), lambda: F.l1_loss(x.to_sparse(), t.to_sparse()))


# --------------------------------------------------------------------------- autograd modes, overrides


def test_no_grad_inference_mode_and_target_only_gradients():
    x, t = pair()
    with torch.no_grad():
        assert ft.mse_loss(x.requires_grad_(), t).grad_fn is None
    with torch.inference_mode():
        assert torch.equal(ft.huber_loss(x, t), ft.huber_loss(x.detach(), t))
    x = x.detach()
    t.requires_grad_()
    ft.mse_loss(x, t, reduction="sum").backward()
    torch.testing.assert_close(t.grad, 2 * (t - x).detach())
    ft.mse_loss(x, t, reduction="sum").backward()  # gradients accumulate, as usual
    torch.testing.assert_close(t.grad, 4 * (t - x).detach())


@pytest.mark.parametrize("name, weighted", [(name, False) for name in sorted(FUNCTIONS)]
                         + [(name, True) for name in WEIGHTED])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("grad_of", ["input", "target"])
def test_inference_mode_records_nothing_even_with_grad_enabled(name, weighted, dtype, reduction, grad_of):
    # (inference mode records no graph, whatever the grad mode inside it: as PyTorch; both roads,
    # the common call's and the general one's with a weight)
    x, t = pair(dtype=dtype)
    (x if grad_of == "input" else t).requires_grad_()
    kwargs = {"reduction": reduction} | ({"weight": torch.ones_like(t)} if weighted else {})
    with torch.inference_mode(), torch.enable_grad():
        ours, theirs = FUNCTIONS[name](x, t, **kwargs), getattr(F, name)(x, t, **kwargs)
    assert theirs.grad_fn is None and not theirs.requires_grad  # (PyTorch's rule, as assumed)
    assert ours.grad_fn is None and not ours.requires_grad and ours.is_inference()
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=1e-2, atol=1e-2)
    with torch.enable_grad():  # (outside inference mode the same call records one)
        assert FUNCTIONS[name](x, t, **kwargs).grad_fn is not None


@pytest.mark.parametrize("name, weighted", [(name, False) for name in sorted(FUNCTIONS)]
                         + [(name, True) for name in WEIGHTED])
@pytest.mark.parametrize("inference", ["input", "target"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_an_inference_tensor_as_pytorch(name, weighted, inference, reduction):
    # (an inference tensor in a call autograd records: PyTorch's own error where PyTorch saves
    # it for its backward (mse_loss without a weight, huber_loss, smooth_l1_loss), else a
    # result with its gradient, on both roads; the common call read its version counter, which
    # has an error of its own, and every call saved its operands)
    with torch.inference_mode():
        x, t = pair()
    other = torch.randn(4, 3, requires_grad=True)
    x, t = (x, other) if inference == "input" else (other, t)
    kwargs = {"reduction": reduction} | ({"weight": torch.ones(4, 3)} if weighted else {})
    ours = outcome(lambda: FUNCTIONS[name](x, t, **kwargs))
    theirs = outcome(lambda: getattr(F, name)(x, t, **kwargs))
    assert ours[0][1] == theirs[0][1]
    if theirs[0][1] is not None:
        assert "cannot be saved for backward" in ours[0][1][1]
        assert name in ("mse_loss", "huber_loss", "smooth_l1_loss") and not (name == "mse_loss" and weighted)
        return
    grads = []
    for value in (ours[0][0], theirs[0][0]):
        (grad,) = torch.autograd.grad(value.sum(), other)
        grads.append(grad)
    torch.testing.assert_close(ours[0][0], theirs[0][0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-7)


# (a float16 input beside a float64 target: PyTorch's own huber_loss backward fails under
# autocast, "Found dtype Double but expected Float")
AUTOCAST_INPUTS = [(torch.bfloat16, torch.bfloat16), (torch.float16, torch.float16),
                   (torch.float32, torch.float32), (torch.float64, torch.float64),
                   (torch.bfloat16, torch.float32), (torch.float16, torch.float32)]


@pytest.mark.parametrize("name, weighted", [(name, False) for name in sorted(FUNCTIONS)]
                         + [(name, True) for name in WEIGHTED])
@pytest.mark.parametrize("autocast_dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("dtypes", AUTOCAST_INPUTS, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cpu_autocast_as_pytorch(name, weighted, autocast_dtype, dtypes, reduction):
    # (PyTorch's CPU autocast computes these losses without a weight in float32: a half input
    # and target become float32, so does the loss; with a weight, huber_loss's element losses
    # too, not mse_loss's or l1_loss's. The gradient comes back in the input's own dtype.
    # fastl2 ignored autocast. Values: PyTorch sums a half weight in its dtype, fastl2 exactly.)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 4, generator=g, dtype=dtypes[0]).requires_grad_()
    t = torch.randn(5, 4, generator=g, dtype=dtypes[1])
    kwargs = {"reduction": reduction} | ({"weight": torch.rand(5, 4, generator=g, dtype=dtypes[0])} if weighted else {})
    results = []
    for function in (FUNCTIONS[name], getattr(F, name)):
        with torch.autocast("cpu", dtype=autocast_dtype):
            value = function(x, t, **kwargs)
        value.sum().backward()
        results.append((value.detach(), x.grad))
        x.grad = None
    (ours, our_grad), (theirs, their_grad) = results
    assert ours.dtype == theirs.dtype and our_grad.dtype == their_grad.dtype == x.dtype
    halves = (torch.float16, torch.bfloat16)
    tolerance = 2e-2 if weighted and dtypes[0] in halves else {torch.float64: 1e-12, torch.float32: 1e-5}.get(ours.dtype, 2e-2)
    torch.testing.assert_close(ours, theirs, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(our_grad.double(), their_grad.double(), rtol=2e-2, atol=1e-3)


def test_torch_function_overrides_see_fastl2s_function():
    calls = []

    class Logged(torch.Tensor):
        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            calls.append(func)
            return super().__torch_function__(func, types, args, kwargs or {})

    x, t = pair()
    value = ft.mse_loss(x.as_subclass(Logged), t)
    assert calls[0] is ft.mse_loss and isinstance(value, Logged)
    assert torch.equal(value.as_subclass(torch.Tensor), ft.mse_loss(x, t))


# --------------------------------------------------------------------------- modules


@pytest.mark.parametrize("name", MODULES)
def test_modules_are_drop_ins(name):
    ours, theirs = getattr(ft.nn, name), getattr(torch.nn, name)
    assert issubclass(ours, theirs) and issubclass(ours, torch.nn.Module)
    assert inspect.signature(ours) == inspect.signature(theirs)
    assert inspect.signature(ours.forward) == inspect.signature(theirs.forward)
    x, t = pair()
    configurations = [{}, {"reduction": "sum"}, {"reduction": "none"}]
    configurations += [{"delta": 0.5}] if name == "HuberLoss" else []
    configurations += [{"beta": 0.25}, {"beta": 0.0}] if name == "SmoothL1Loss" else []
    configurations += [{"size_average": False}, {"reduce": False}] if name != "HuberLoss" else []
    for kwargs in configurations:
        (module, error), messages = outcome(lambda: ours(**kwargs))
        (reference, _), expected_messages = outcome(lambda: theirs(**kwargs))
        assert error is None and messages == expected_messages
        assert module.reduction == reference.reduction and repr(module) == repr(reference)
        assert module.state_dict() == reference.state_dict() == {}
        torch.testing.assert_close(module(x, t), reference(x, t))
    if name == "HuberLoss":
        with pytest.raises(TypeError, match="delta must be a float or int"):
            ours(delta="1")


def test_module_backward_and_bad_reduction():
    x, t = pair()
    x.requires_grad_()
    ft.nn.SmoothL1Loss(beta=0.5)(x, t).backward()
    expected = torch.autograd.grad(torch.nn.SmoothL1Loss(beta=0.5)(x, t), x)[0]
    torch.testing.assert_close(x.grad, expected)
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        ft.nn.MSELoss(reduction="avg")(x, t)
