"""Baselines run through the same CLI: the thesis' single-layer perceptron on the raw inputs
(local rule, no hidden dynamics) and a backprop MLP of the same hidden size."""

from __future__ import annotations


import torch
from torch import Tensor, nn

from mlcm_torch.functional.plasticity import decay_and_add, readout_perceptron_delta
from mlcm_torch.training.base import ClassifierModule


class PerceptronBaseline(ClassifierModule):
    """One-vs-all perceptron with margin on the raw binary inputs, trained by the local rule
    (ΔW_c = lr/B Σ_b t_bc x_b where t_bc (W x_b)_c ≤ margin; W ← W (1 − lr ξ) + ΔW).

    The optimizer step carries no gradient: it only advances ``global_step``.
    """

    def __init__(
        self,
        in_features: int = 784,
        num_classes: int = 10,
        lr: float = 0.01,
        margin: float = 0.0,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(in_features, num_classes)
        if lr <= 0:
            raise ValueError(f"lr={lr} must be > 0")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.linear = nn.Linear(in_features, num_classes, bias=False)
        nn.init.zeros_(self.linear.weight)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.linear.parameters(), lr=self.hparams.lr)

    def logits(self, x: Tensor) -> Tensor:
        return self.linear(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        with torch.no_grad():
            logits = self.linear(x)
            delta, _ = readout_perceptron_delta(
                x, y, self.linear.weight, self.hparams.lr / x.shape[0], self.hparams.margin
            )
            delta = self.trainer.strategy.reduce(delta, reduce_op="mean")
            decay_and_add(self.linear.weight, delta, self.hparams.lr, self.hparams.weight_decay)
        self.optimizers().step()
        return self.log_classification("train", logits, y)


class MLPBaseline(ClassifierModule):
    """Backprop reference: Linear(d, hidden) → ReLU → Linear(hidden, C), cross-entropy."""

    def __init__(
        self,
        in_features: int = 784,
        hidden: int = 1000,
        num_classes: int = 10,
        lr: float = 1e-3,
        optimizer: str = "adam",
    ) -> None:
        super().__init__(in_features, num_classes)
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer={optimizer!r}; expected 'adam' or 'sgd'")
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        cls = torch.optim.Adam if self.hparams.optimizer == "adam" else torch.optim.SGD
        return cls(self.net.parameters(), lr=self.hparams.lr)

    def logits(self, x: Tensor) -> Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        return self.log_classification("train", self.net(x), y)
