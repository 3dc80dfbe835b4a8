"""The custom operator ``fastl2::loss``: loss and gradient in one fastl2 pass, with autograd.

``torch.ops.fastl2.loss(input, target, weight, kind, reduction, delta, scale, want_grad)``
returns ``(loss, grad)``:

* ``loss``: ``scale * L`` where ``L`` is fastl2's ``kind`` loss (``"mse"``, ``"l1"``,
  ``"huber"`` with ``delta``, or ``"smooth_l1"``: Huber's with ``delta`` divided by ``delta``,
  exactly before a reduced result's one rounding) of ``d = input - target`` (weighted by
  ``weight`` when given),
  reduced as fastl2 reduces (``"mean"``, ``"weighted_mean"``, ``"sum"``, ``"none"``: the
  functions of :mod:`fastl2.torch` map PyTorch's reductions onto these); a 0-d tensor, or
  input's shape and layout for ``"none"``; input's dtype. A ``"weighted_mean"`` whose weights sum
  to 0 is inf or NaN, as PyTorch's division gives it (fastl2 itself refuses it).
* ``grad``: when ``want_grad``, ``dL/dinput`` (without ``scale``: the backward multiplies
  ``grad_output * scale`` in, a 0-d product for the reductions), computed in the same pass as the
  loss; else an empty tensor. It is what the backward multiplies by ``grad_output``; it is not
  differentiable itself.

``input``, ``target`` and ``weight`` are CPU tensors of one floating dtype and one shape (the
functions of :mod:`fastl2.torch` check and promote); they are read in place (NumPy views), the
results are fastl2's arrays wrapped without a copy (``torch.from_numpy``). float16 and bfloat16
are read in place too (fastl2's half-precision kernels; a bfloat16 tensor is handed over as an
``ml_dtypes.bfloat16`` array over its memory, and computes on float32 copies where ml_dtypes is
not installed: the same bits). Both come back in their own dtype.

Autograd: ``d/dinput = grad_output * scale * grad``, ``d/dtarget = -d/dinput``, with no second
pass over the data. With ``create_graph=True`` the backward is itself differentiable (the
curvature term, exactly zero in value, carries the second derivative). ``weight`` is not
differentiated here: :mod:`fastl2.torch`'s functions hand a weight that requires grad to
``torch.nn.functional``.
"""
import functools
from typing import Optional

import numpy as np
import torch
import torch.autograd.forward_ad as _forward_ad
from torch import Tensor

import fastl2
from fastl2 import _backends, _losses
from fastl2._exact import is_midpoint
from fastl2._operands import bfloat16_dtype
from fastl2._losses import HUBER
from fastl2._passes import half_elements, half_loss, planned_grad_pass, planned_loss

KINDS = ("mse", "l1", "huber", "smooth_l1")
REDUCTIONS = ("mean", "weighted_mean", "sum", "none")


#: fastl2's loss code (fastl2._losses) of each kind.
_CODES = {"mse": _losses.SQUARED.code, "l1": _losses.ABSOLUTE.code, "huber": _losses.HUBER.code}
#: NumPy's dtype of each torch dtype of the common call, bfloat16's aside (``_bfloat16_numpy``).
_NUMPY_DTYPES = {torch.float32: np.dtype(np.float32), torch.float64: np.dtype(np.float64),
                 torch.float16: np.dtype(np.float16)}
#: The names of fastl2's (loss, loss_and_grad) functions of each kind.
_FUNCTION_NAMES = {kind: (name, name + "_and_grad") for kind, name in (("mse", "mse"), ("l1", "mae"), ("huber", "huber"))}


def _fastl2_functions(kind):
    """(loss, loss_and_grad) of fastl2 for ``kind``, looked up at call time (the compiled entry
    points replace fastl2's functions at import; tests wrap them)."""
    loss_name, grad_name = _FUNCTION_NAMES[kind]
    return getattr(fastl2, loss_name), getattr(fastl2, grad_name)


@functools.lru_cache(maxsize=None)
def _bfloat16_numpy() -> Optional[np.dtype]:
    """``ml_dtypes.bfloat16`` as a NumPy dtype, or None where ml_dtypes is not installed."""
    try:
        return bfloat16_dtype()
    except ImportError:
        return None


