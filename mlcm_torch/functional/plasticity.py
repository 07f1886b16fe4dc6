"""Local, perceptron-like plasticity (thesis eq. 6.3 / Alg. 3) and the perceptron readout.

A learning rule is a pure function of the relaxed states, the input (and the label) and the
graph, returning one delta per learnable tensor, summed over the batch; the network scales it
by its learning rates, averages it across processes, applies weight decay and masks. The rules
act on ±1 states (a {0, 1} network passes 2z − 1).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor

from mlcm_torch.functional.fields import coupling_sum, product_depth, rounding_gamma, source_drive
from mlcm_torch.functional.graph import Coupling, Graph


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


def margins(graph: Graph, states: Tensor, x: Tensor, drives: Sequence[Tensor | None] | None = None,
            layers: Sequence[int] | None = None) -> list[Tensor]:
    """Perceptron margins m^l (B, N_l) of every layer at ±1 ``states`` (B, total), input ``x``.

    Neuron i of layer l is a perceptron whose inputs are its layer (j ≠ i) and the couplings
    marked ``margin`` (the input and earlier layers): m = s_i (Σ_(j≠i) J_ij s_j + Σ_c (c)_i).
    Never the self-coupling J_D, the rightward couplings or the label (thesis eq. 6.3).
    ``drives[k]``: the input drive ``source_drive(coupling k, x)`` already computed (e.g. by the
    relaxation, :func:`~mlcm_torch.functional.fields.prepare_phase`, for this x and these
    couplings), used as it is; None computes it. ``layers``: only these layers' margins.
    """
    out = []
    for layer in range(len(graph.layers)) if layers is None else layers:
        spec = graph.layers[layer]
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


def margin_couplings(graph: Graph, layer: int) -> list[tuple[int, Coupling]]:
    """(index, coupling) of the couplings that count in the margins of ``layer`` (thesis eq. 6.3)."""
    return [(k, c) for k, c in enumerate(graph.couplings) if c.post == layer and c.margin and c.strength != 0]


def _row_abs(W: Tensor, row_l1: Callable[[Tensor], Tensor] | None) -> Tensor:
    return row_l1(W) if row_l1 is not None else W.abs().sum(dim=-1, dtype=torch.float64)


def margin_bound(graph: Graph, layer: int, rows: int | None, device: torch.device,
                 row_l1: Callable[[Tensor], Tensor] | None = None,
                 fields_error: Tensor | None = None) -> Tensor | float:
    """A bound on |m − m*| for the margins of :func:`margins` for a 2-D input of ``rows`` samples
    (None: another shape) (m* in exact arithmetic), per neuron (float64): with t float terms (J s and the margin couplings, each a
    float sum of products of couplings and states in [−1, 1] in which a product meets at most n
    roundings: the width, or :func:`~mlcm_torch.functional.fields.product_depth` for the input's
    blocked drive) added up in the couplings' dtype, the rounding is within
    γ_(n + t + 1) Σ (row L1 norms of the terms' matrices) whatever the order of the sums.
    ``fields_error``: J s and the couplings from layers come instead from fields carried by an
    event relaxation with this bound (:class:`~mlcm_torch.functional.events.EventState`), and only
    the input's terms and the final sum are bounded here. ``row_l1``: bounds on Σ_j |W_ij| (e.g.
    the network's carried ones), else one pass per matrix."""
    spec = graph.layers[layer]
    terms = [] if fields_error is not None or spec.J is None else [(spec.J, spec.J.shape[-1], 1 / spec.unit)]
    for _, coupling in margin_couplings(graph, layer):
        if fields_error is not None and coupling.pre != "input":
            continue
        if coupling.W is None:
            terms.append((None, 1, abs(coupling.strength)))
        else:
            width = coupling.W.shape[-1]
            depth = product_depth(rows, width, device) if coupling.pre == "input" and rows is not None else width
            terms.append((coupling.W, depth, abs(coupling.strength)))
    exact_int = spec.J is not None and spec.J.dtype == torch.int8 and fields_error is None and len(terms) == 1
    if not terms or exact_int:
        return fields_error if fields_error is not None else 0.0
    dtype = next((W.dtype for W, _, _ in terms if W is not None and W.is_floating_point()), torch.float32)
    depth = max(n for _, n, _ in terms) + len(terms) + 2
    total: Tensor | float = 0.0
    for W, _, factor in terms:
        total = total + factor * (_row_abs(W, row_l1) if W is not None else 1.0)
    bound = rounding_gamma(depth, dtype) * total
    return bound + fields_error if fields_error is not None else bound


def exact_margin_fields(graph: Graph, states: Tensor, x: Tensor, layer: int, neurons: Tensor) -> Tensor:
    """The margin's field Σ_(j≠i) J_ij s_j + Σ_c (c)_i (:func:`margins`) of ``neurons`` of
    ``layer`` in float64, (B, k), from the couplings, the ±1 states and the input."""
    spec = graph.layers[layer]
    s = states[..., graph.slice(layer)].to(torch.float64)
    h = s.new_zeros((*s.shape[:-1], neurons.numel()))
    if spec.J is not None:
        h = s @ spec.J[..., neurons, :].to(torch.float64).transpose(-1, -2) / spec.unit
    for _, coupling in margin_couplings(graph, layer):
        pre = (x if coupling.pre == "input" else states[..., graph.slice(coupling.pre)]).to(torch.float64)
        if coupling.W is None:
            inside = neurons < pre.shape[-1]
            term = torch.zeros_like(h)
            term[..., inside] = pre[..., neurons[inside]]
        else:
            term = pre @ coupling.W[neurons].to(torch.float64).T
        h = h + coupling.strength * term
    return h


def unstable_neurons(
    graph: Graph, states: Tensor, x: Tensor, robustness: Sequence[float],
    drives: Sequence[Tensor | None] | None = None, row_l1: Callable[[Tensor], Tensor] | None = None,
    carried: tuple[Sequence[Tensor | None], Sequence[Tensor | None]] | None = None,
) -> list[Tensor]:
    """Where m^l_bi ≤ ρ_l (thesis eq. 6.3), (B, N_l) bool per layer, decided as in exact
    arithmetic: the margins are computed in the couplings' dtype (:func:`margins`), and those
    within twice their rounding bound (:func:`margin_bound`) of ρ are recomputed in float64
    (:func:`exact_margin_fields`), so that the decision is the one of the float64 path, not of a
    float32 rounding. ``carried`` = (fields, error bounds) per layer of an event relaxation at
    these very states whose fields F^l hold exactly the margin's terms from layers (J s^l and
    the margin couplings from layers; entries None elsewhere): those layers take J s from F
    instead of a product over J. ``drives``, as in :func:`margins`; ``row_l1`` as in
    :func:`margin_bound`."""
    out = []
    rows = x.shape[0] if x.dim() == 2 else None
    for layer, rho in enumerate(robustness):
        field = carried[0][layer] if carried is not None else None
        s = states[..., graph.slice(layer)]
        if field is not None:
            h = field.to(torch.float64)
            for k, coupling in margin_couplings(graph, layer):
                if coupling.pre == "input":
                    known = drives[k] if drives is not None else None
                    h = h + (known if known is not None else source_drive(coupling, x, s.shape[-1])).to(torch.float64)
            m = s.to(torch.float64) * h
            bound = margin_bound(graph, layer, rows, m.device, row_l1, carried[1][layer])
        else:
            m = margins(graph, states, x, drives, layers=[layer])[0]
            bound = margin_bound(graph, layer, rows, m.device, row_l1)
        unstable = m <= rho
        # twice the bound, plus the rounding of ρ to m's dtype in the comparison above
        limit = 2 * (torch.as_tensor(bound, dtype=torch.float64, device=m.device) + torch.finfo(m.dtype).eps * abs(rho))
        unsure = (m - rho).abs() <= limit.to(m.dtype)
        if bool(unsure.any()):
            neurons = torch.nonzero(unsure.reshape(-1, unsure.shape[-1]).any(dim=0)).squeeze(-1)
            exact = s[..., neurons].to(torch.float64) * exact_margin_fields(graph, states, x, layer, neurons)
            unstable[..., neurons] = exact <= rho
        out.append(unstable)
    return out


def perceptron_rule(
    graph: Graph,
    states: Tensor,
    x: Tensor,
    robustness: Sequence[float],
    learnable_layers: Sequence[bool],
    learnable_couplings: Sequence[bool],
    drives: Sequence[Tensor | None] | None = None,
    row_l1: Callable[[Tensor], Tensor] | None = None,
    carried: tuple[Sequence[Tensor | None], Sequence[Tensor | None]] | None = None,
) -> PerceptronDeltas:
    """Thesis eq. 6.3 / Alg. 3 for every learnable tensor, summed over the batch.

    Where m^l_bi ≤ ρ_l (:func:`unstable_neurons`, decided as in exact arithmetic; ``drives``,
    ``row_l1`` and ``carried`` as there): ΔJ^l_ij = Σ_b s_bi s_bj (diagonal zero), and for a
    learnable coupling into layer l from ``pre`` (a layer or the input x): ΔW_ij = Σ_b s_bi
    pre_bj — each tensor learns by the rule of its postsynaptic neurons.
    """
    unstable = unstable_neurons(graph, states, x, robustness, drives, row_l1, carried)
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
