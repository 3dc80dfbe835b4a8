"""fastl2's losses with ``torch.nn.functional``'s signatures, semantics and autograd.

Each function checks and maps its arguments exactly as PyTorch's function of the same name does
(legacy ``size_average`` / ``reduce``, the reductions and their errors, ``weight``, ``delta`` /
``beta``, dtype promotion), then calls the custom operator ``fastl2::loss`` (``_ops.py``) for CPU
floating-point tensors; anything else (other devices, integer or complex dtypes, sparse tensors,
a weight that requires grad, torch.func transforms) is handed to ``torch.nn.functional`` itself. One difference:
``input`` and ``target`` must have the same shape (PyTorch broadcasts them, with a warning).
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor
from torch.nn import _reduction as _Reduction
from torch.nn import functional as F
from torch.overrides import handle_torch_function, has_torch_function_variadic

from . import _ops

__all__ = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss"]

_WEIGHTED_REDUCTIONS = ("none", "mean", "sum")


def _check_tensors(name, input, target, weight):
    for arg, value in (("input", input), ("target", target), ("weight", weight)):
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"{name}(): argument '{arg}' must be a torch.Tensor, not {type(value).__name__}")
    if input.shape != target.shape:
        raise ValueError(
            f"{name}(): input and target must have the same shape (fastl2.torch does not broadcast "
            f"them): input has shape {tuple(input.shape)}, target has shape {tuple(target.shape)}"
        )
    if weight is not None and weight.shape != input.shape:
        raise ValueError(
            f"Weights and input must have the same size: weight has shape {tuple(weight.shape)}, "
            f"input has shape {tuple(input.shape)}"
        )


def _check_reduction(reduction, weighted):
    """PyTorch's reduction, checked as torch.nn.functional checks it (same errors, same warning)."""
    if weighted:  # torch.nn.functional's weighted branch: its own error, no "elementwise_mean"
        if not isinstance(reduction, str) or reduction not in _WEIGHTED_REDUCTIONS:
            raise ValueError(f"Invalid reduction mode: {reduction}. Expected one of 'none', 'mean', 'sum'.")
        return reduction
    _Reduction.get_enum(reduction)  # ValueError for an unknown one; warns for "elementwise_mean"
    return "mean" if reduction == "elementwise_mean" else reduction


def _on_cpu(*tensors):
    return all(t is None or (t.is_cpu and t.layout == torch.strided) for t in tensors)


def _run(name, kind, input, target, weight, reduction, dtype, fallback, delta=1.0, scale=1.0):
    """The custom operator for CPU floating-point tensors; ``fallback()`` (torch.nn.functional)
    otherwise. ``reduction`` is PyTorch's (checked); ``dtype`` the result dtype PyTorch gives."""
    if (
        not dtype.is_floating_point
        or input.dtype == torch.bool  # PyTorch refuses some bool operands and accepts others
        or target.dtype == torch.bool
        or not _on_cpu(input, target, weight)
        or (weight is not None and weight.requires_grad)
        or _ops.under_functorch(input, target, weight)
        or _ops.without_memory(input, target, weight)
        or _ops.forward_ad_active()
    ):
        return fallback(reduction)
    if input.dtype != dtype:
        input = input.to(dtype)
    if target.dtype != dtype:
        target = target.to(dtype)
    if weight is not None and weight.dtype != dtype:
        weight = weight.to(dtype)
    # PyTorch's "mean" with a weight: sum / weight sum for mse and l1, sum / n for huber.
    if reduction == "mean" and weight is not None and name != "huber_loss":
        reduction = "weighted_mean"
    # (a torch.jit.trace graph runs with and without autograd: traced, the gradient always)
    want_grad = _ops.records_graph(input, target) or torch._C._get_tracing_state() is not None
    if (want_grad and (kind == "l1" or (kind == "mse" and weight is not None))
            and not torch.compiler.is_compiling()):
        input, target, weight = _saveable(input), _saveable(target), _saveable(weight)
    return _ops.loss_value(input, target, weight, kind, reduction, delta, scale, want_grad)