def numpy_view(tensor: Tensor) -> np.ndarray:
    """The tensor's memory as an ndarray (same data pointer and strides; never a copy; a
    bfloat16 tensor as an ``ml_dtypes.bfloat16`` array)."""
    if tensor.requires_grad:
        tensor = tensor.detach()
    if tensor.is_neg():
        tensor = tensor.resolve_neg()  # a lazily negated view: the one case that is materialised
    if tensor.dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(_bfloat16_numpy())
    return tensor.numpy()


def tensor_of(array: np.ndarray) -> Tensor:
    """``torch.from_numpy(array)``, an ``ml_dtypes.bfloat16`` array included (no copy)."""
    bfloat16 = _bfloat16_numpy()  # (None without ml_dtypes: NumPy's dtype == None is True)
    if bfloat16 is not None and array.dtype == bfloat16:
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def _like(result: Tensor, input: Tensor, dtype: torch.dtype) -> Tensor:
    """``result`` with ``torch.empty_like(input, dtype=dtype)``'s dtype and strides (what the fake
    implementation promises); ``result`` itself when it already has them (the usual case: fastl2
    lays a result out like its ``y_pred``)."""
    if result.dtype == dtype and result.stride() == input.stride():
        return result
    like = torch.empty_like(input, dtype=dtype)
    if result.dtype == dtype and result.stride() == like.stride():
        return result
    return like.copy_(result)


def _empty_results(input, reduction, want_grad):
    """Results for no elements, as PyTorch gives them: a mean is NaN (silently), a sum 0."""
    if reduction == "none":
        loss = torch.empty_like(input)
    else:
        loss = torch.full((), 0.0 if reduction == "sum" else float("nan"), dtype=input.dtype)
    return loss, (torch.empty_like(input) if want_grad else input.new_empty((0,)))


def _compute(kind, y_true, y_pred, w, reduction, delta, want_grad):
    if kind == "smooth_l1":
        # Huber's loss (delta = beta) divided by beta: on fastl2's general road, which divides
        # a reduced loss exactly before its one rounding and the gradient's scale by beta
        # (fastl2._passes divide_by); element losses ("none") are Huber's, divided here.
        if want_grad:
            value, grad = planned_grad_pass(HUBER, y_true, y_pred, w, reduction, None, True, delta,
                                            divide_by=delta)
        else:
            value = planned_loss(HUBER, y_true, y_pred, w, None, reduction, False, delta, divide_by=delta)
            grad = None
        if reduction == "none":  # (each rounded twice: Huber's to the result dtype, then this)
            value = (value.astype(np.float64) / delta).astype(value.dtype)
        return value, grad
    loss_fn, grad_fn = _fastl2_functions(kind)
    kwargs = {"delta": delta} if kind == "huber" else {}
    if want_grad:
        return grad_fn(y_true, y_pred, w, reduction=reduction, **kwargs)
    return loss_fn(y_true, y_pred, w, reduction=reduction, **kwargs), None


HALF_NAMES = {torch.float16: "float16", torch.bfloat16: "bfloat16"}
#: fastl2's loss of each kind (fastl2._losses)
_LOSS_NAMES = {"mse": "squared", "l1": "absolute", "huber": "huber", "smooth_l1": "huber"}


