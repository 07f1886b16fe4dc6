"""Local, perceptron-like plasticity (thesis eq. 6.3 / Alg. 3) and the perceptron readout.

All functions return deltas and statistics; applying them (and averaging them across
processes first, under data parallelism) is the caller's job.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from mlcm_torch.functional.fields import Couplings


class LocalDelta(NamedTuple):
    """Output of :func:`perceptron_delta`.

    ``delta_J`` (L, N, N) with zero diagonal; ``delta_W_in`` (N, d) or ``None``;
    ``unstable`` (B, L, N) bool: the neurons whose margin was ≤ ρ.
    """

    delta_J: Tensor
    delta_W_in: Tensor | None
    unstable: Tensor


def margins(states: Tensor, couplings: Couplings, input_field: Tensor) -> Tensor:
    """Perceptron margins m (B, L, N) of every neuron at ``states`` (±1).

    Neuron i of layer l is a perceptron with inputs s^l_(j≠i) and s^(l−1)_i (the input for
    l = 1): m = s_i (Σ_(j≠i) J_ij s_j + λ_L^l s^(l−1)_i). No self-coupling, no rightward
    field. ``input_field`` (B, N) = λ_IN x̃ plays the left neighbour of layer 1.
    """
    h = torch.einsum("lij,blj->bli", couplings.J, states)
    left = [input_field] + [
        couplings.lambda_left[layer] * states[:, layer - 1] for layer in range(1, states.shape[1])
    ]
    return states * (h + torch.stack(left, dim=1))


def perceptron_delta(
    states: Tensor,
    couplings: Couplings,
    input_field: Tensor,
    robustness: float,
    scale: float,
    x: Tensor | None = None,
    scale_in: float = 0.0,
) -> LocalDelta:
    """Thesis eq. 6.3 / Alg. 3: ΔJ^l_ij = scale · Σ_b [m_bi ≤ ρ] s_bi s_bj, diagonal zero.

    ``states`` are ±1 (B, L, N); ``scale`` is η / B in the thesis (η / √(N B) in the
    paper's normalisation). With a dense input coupling pass ``x`` (B, d) and ``scale_in``:
    ΔW_in_ij = scale_in · Σ_b [m_bi ≤ ρ] s^1_bi x_bj (same unstable mask as layer 1).
    """
    unstable = margins(states, couplings, input_field) <= robustness
    post = states * unstable
    delta_J = torch.einsum("bli,blj->lij", post, states) * scale
    delta_J.diagonal(dim1=1, dim2=2).zero_()
    delta_W_in = None
    if x is not None:
        delta_W_in = (post[:, 0].T @ x) * scale_in
    return LocalDelta(delta_J, delta_W_in, unstable)


def decay_and_add(weight: Tensor, delta: Tensor, lr: float, weight_decay: float) -> None:
    """In place: W ← W·(1 − η ξ) + ΔW (thesis Alg. 3 with weight decay ξ, learning rate η)."""
    if weight_decay:
        weight.mul_(1.0 - lr * weight_decay)
    weight.add_(delta)


def readout_perceptron_delta(
    features: Tensor,
    labels: Tensor,
    W_out: Tensor,
    scale: float,
    margin: float,
    targets: tuple[float, float] = (1.0, -1.0),
) -> tuple[Tensor, Tensor]:
    """One-vs-all perceptron rule with margin for the readout (arXiv 2510.11984).

    Targets t_bc = ``targets[0]`` for the true class, ``targets[1]`` otherwise (default ±1);
    where t_bc (W_out s_b)_c ≤ margin,
    ΔW_out_c = scale · Σ_b t_bc s_b (scale = η_out / B, or η_out / √(N B) in the paper's
    normalisation). Returns (ΔW_out (C, N), unstable (B, C) bool).
    """
    num_classes = W_out.shape[0]
    true_class = torch.nn.functional.one_hot(labels, num_classes).bool()
    t = torch.where(true_class, targets[0], targets[1]).to(features.dtype)
    unstable = t * (features @ W_out.T) <= margin
    delta = (t * unstable).T @ features * scale
    return delta, unstable