def _saveable(tensor):
    """``tensor``, or a copy of it where it is an inference tensor (``torch.inference_mode``),
    which autograd cannot save: for the calls where PyTorch saves none of its operands
    (``l1_loss``, ``mse_loss`` with a weight) and so accepts inference tensors in a recorded
    call, fastl2's operator, which saves them, gets copies. (Where PyTorch saves them, fastl2
    raises PyTorch's error.)"""
    if tensor is not None and tensor.is_inference():  # (not asked while compiling)
        return tensor.clone()
    return tensor


#: The dtypes of the common call (``_common_call``; bfloat16 where ml_dtypes is installed).
_COMMON_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_COMMON_REDUCTIONS = ("mean", "sum")


def _common_call(kind, input, target, reduction):
    """The loss of the common eager call, or None where the call is not one: plain tensors
    (``torch.Tensor`` or ``nn.Parameter``) of one floating dtype (float32, float64, float16, or
    bfloat16 where ml_dtypes is installed) and one shape with
    elements, whose memory NumPy can view (dense, on the CPU), no weight, no legacy arguments,
    reduction ``"mean"`` or ``"sum"``, not compiling or tracing or under a dispatch mode or
    functorch transform. Such a call needs none of the general road's mapping (checks,
    promotion, fall-backs), only the operator's kernel and autograd (the same functions, so the
    same bits and errors): some microseconds less per call, what a loss of 10⁴ elements takes in
    all."""
    dtype = input.dtype  # (checks ordered cheapest first: a refused call costs least)
    if not (type(input) in _ops.PLAIN_TYPES and type(target) in _ops.PLAIN_TYPES
            and target.dtype is dtype and dtype in _COMMON_DTYPES
            and type(reduction) is str and reduction in _COMMON_REDUCTIONS):
        return None
    # (compiling first: Dynamo cannot trace _bfloat16_numpy's first-use import under a lock)
    if torch.compiler.is_compiling():
        return None
    shape = input.shape
    if (shape != target.shape or not input.numel()
            or (dtype is torch.bfloat16 and _ops._bfloat16_numpy() is None)
            or _ops.forward_ad_active() or torch._C._len_torch_dispatch_stack()
            or torch._C._get_tracing_state() or _ops.is_functorch_wrapped(input)
            or _ops.is_functorch_wrapped(target)):
        return None
    want_grad = _ops.records_graph(input, target)
    if want_grad and kind == "l1":
        input, target = _saveable(input), _saveable(target)
    call = None
    if (input.is_cpu and target.is_cpu and input.layout == torch.strided == target.layout
            and not (input.is_neg() or target.is_neg()) and input.is_contiguous()
            and target.is_contiguous() and _ops.compiled_call(kind, want_grad)):
        pred_address, true_address = input.data_ptr(), target.data_ptr()
        # (a ZeroTensor's or a functional one's address: 0; an unaligned one: the views)
        if pred_address and true_address and not (pred_address | true_address) % input.element_size():
            call = (kind, reduction, None, None, true_address, pred_address, shape)  # (read by address)
    if call is None:
        if _ops.without_memory(input, target):
            return None
        try:  # (what is not on the CPU, or not dense, or a lazily negated view, has no view here)
            y_true = (target.detach() if target.requires_grad else target).numpy()
            y_pred = (input.detach() if input.requires_grad else input).numpy()
        except (RuntimeError, TypeError):  # (bfloat16 included: NumPy has none)
            return None
        call = (kind, reduction, y_true, y_pred, 0, 0, shape)
    if want_grad:
        return _ops.apply_common(input, target, call)
    return _ops.common_loss(input, target, call, False)[0]


def _autocast_float32(tensor):
    """``tensor`` as CPU autocast hands it to these losses: PyTorch's CPU autocast computes
    ``mse_loss``, ``l1_loss``, ``huber_loss`` and ``smooth_l1_loss`` without a weight in
    float32 (its float32 list), so a float16 or bfloat16 CPU tensor becomes float32
    (differentiably), and anything else is left as it is. With ``weight=`` PyTorch computes
    ``mse_loss`` and ``l1_loss`` in the inputs' dtypes (not called), and ``huber_loss``'s
    element losses in float32, then times the weight (called)."""
    if isinstance(tensor, Tensor) and tensor.dtype in _AUTOCAST_HALVES and tensor.is_cpu:
        return tensor.float()
    return tensor


