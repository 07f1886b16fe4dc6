"""A recurrent layer of binary neurons as an ``nn.Module`` whose couplings are buffers."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from mlcm_torch.functional.graph import Encoding, Layer, Tie
from mlcm_torch.module import checks
from mlcm_torch.module.config import Configurable


def sparse_mask(rows: int, cols: int, sparsity: float, generator: torch.Generator, no_diagonal: bool) -> Tensor | None:
    """A fixed random mask (True = connection present) with a fraction ``sparsity`` of zeros
    among the allowed entries, or ``None`` when ``sparsity`` is 0."""
    if not sparsity:
        return None
    mask = torch.rand(rows, cols, generator=generator) >= sparsity
    if no_diagonal:
        mask.fill_diagonal_(False)
    return mask


def presynaptic_major(W: Tensor) -> Tensor:
    """W (N_post × N_pre) with the same values, stored column by column: a presynaptic neuron's
    outgoing couplings (a column of W, a row of Wᵀ) are contiguous, so the event backend
    corrects fields by the neurons that flipped without copying Wᵀ after every update."""
    return W.transpose(-1, -2).contiguous().transpose(-1, -2)


def gaussian_couplings(rows: int, cols: int, mask: Tensor | None, generator: torch.Generator) -> Tensor:
    """N(0, 1/fan-in) couplings: fan-in = ``cols`` when dense, the number of connections present
    in the row when masked (masked entries are zero)."""
    W = torch.randn(rows, cols, generator=generator)
    if mask is None:
        return W / math.sqrt(cols)
    present = mask.sum(dim=1, keepdim=True).clamp(min=1)
    return W * mask / present.sqrt()


class RecurrentLayer(Configurable, nn.Module):
    """N binary neurons with internal couplings J (a buffer: N×N, zero diagonal, rows
    postsynaptic, stored presynaptic-major: :func:`presynaptic_major`) and a self-coupling J_D that is never learned (thesis eq. 6.1).

    J is drawn i.i.d. N(0, 1/N) when dense; with ``sparsity`` a fixed random mask (drawn from the
    network's seed) zeroes that fraction of the off-diagonal entries and the present ones are
    N(0, 1/present-per-row). J learns by the perceptron rule of its neurons (thesis eq. 6.3)
    when ``lr`` > 0; a masked entry stays zero.

    Args:
        size: number of neurons N.
        j_d: self-coupling J_D.
        sparsity: fraction of zero off-diagonal couplings, in [0, 1) (arXiv 2509.05041 uses 0.99).
        gamma: sparsity threshold γ ≥ 0 of the {0, 1} encoding (thesis eq. 7.1).
        k_winners: k-winners-take-all: only the k largest fields are active (synchronous
            schedules only).
        tie: decision on a zero field (``plus``: sign(0) = +1; ``flip``; ``keep``).
        lr: learning rate of J (0: J is fixed).
        weight_decay: ξ of J: J ← J (1 − η ξ) + ΔJ.
        robustness: ρ (κ); a neuron learns when its margin is ≤ ρ.
    """

    def __init__(
        self,
        size: int,
        *,
        j_d: float = 0.0,
        sparsity: float = 0.0,
        gamma: float = 0.0,
        k_winners: Optional[int] = None,
        tie: Tie = "plus",
        lr: float = 0.0,
        weight_decay: float = 0.0,
        robustness: float = 0.0,
    ) -> None:
        super().__init__()
        self._size = checks.integer_at_least("size", size, 1)
        self._j_d = checks.finite("j_d", j_d)
        self._sparsity = checks.fraction("sparsity", sparsity)
        self._gamma = checks.finite_at_least("gamma", gamma, 0.0)
        if k_winners is not None and not (isinstance(k_winners, int) and 1 <= k_winners <= size):
            raise ValueError(f"k_winners={k_winners!r} must be an integer in [1, size={size}]")
        self._k_winners = k_winners
        self._tie = checks.one_of("tie", tie, Tie)
        self._lr = checks.finite_at_least("lr", lr, 0.0)
        self._weight_decay = checks.finite_at_least("weight_decay", weight_decay, 0.0)
        self._robustness = checks.finite("robustness", robustness)
        self.register_buffer("J", presynaptic_major(torch.zeros(size, size)))
        self.register_buffer("mask", None)

    size = property(lambda self: self._size, doc="N")
    j_d = property(lambda self: self._j_d, doc="J_D")
    sparsity = property(lambda self: self._sparsity)
    gamma = property(lambda self: self._gamma, doc="γ")
    k_winners = property(lambda self: self._k_winners)
    tie = property(lambda self: self._tie)
    lr = property(lambda self: self._lr, doc="η of J")
    weight_decay = property(lambda self: self._weight_decay, doc="ξ of J")
    robustness = property(lambda self: self._robustness, doc="ρ")

    @property
    def fan_in(self) -> float:
        """Connections per neuron for the ``paper`` learning-rate scaling: N (1 − sparsity)."""
        return self._size * (1.0 - self._sparsity)

    def build(self, generator: torch.Generator) -> None:
        """Draw J (and its mask) from ``generator``."""
        mask = sparse_mask(self._size, self._size, self._sparsity, generator, no_diagonal=True)
        if mask is None:
            J = torch.randn(self._size, self._size, generator=generator) / math.sqrt(self._size)
        else:
            J = gaussian_couplings(self._size, self._size, mask, generator)
        J.fill_diagonal_(0.0)
        self.J.copy_(J)
        if mask is not None:
            self.register_buffer("mask", presynaptic_major(mask))  # J's layout: the masked update is one pass

    def spec(self, encoding: Encoding) -> Layer:
        """The engine's view of this layer (no copy)."""
        return Layer(self._size, self.J, self._j_d, 1.0, encoding, self._tie, self._gamma, self._k_winners)

    def extra_repr(self) -> str:
        return f"size={self._size}, j_d={self._j_d}, sparsity={self._sparsity}, lr={self._lr}"
