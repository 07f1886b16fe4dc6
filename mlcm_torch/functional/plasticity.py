"""Local, perceptron-like plasticity (thesis eq. 6.3 / Alg. 3) and the perceptron readout.

A learning rule is a pure function of the relaxed states, the input (and the label) and the
graph, returning one delta per learnable tensor, summed over the batch; the network scales it
by its learning rates, averages it across processes, applies weight decay and masks. The rules
act on ±1 states (a {0, 1} network passes 2z − 1).
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from mlcm_torch.functional.fields import coupling_sum, source_drive
from mlcm_torch.functional.graph import Graph


class Outer(NamedTuple):
    """A delta summed over the batch as a product of factors, Σ_b post_bi pre_bj = postᵀ pre
    (with a zero diagonal for recurrent couplings), so that it can be applied by one GEMM."""

    post: Tensor
    pre: Tensor
    zero_diagonal: bool = False

    def dense(self) -> Tensor:
        delta = self.post.transpose(-1, -2) @ self.pre
        if self.zero_diagonal:
            delta.diagonal(dim1=-2, dim2=-1).zero_()
        return delta


class PerceptronDeltas(NamedTuple):
    """Output of :func:`perceptron_rule`: ``layers[l]`` Σ_b ΔJ^l (N, N) with zero diagonal, or
    ``None``; ``couplings[k]`` Σ_b ΔW of coupling k, or ``None`` (both as :class:`Outer`);
    ``unstable[l]`` (B, N_l) bool: the neurons whose margin was ≤ ρ."""

    layers: tuple[Outer | None, ...]
    couplings: tuple[Outer | None, ...]
    unstable: tuple[Tensor, ...]


def margins(graph: Graph, states: Tensor, x: Tensor, drives: Sequence[Tensor | None] | None = None) -> list[Tensor]:
    """Perceptron margins m^l (B, N_l) of every layer at ±1 ``states`` (B, total), input ``x``.

    Neuron i of layer l is a perceptron whose inputs are its layer (j ≠ i) and the couplings
    marked ``margin`` (the input and earlier layers): m = s_i (Σ_(j≠i) J_ij s_j + Σ_c (c)_i).
    Never the self-coupling J_D, the rightward couplings or the label (thesis eq. 6.3).
    ``drives[k]``: the input drive ``source_drive(coupling k, x)`` already computed (e.g. by the
    relaxation, :func:`~mlcm_torch.functional.fields.prepare_phase`, for this x and these
    couplings), used as it is; None computes it.
    """
    out = []
    for layer, spec in enumerate(graph.layers):
        s = states[..., graph.slice(layer)]
        h = coupling_sum(spec, s)
        for k, coupling in enumerate(graph.couplings):
            if coupling.post != layer or not coupling.margin or coupling.strength == 0:
                continue
            if coupling.pre == "input":
                known = drives[k] if drives is not None else None
                h = h + (known if known is not None else source_drive(coupling, x, spec.size))
                continue
            pre = states[..., graph.slice(coupling.pre)]
            if coupling.W is not None:
                h = h + coupling.strength * (pre @ coupling.W.T)
            else:
                h = h + coupling.strength * torch.nn.functional.pad(pre, (0, spec.size - pre.shape[-1]))
        out.append(s * h)
    return out


def perceptron_rule(
    graph: Graph,
    states: Tensor,
    x: Tensor,
    robustness: Sequence[float],
    learnable_layers: Sequence[bool],
    learnable_couplings: Sequence[bool],
    drives: Sequence[Tensor | None] | None = None,
) -> PerceptronDeltas:
    """Thesis eq. 6.3 / Alg. 3 for every learnable tensor, summed over the batch.

    Where m^l_bi ≤ ρ_l (:func:`margins`; ``drives`` as there): ΔJ^l_ij = Σ_b s_bi s_bj (diagonal
    zero), and for a learnable coupling into layer l from ``pre`` (a layer or the input x):
    ΔW_ij = Σ_b s_bi pre_bj — each tensor learns by the rule of its postsynaptic neurons.
    """
    unstable = [m <= rho for m, rho in zip(margins(graph, states, x, drives), robustness)]
    post = [states[..., graph.slice(layer)] * mask for layer, mask in enumerate(unstable)]
    layer_deltas = tuple(
        Outer(post[layer], states[..., graph.slice(layer)], zero_diagonal=True) if learnable else None
        for layer, learnable in enumerate(learnable_layers)
    )
    coupling_deltas = tuple(
        Outer(post[c.post], x if c.pre == "input" else states[..., graph.slice(c.pre)]) if learnable else None
        for c, learnable in zip(graph.couplings, learnable_couplings)
    )
    return PerceptronDeltas(layer_deltas, coupling_deltas, tuple(unstable))


def readout_targets(labels: Tensor, num_classes: int, targets: tuple[float, float], dtype: torch.dtype) -> Tensor:
    """t (B, C): ``targets[0]`` for the true class and ``targets[1]`` elsewhere for class
    indices (B,); target vectors (B, C) are returned as they are."""
    if labels.dim() == 2:
        return labels.to(dtype)
    true_class = torch.nn.functional.one_hot(labels, num_classes).bool()
    return torch.where(true_class, targets[0], targets[1]).to(dtype)


def readout_perceptron_delta(
    features: Tensor,
    labels: Tensor,
    W_out: Tensor,
    scale: float,
    margin: float,
    targets: tuple[float, float] = (1.0, -1.0),
) -> tuple[Tensor, Tensor]:
    """One-vs-all perceptron rule with margin for the readout (arXiv 2510.11984).

    With targets t (:func:`readout_targets`), where t_bc (W_out s_b)_c ≤ margin:
    ΔW_out_c = scale · Σ_b t_bc s_b (scale = η_out / B, or η_out / √(N B) in the paper's
    normalisation). Returns (ΔW_out (C, N), unstable (B, C) bool).
    """
    delta, unstable = readout_perceptron_rule(features, labels, W_out, margin, targets)
    return delta.dense() * scale, unstable


def readout_perceptron_rule(
    features: Tensor, labels: Tensor, W_out: Tensor, margin: float, targets: tuple[float, float] = (1.0, -1.0),
    logits: Tensor | None = None,
) -> tuple[Outer, Tensor]:
    """:func:`readout_perceptron_delta` as (Σ_b ΔW_out as an :class:`Outer`, unstable (B, C));
    ``logits``: features W_outᵀ when the caller has them."""
    t = readout_targets(labels, W_out.shape[0], targets, features.dtype)
    unstable = t * (features @ W_out.T if logits is None else logits) <= margin
    return Outer(t * unstable, features), unstable


def decay_and_add(weight: Tensor, delta: Tensor, lr: float, weight_decay: float) -> None:
    """In place: W ← W·(1 − η ξ) + ΔW (thesis Alg. 3 with weight decay ξ, learning rate η)."""
    if weight_decay:
        weight.mul_(1.0 - lr * weight_decay)
    weight.add_(delta)


def apply_update(
    weight: Tensor,
    delta: Outer,
    scale: float,
    lr: float,
    weight_decay: float,
    mask: Tensor | None = None,
    reduce=None,
) -> None:
    """In place: W ← W·(1 − η ξ) + scale·Δ (masked). Without ``reduce`` this is one GEMM
    (``addmm_`` with β = 1 − η ξ), then the mask applied to the result (W is zero off the mask,
    so (β W + scale Δ)·M = β W + scale Δ·M); with ``reduce`` Δ is formed, masked, passed through
    ``reduce`` (e.g. a mean across processes) and added. Both agree up to float rounding."""
    if reduce is None:
        weight.addmm_(delta.post.transpose(-1, -2), delta.pre, beta=1.0 - lr * weight_decay, alpha=scale)
        if delta.zero_diagonal:
            weight.diagonal(dim1=-2, dim2=-1).zero_()
        if mask is not None:
            weight.mul_(mask)
        return
    dense = delta.dense() * scale
    if mask is not None:
        dense = dense * mask
    decay_and_add(weight, reduce(dense) if reduce is not None else dense, lr, weight_decay)