_AUTOCAST_HALVES = (torch.float16, torch.bfloat16)


def _promoted(*tensors):
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        if t is not None:
            dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def _weighted_loss(name, kind, torch_function, input, target, size_average, reduce, reduction,
                   weight):
    """mse_loss and l1_loss after the __torch_function__ hand-off: the checks, the legacy
    reduction arguments, then the operator (or ``torch_function`` where it does not apply)."""
    _check_tensors(name, input, target, weight)
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    reduction = _check_reduction(reduction, weight is not None)
    return _run(
        name, kind, input, target, weight, reduction, _promoted(input, target, weight),
        lambda r: torch_function(input, target, reduction=r, weight=weight),
    )


def mse_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean squared error of ``input - target``: ``torch.nn.functional.mse_loss``, computed by fastl2.

    Same arguments, defaults, results and errors as PyTorch's, with autograd: ``weight`` (input's
    shape) multiplies the element losses, and ``"mean"`` then divides by ``weight.sum()``. Unlike
    PyTorch, ``input`` and ``target`` of different shapes are a ``ValueError`` (no broadcasting).

    >>> import torch, fastl2.torch
    >>> x = torch.tensor([1.0, 2.0], requires_grad=True)
    >>> loss = fastl2.torch.mse_loss(x, torch.tensor([0.0, 4.0]), weight=torch.tensor([3.0, 1.0]))
    >>> loss
    tensor(1.7500, grad_fn=<Fastl2LossBackward>)
    >>> loss.backward(); x.grad
    tensor([ 1.5000, -1.0000])
    """
    if has_torch_function_variadic(input, target, weight):
        return handle_torch_function(
            mse_loss, (input, target, weight), input, target,
            size_average=size_average, reduce=reduce, reduction=reduction, weight=weight,
        )
    if weight is None and torch.is_autocast_enabled("cpu"):  # (CPU autocast: in float32)
        input, target = _autocast_float32(input), _autocast_float32(target)
    if weight is None and size_average is None and reduce is None:
        result = _common_call("mse", input, target, reduction)
        if result is not None:
            return result
    return _weighted_loss("mse_loss", "mse", F.mse_loss, input, target, size_average, reduce,
                          reduction, weight)


def l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: Tensor | None = None,
) -> Tensor:
    """Mean absolute error of ``input - target``: ``torch.nn.functional.l1_loss``, computed by fastl2.

    Same arguments, defaults, results and errors as PyTorch's, with autograd (the gradient at
    ``input == target`` is 0, as PyTorch's). ``weight`` as in :func:`mse_loss`. No broadcasting.

    >>> import torch, fastl2.torch
    >>> fastl2.torch.l1_loss(torch.tensor([1.0, -3.0]), torch.tensor([0.0, 0.0]), reduction="none")
    tensor([1., 3.])
    """
    if has_torch_function_variadic(input, target, weight):
        return handle_torch_function(
            l1_loss, (input, target, weight), input, target,
            size_average=size_average, reduce=reduce, reduction=reduction, weight=weight,
        )
    if weight is None and torch.is_autocast_enabled("cpu"):  # (CPU autocast: in float32)
        input, target = _autocast_float32(input), _autocast_float32(target)
    if weight is None and size_average is None and reduce is None:
        result = _common_call("l1", input, target, reduction)
        if result is not None:
            return result
    return _weighted_loss("l1_loss", "l1", F.l1_loss, input, target, size_average, reduce,
                          reduction, weight)


def _real(name, arg, value):
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{name}(): argument '{arg}' must be float, not {type(value).__name__}")
    return float(value)


def huber_loss(
    input: Tensor,
    target: Tensor,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: Tensor | None = None,
) -> Tensor:
    """Huber loss of ``input - target``: ``torch.nn.functional.huber_loss``, computed by fastl2.

    Same arguments, defaults, results and errors as PyTorch's, with autograd. With ``weight``,
    ``"mean"`` divides the weighted sum by the number of elements (PyTorch's rule for this loss).
    ``delta`` must be > 0 (``delta=inf`` is half the squared error, as in PyTorch). No broadcasting.

    >>> import torch, fastl2.torch
    >>> fastl2.torch.huber_loss(torch.tensor([0.5, -2.0, 4.0]), torch.zeros(3), delta=1.0)
    tensor(1.7083)
    """
    if has_torch_function_variadic(input, target, weight):
        return handle_torch_function(
            huber_loss, (input, target, weight), input, target,
            reduction=reduction, delta=delta, weight=weight,
        )
    if torch.is_autocast_enabled("cpu"):  # (CPU autocast: the element losses in float32)
        input, target = _autocast_float32(input), _autocast_float32(target)
    _check_tensors("huber_loss", input, target, weight)
    delta = _real("huber_loss", "delta", delta)
    reduction = _check_reduction(reduction, weight is not None)
    if not delta > 0:
        raise RuntimeError("huber_loss does not support non-positive values for delta.")
    dtype = input.dtype if weight is None else torch.promote_types(input.dtype, weight.dtype)
    fallback = lambda r: F.huber_loss(input, target, reduction=r, delta=delta, weight=weight)  # noqa: E731
    if math.isinf(delta):  # d²/2 everywhere; fastl2's huber takes finite deltas
        return _run("huber_loss", "mse", input, target, weight, reduction, dtype, fallback, scale=0.5)
    return _run("huber_loss", "huber", input, target, weight, reduction, dtype, fallback, delta=delta)


def smooth_l1_loss(
    input: Tensor,
    target: Tensor,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> Tensor:
    """Smooth L1 loss: ``torch.nn.functional.smooth_l1_loss``, computed by fastl2 as
    ``huber_loss(delta=beta) / beta`` (``beta=0`` is :func:`l1_loss`, as in PyTorch).

    Same arguments, defaults, results and errors as PyTorch's, with autograd. No broadcasting.

    >>> import torch, fastl2.torch
    >>> fastl2.torch.smooth_l1_loss(torch.tensor([0.5, -2.0, 4.0]), torch.zeros(3), beta=2.0)
    tensor(1.3542)
    """
    if has_torch_function_variadic(input, target):
        return handle_torch_function(
            smooth_l1_loss, (input, target), input, target,
            size_average=size_average, reduce=reduce, reduction=reduction, beta=beta,
        )
    if torch.is_autocast_enabled("cpu"):  # (CPU autocast: in float32)
        input, target = _autocast_float32(input), _autocast_float32(target)
    _check_tensors("smooth_l1_loss", input, target, None)
    beta = _real("smooth_l1_loss", "beta", beta)
    if size_average is not None or reduce is not None:
        reduction = _Reduction.legacy_get_string(size_average, reduce)
    reduction = _check_reduction(reduction, False)
    if not beta >= 0:
        raise RuntimeError("smooth_l1_loss does not support negative values for beta.")
    dtype = _promoted(input, target)
    fallback = lambda r: F.smooth_l1_loss(input, target, reduction=r, beta=beta)  # noqa: E731
    if beta == 0.0:
        return _run("smooth_l1_loss", "l1", input, target, None, reduction, dtype, fallback)
    if math.isinf(beta):  # d²/2 / inf: 0 (NaN where d² is inf), as PyTorch computes it
        return _run("smooth_l1_loss", "mse", input, target, None, reduction, dtype, fallback, scale=0.0)
    if beta == 1.0:  # (Huber's loss itself)
        return _run("smooth_l1_loss", "huber", input, target, None, reduction, dtype, fallback, delta=1.0)
    if not 2.0 ** -64 <= beta <= 2.0 ** 64:
        # (Huber's loss of so small a delta underflows, and its quotient by it is lost; of so
        # large a one, no sum of terms below it is near: PyTorch's own formula, d²/(2 beta))
        return fallback(reduction)
    # Huber's loss divided by beta, exactly before the result's one rounding (not Huber's result
    # rounded, then times a rounded 1 / beta, then rounded again)
    return _run("smooth_l1_loss", "smooth_l1", input, target, None, reduction, dtype, fallback, delta=beta)
