"""fastl2 for PyTorch: ``torch.nn.functional``'s regression losses computed by fastl2, with autograd.

>>> import torch, fastl2.torch
>>> x = torch.tensor([1.0, 2.0], requires_grad=True)
>>> loss = fastl2.torch.mse_loss(x, torch.tensor([0.0, 0.0]))
>>> loss.backward(); x.grad
tensor([1., 2.])

``mse_loss``, ``l1_loss``, ``huber_loss`` and ``smooth_l1_loss`` take ``torch.nn.functional``'s
arguments and give its results; ``fastl2.torch.nn`` holds the matching modules. The computing is
one custom operator, ``torch.ops.fastl2.loss`` (``torch.compile`` traces it without a graph
break), that returns the loss and, when an input requires grad, the gradient from the same pass;
the backward only multiplies that gradient by ``grad_output``. See docs/torch.md.
"""
try:
    import torch
except ImportError as error:  # pragma: no cover - exercised in a subprocess without torch
    raise ImportError(
        'fastl2.torch needs PyTorch, which is not installed here: pip install "fastl2[torch]" '
        "(or pip install torch)"
    ) from error
del torch

from ._functional import huber_loss, l1_loss, mse_loss, smooth_l1_loss
from . import nn

__all__ = ["mse_loss", "l1_loss", "huber_loss", "smooth_l1_loss", "nn"]
