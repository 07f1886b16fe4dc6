"""Readout refit: after the last training epoch, the readout W_out is fit again by softmax
regression on the trained network's label-free fixed points of the training set (a linear
probe on the frozen features, as darnax's MNIST tutorial does with a separate torch classifier).
The couplings are not touched; only W_out changes."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import Tensor

from mlcm_torch.module import checks
from mlcm_torch.module.network import Network


@dataclass(frozen=True)
class ReadoutRefit:
    """How the readout is refit (Adam on the classifier's loss, from W_out = 0).

    Args:
        epochs: passes over the training set's fixed points (≥ 1).
        lr: Adam's learning rate.
        batch_size: minibatch of the regression.
        weight_decay: L2 penalty (Adam's ``weight_decay``).
        seed: seed of the minibatch order (the fit is deterministic given the features).
    """

    epochs: int = 20
    lr: float = 1e-3
    batch_size: int = 256
    weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        checks.integer_at_least("readout_refit.epochs", self.epochs, 1)
        if not checks.finite_at_least("readout_refit.lr", self.lr, 0.0) > 0:
            raise ValueError(f"readout_refit.lr={self.lr!r} must be > 0")
        checks.integer_at_least("readout_refit.batch_size", self.batch_size, 1)
        checks.finite_at_least("readout_refit.weight_decay", self.weight_decay, 0.0)
        checks.integer_at_least("readout_refit.seed", self.seed, 0)

    def config(self) -> dict:
        return dataclasses.asdict(self)


@torch.no_grad()
def fixed_points(network: Network, batches: Iterable[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """The last layer's label-free fixed points (n, N_L) as int8 and the targets, over ``batches``
    of ``(x, y)`` already on the network's device."""
    features, targets = [], []
    for x, y in batches:
        features.append(network.features(x).to(torch.int8))
        targets.append(y)
    if not features:
        raise ValueError("readout refit: the training loader gave no batches")
    return torch.cat(features), torch.cat(targets)


def fit_readout(
    weight: Tensor, features: Tensor, targets: Tensor, loss: Callable[[Tensor, Tensor], Tensor],
    options: ReadoutRefit,
) -> list[float]:
    """Overwrite ``weight`` (C, N) with the minimiser found by Adam of ``loss(features Wᵀ, targets)``,
    started from zero: ``options.epochs`` passes over shuffled minibatches. Returns each epoch's
    mean training loss."""
    w = torch.zeros_like(weight, requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=options.lr, weight_decay=options.weight_decay)
    generator = torch.Generator().manual_seed(options.seed)
    n = features.shape[0]
    losses = []
    with torch.enable_grad():
        for _ in range(options.epochs):
            total = features.new_zeros((), dtype=weight.dtype)
            for index in torch.randperm(n, generator=generator).to(features.device).split(options.batch_size):
                value = loss(features[index].to(weight.dtype) @ w.T, targets[index])
                optimizer.zero_grad()
                value.backward()
                optimizer.step()
                total += value.detach() * index.numel()
            losses.append(float(total) / n)
    with torch.no_grad():
        weight.copy_(w)
    return losses


def refit_readout(
    network: Network, batches: Iterable[tuple[Tensor, Tensor]], loss: Callable[[Tensor, Tensor], Tensor],
    options: ReadoutRefit, gather: Callable[[Tensor], Tensor] | None = None,
) -> dict:
    """Refit ``network.readout`` on the fixed points of ``batches``; ``gather`` joins the
    features and targets of all processes under data parallelism (every process then fits the
    same readout). Returns a report: samples, per-epoch losses, seconds of features and fit."""
    start = time.perf_counter()
    features, targets = fixed_points(network, batches)
    if gather is not None:
        features, targets = gather(features), gather(targets)
    middle = time.perf_counter()
    losses = fit_readout(network.readout.weight, features, targets, loss, options)
    return {"samples": features.shape[0], "losses": losses, "features_seconds": round(middle - start, 2),
            "fit_seconds": round(time.perf_counter() - middle, 2)}
