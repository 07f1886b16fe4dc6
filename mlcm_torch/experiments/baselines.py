"""Baselines the existing training package lacks: a backprop MLP with binary (sign) hidden
activations, trained through a straight-through estimator (arXiv 2510.11984's comparison)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from mlcm_torch.training.base import ClassifierModule


class SignSTE(torch.autograd.Function):
    """sign(x) with sign(0) = +1 forward; the hard-tanh straight-through gradient backward
    (the gradient passes where |x| ≤ 1)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class BinaryMLP(ClassifierModule):
    """Linear(d, H) → sign (straight-through) → Linear(H, C), cross-entropy by backprop.

    Args:
        in_features: input width d.
        hidden: H, binary hidden units.
        num_classes: C.
        lr: learning rate.
        optimizer: ``adam`` or ``sgd``.
    """

    def __init__(self, in_features: int = 100, hidden: int = 1600, num_classes: int = 10, lr: float = 1e-3,
                 optimizer: Literal["adam", "sgd"] = "adam") -> None:
        super().__init__(in_features, num_classes)
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer={optimizer!r}; expected 'adam' or 'sgd'")
        if not lr > 0:
            raise ValueError(f"lr={lr} must be > 0")
        self.save_hyperparameters()
        self.hidden = nn.Linear(in_features, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cls = torch.optim.Adam if self.hparams.optimizer == "adam" else torch.optim.SGD
        return cls(self.parameters(), lr=self.hparams.lr)

    def logits(self, x: Tensor) -> Tensor:
        return self.out(SignSTE.apply(self.hidden(x)))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return self.log_classification("train", self.logits(x), y)