def _loss_impl(
    input: Tensor,
    target: Tensor,
    weight: Optional[Tensor],
    kind: str,
    reduction: str,
    delta: float,
    scale: float,
    want_grad: bool,
) -> tuple[Tensor, Tensor]:
    if kind not in KINDS:
        raise ValueError(f"fastl2::loss: kind must be one of {KINDS}, got {kind!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"fastl2::loss: reduction must be one of {REDUCTIONS}, got {reduction!r}")
    if target.dtype != input.dtype or (weight is not None and weight.dtype != input.dtype):
        raise TypeError("fastl2::loss: input, target and weight must have one dtype "
                        "(fastl2.torch's functions promote them)")
    dtype = input.dtype
    if input.numel() == 0:
        return _empty_results(input, reduction, want_grad)
    if dtype == torch.bfloat16 and _bfloat16_numpy() is None:  # (no ml_dtypes: float32 copies)
        source, input, target = input, input.float(), target.float()
        weight = None if weight is None else weight.float()
    else:
        source = input
    y_true, y_pred = numpy_view(target), numpy_view(input)
    w = None if weight is None else numpy_view(weight)
    try:
        value, grad = _compute(kind, y_true, y_pred, w, reduction, delta, want_grad)
        divisor = None
    except ValueError:
        if reduction != "weighted_mean":
            raise
        # fastl2 refuses a zero weight sum; PyTorch divides by it (inf / NaN): the sum, then that.
        value, grad = _compute(kind, y_true, y_pred, w, "sum", delta, want_grad)
        divisor = weight.sum(dtype=torch.float64)
    result = torch.from_numpy(np.asarray(value))
    if divisor is not None:
        result = (result / divisor).to(result.dtype)
        grad = None if grad is None else tensor_of(grad).div_(divisor.to(input.dtype))
    elif grad is not None:
        grad = tensor_of(grad)  # fastl2's gradient array, wrapped: no copy
    if scale != 1.0:
        result = result.mul_(scale) if reduction == "none" else result * scale
    if reduction == "none" and dtype in HALF_NAMES:
        # each float32 element rounded again, but where it lies within a few float32 ulps of a
        # midpoint of the half grid: there the exact value decides (fastl2._exact.half_elements)
        values = half_elements(_LOSS_NAMES[kind], delta, y_true, y_pred, w, result.numpy(),
                               HALF_NAMES[dtype], delta if kind == "smooth_l1" else 1.0, scale)
        result = _like(torch.from_numpy(values), source, dtype)  # (to the half: exact)
    elif reduction == "none":
        result = _like(result, source, dtype)
    elif (dtype in HALF_NAMES and scale == 1.0 and divisor is None
          and is_midpoint(float(result), HALF_NAMES[dtype])):
        # float32's correct rounding put the value on a midpoint of the half grid, where rounding
        # it again would tie to even: the exact value decides (fastl2._exact.half_result)
        value = half_loss(_LOSS_NAMES[kind], delta, y_true, y_pred, w, reduction, float(result),
                          HALF_NAMES[dtype], delta if kind == "smooth_l1" else 1.0)
        result = torch.tensor(value, dtype=dtype)  # (a value of dtype: exact)
    elif result.dtype != dtype:
        result = result.to(dtype)
    if grad is None:
        return result, source.new_empty((0,))
    return result, _like(grad, source, dtype)


# The operator: its CPU kernel is _loss_impl (fastl2), its fake kernel below, its autograd at the end.
loss = torch.library.custom_op("fastl2::loss", _loss_impl, mutates_args=(), device_types="cpu")


@loss.register_fake
def _loss_fake(input, target, weight, kind, reduction, delta, scale, want_grad):
    result = torch.empty_like(input) if reduction == "none" else input.new_empty(())
    return result, (torch.empty_like(input) if want_grad else input.new_empty((0,)))


def _setup_context(ctx, inputs, output):
    input, target, weight, kind, reduction, delta, scale, want_grad = inputs
    grad = output[1]
    ctx.mark_non_differentiable(grad)
    ctx.set_materialize_grads(False)  # no zeros the size of the input for the grad output
    ctx.save_for_backward(input, target, weight, grad)
    ctx.params = (kind, reduction, delta, scale, want_grad)


def _curvature(kind, reduction, delta, input, target, weight):
    """The diagonal of d²L/dinput², detached (L1's: zeros, as PyTorch's l1_loss gives)."""
    d = (input - target).detach()
    if kind == "l1":
        return torch.zeros_like(d)
    h = torch.full_like(d, 2.0) if kind == "mse" else (d.abs() < delta).to(d.dtype)
    if kind == "smooth_l1":
        h = h / delta
    if weight is not None:
        h = h * weight.detach()
    if reduction == "mean":
        h = h / d.numel()
    elif reduction == "weighted_mean":
        h = h / (d.numel() if weight is None else weight.detach().sum())
    return h


def _gradients(ctx, grad_loss, input, target, weight, grad, in_place):
    """The backward of both routes: ``grad_output * scale * grad`` for input, its negation for
    target. ``in_place``: ``grad`` is the backward's own to overwrite (the eager route)."""
    kind, reduction, delta, scale, want_grad = ctx.params
    if ctx.needs_input_grad[2]:
        raise RuntimeError(
            "fastl2::loss does not differentiate its weight: fastl2.torch's functions hand a "
            "weight that requires grad to torch.nn.functional; call them instead of the operator"
        )
    if grad_loss is None or not (ctx.needs_input_grad[0] or ctx.needs_input_grad[1]):
        return (None,) * 8
    if not want_grad:
        raise RuntimeError("fastl2::loss was called with want_grad=False: it computed no gradient "
                           "to differentiate with (fastl2.torch's functions set it)")
    factor = grad_loss * scale if scale != 1.0 else grad_loss
    if torch.is_grad_enabled():
        # create_graph=True: a term that is 0 in value and whose derivative is the curvature,
        # so that the gradient is differentiable again (double backward, gradgradcheck; L1's
        # curvature is 0, and its second derivative zeros, as PyTorch's, not an error).
        e = input - target
        grad = grad + _curvature(kind, reduction, delta, input, target, weight) * (e - e.detach())
        d_input = factor * grad
    elif in_place:  # no new memory (and no page faults): the gradient lands where fastl2 wrote it
        # (loss.backward(): a factor of 1 changes no bit, and the pass over the gradient is saved)
        d_input = grad if factor.dim() == 0 and factor.item() == 1.0 else grad.mul_(factor)
    else:
        d_input = factor * grad
    d_target = -d_input if ctx.needs_input_grad[1] else None
    return (d_input if ctx.needs_input_grad[0] else None, d_target, None, None, None, None, None, None)


def _backward(ctx, grad_loss, _grad_of_grad):
    input, target, weight, grad = ctx.saved_tensors
    return _gradients(ctx, grad_loss, input, target, weight, grad, in_place=False)


loss.register_autograd(_backward, setup_context=_setup_context)


class Fastl2Loss(torch.autograd.Function):
    """The operator's kernel and autograd formulas, applied without the dispatcher (eager only).

    One difference: the gradient of the forward is kept on ``ctx`` (not saved for backward) and
    the backward scales it in place, so the gradient handed on is the memory fastl2 wrote (from
    fastl2's gradient cache: no fresh pages each step). A second backward through the same graph
    (``retain_graph=True``) recomputes it: the same pass, the same bits.
    """

    @staticmethod
    def forward(ctx, *inputs):
        output = _loss_impl(*inputs)
        input, target, weight, kind, reduction, delta, scale, want_grad = inputs
        ctx.mark_non_differentiable(output[1])
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(input, target, weight)
        ctx.params = (kind, reduction, delta, scale, want_grad)
        ctx.grad = output[1]  # nobody else holds it: the caller keeps output[0] only
        return output

    @staticmethod
    def backward(ctx, grad_loss, _grad_of_grad):
        input, target, weight = ctx.saved_tensors
        grad, ctx.grad = ctx.grad, None  # the backward's own now (AccumulateGrad can take it)
        kind, reduction, delta, _scale, want_grad = ctx.params
        if grad is None and want_grad:  # retain_graph=True, second backward
            grad = _loss_impl(input, target, weight, kind, reduction, delta, 1.0, True)[1]
        return _gradients(ctx, grad_loss, input, target, weight, grad, in_place=True)


def compiled_call(kind: str, want_grad: bool) -> bool:
    """Whether fastl2's function for the common call is the compiled module's own (the cython
    backend in use, and the function not replaced), whose fast path ``loss_at`` reads tensors'
    memory by address."""
    name = _FUNCTION_NAMES[kind][want_grad]
    core = _backends._core
    return core is not None and getattr(fastl2, name) is getattr(core, name)


def common_loss(input: Tensor, target: Tensor, call: tuple, want_grad: bool):
    """``(loss, grad or None)`` of the common eager call (``_functional._common_call``: tensors
    of one shape with elements and one dtype, float32, float64, float16 or bfloat16, no weight,
    reduction ``"mean"`` or ``"sum"``): ``_loss_impl``'s result for it, without its general
    checks and conversions. ``call`` is ``(kind, reduction, y_true, y_pred, true_address,
    pred_address, shape)``: ``y_true`` and ``y_pred`` the NumPy views of ``target`` and
    ``input``, or None where both tensors are contiguous and ``compiled_call``: then the
    compiled fast path reads their memory at the two addresses (their views cost a
    microsecond, a tenth of a loss of 10⁴ elements)."""
    kind, reduction, y_true, y_pred, true_address, pred_address, shape = call
    result = None
    if y_pred is None:
        result = _backends._core.loss_at(
            _CODES[kind], true_address, pred_address, shape,
            _NUMPY_DTYPES.get(input.dtype) or _bfloat16_numpy(), reduction, want_grad,
            lambda: (numpy_view(target), numpy_view(input), None))
        if result is None:  # (a case the address path leaves to the views)
            y_true, y_pred = numpy_view(target), numpy_view(input)
    if result is None:
        names = _FUNCTION_NAMES[kind]
        function = getattr(fastl2, names[1] if want_grad else names[0])
        result = function(y_true, y_pred, reduction=reduction)
    value, grad = result if want_grad else (result, None)
    loss = torch.from_numpy(np.asarray(value))
    half = HALF_NAMES.get(input.dtype)
    if half is not None:  # (a float32 loss, correctly rounded: the half one, as _loss_impl)
        if is_midpoint(float(value), half):
            if y_pred is None:
                y_true, y_pred = numpy_view(target), numpy_view(input)
            value = half_loss(_LOSS_NAMES[kind], 1.0, y_true, y_pred, None, reduction, float(value), half)
            loss = torch.tensor(value, dtype=input.dtype)  # (a value of dtype: exact)
        else:
            loss = loss.to(input.dtype)
    return loss, (None if grad is None else tensor_of(grad))


def _common_forward(ctx, input, target, call):
    # (one argument, call: each costs the engine some time)
    result, ctx.grad = common_loss(input, target, call, True)
    ctx.save_for_backward(input, target)
    try:
        ctx.versions = (input, target, input._version, target._version)
    except RuntimeError:  # (an inference tensor has none: saving it fails, PyTorch's own error)
        ctx.versions = None
    ctx.params = (call[0], call[1], 1.0, 1.0, True)
    return result


def _common_backward(ctx, grad_loss):
    input, target, input_version, target_version = ctx.versions
    if input._version != input_version or target._version != target_version:
        ctx.saved_tensors  # (changed in place since the forward: PyTorch's own error)
    grad, ctx.grad = ctx.grad, None
    if grad is not None and grad_loss is not None and not torch.is_grad_enabled():
        # (_gradients' eager case, its checks settled: no weight, want_grad)
        if not (grad_loss.dim() == 0 and grad_loss.item() == 1.0):
            grad.mul_(grad_loss)
        needs = ctx.needs_input_grad
        return (grad if needs[0] else None), (-grad if needs[1] else None), None
    input, target = ctx.saved_tensors
    if grad is None and grad_loss is not None:  # retain_graph=True, second backward
        kind, reduction = ctx.params[:2]
        grad = common_loss(input, target, (kind, reduction, numpy_view(target), numpy_view(input), 0, 0,
                                           input.shape), True)[1]
    return _gradients(ctx, grad_loss, input, target, None, grad, in_place=True)[:6]


#: Fastl2Loss for the common eager call (``common_loss``): the same kernel, the same backward
#: formulas (``_gradients``), one output, and none of the general checks; the gradient kept on
#: ``ctx`` and handed on in place as there. Some microseconds less per call, which a loss of 10⁴
#: elements takes in all. Named as Fastl2Loss, so that its graph nodes are ``Fastl2LossBackward``
#: too: which road a call took is not the user's concern.
CommonLoss = type("Fastl2Loss", (torch.autograd.Function,), {
    "__module__": __name__, "__qualname__": "CommonLoss", "__doc__": "Fastl2Loss for the common eager call.",
    "forward": staticmethod(_common_forward), "backward": staticmethod(_common_backward),
})


PLAIN_TYPES = (torch.Tensor, torch.nn.Parameter)
is_functorch_wrapped = _is_functorch_wrapped = torch._C._functorch.is_functorch_wrapped_tensor


def forward_ad_active() -> bool:
    """Whether a level of forward-mode AD is open (``torch.autograd.forward_ad.dual_level``):
    fastl2's autograd has no forward-mode formula, and a dual input's tangent would be dropped
    silently (a helper found it); fastl2.torch hands such calls to torch.nn.functional."""
    return _forward_ad._current_level >= 0


def without_memory(*tensors) -> bool:
    """Whether one of the tensors has no memory of its values to read: a ZeroTensor
    (``torch._efficientzerotensor``) or a functionalization wrapper (its data pointer is 0, and
    a NumPy view of it reads garbage). fastl2.torch hands such calls to torch.nn.functional.
    (Not asked while torch.compile traces: its tensors are fake ones, and the question would
    break its graph.)"""
    if torch.compiler.is_compiling():
        return False
    return any(t is not None and (t._is_zerotensor() or torch._is_functional_tensor(t)) for t in tensors)


def under_functorch(*tensors) -> bool:
    """Whether a torch.func transform (grad, vmap, jacrev, ...) wraps one of the tensors: PyTorch's
    custom operators with a registered autograd do not support those transforms (torch 2.13), so
    fastl2.torch's functions hand such calls to torch.nn.functional."""
    if torch.compiler.is_compiling():
        return False
    return any(t is not None and _is_functorch_wrapped(t) for t in tensors)


def records_graph(input: Tensor, target: Tensor) -> bool:
    """Whether autograd records this call: grad mode on, inference mode off (under
    ``torch.inference_mode()`` PyTorch records nothing, ``torch.enable_grad()`` inside it
    included), and ``input`` or ``target`` requiring grad. (While torch.compile traces, which
    cannot ask about inference mode, grad mode alone: the operator's autograd is the
    dispatcher's there, which records nothing in inference mode.)"""
    return (torch.is_grad_enabled() and (input.requires_grad or target.requires_grad)
            and (torch.compiler.is_compiling() or not torch.is_inference_mode_enabled()))


def _eager(*tensors) -> bool:
    """Whether nothing but eager autograd will see this call: not compiling or tracing, no
    dispatch mode (FakeTensorMode, FlopCounterMode, ...), plain tensors (no subclass, no
    functorch transform). Anything else must see the operator itself."""
    if torch.compiler.is_compiling() or torch._C._len_torch_dispatch_stack() or torch._C._get_tracing_state():
        return False
    return all(t is None or (type(t) in PLAIN_TYPES and not _is_functorch_wrapped(t)) for t in tensors)


def loss_value(input, target, weight, kind, reduction, delta, scale, want_grad) -> Tensor:
    """The loss of ``fastl2::loss`` (its first output), with autograd.

    Under ``torch.compile``, tracing, dispatch modes, tensor subclasses and functorch transforms,
    this is the custom operator. In plain eager calls it runs the operator's own kernel and
    autograd formulas (the same functions, so the same bits) without the dispatcher's per-call
    cost (tens of microseconds): directly when no gradient is wanted, else through an
    ``autograd.Function``.
    """
    args = (input, target, weight, kind, reduction, delta, scale, want_grad)
    if not _eager(input, target, weight):
        return loss(*args)[0]
    if want_grad:
        return _apply(*args)[0]
    return _loss_impl(*args)[0]


# autograd.Function.apply's C base: Function.apply adds only functorch's handling (wrapped tensors,
# active transforms), which _eager has ruled out, at a cost of some 10 µs per call.
_apply = super(torch.autograd.Function, Fastl2Loss).apply

#: For fastl2.torch's common call (``_functional._common_call``): the operator's kernel, and its
#: kernel with autograd, applied directly.
apply_common = super(torch.autograd.Function, CommonLoss).apply

