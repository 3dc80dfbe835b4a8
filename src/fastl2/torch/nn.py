"""Loss modules: drop-ins for ``torch.nn.MSELoss``, ``L1Loss``, ``HuberLoss`` and ``SmoothL1Loss``.

Each subclasses PyTorch's class of the same name (same constructor, including the legacy
``size_average`` / ``reduce``, same attributes, ``isinstance`` holds) and computes its
``forward(input, target)`` with fastl2 (:mod:`fastl2.torch`'s function of the same loss).
"""
import torch
from torch import Tensor

from ._functional import huber_loss, l1_loss, mse_loss, smooth_l1_loss

__all__ = ["MSELoss", "L1Loss", "HuberLoss", "SmoothL1Loss"]


class MSELoss(torch.nn.MSELoss):
    """``torch.nn.MSELoss`` computed by fastl2 (:func:`fastl2.torch.mse_loss`)."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(torch.nn.L1Loss):
    """``torch.nn.L1Loss`` computed by fastl2 (:func:`fastl2.torch.l1_loss`)."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return l1_loss(input, target, reduction=self.reduction)


class HuberLoss(torch.nn.HuberLoss):
    """``torch.nn.HuberLoss`` computed by fastl2 (:func:`fastl2.torch.huber_loss`)."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(torch.nn.SmoothL1Loss):
    """``torch.nn.SmoothL1Loss`` computed by fastl2 (:func:`fastl2.torch.smooth_l1_loss`)."""

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)
