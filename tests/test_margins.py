"""The learning rule's margins decided as in exact arithmetic (thesis eq. 6.3): float margins
within their rounding bound of ρ are recomputed in float64, so a float32 network takes the
decisions of a float64 evaluation, whether J s comes from a product or from the fields an event
relaxation carried. Reference: the margins summed one term at a time in Python floats."""

from __future__ import annotations

import itertools

import pytest
import torch

from mlcm_torch import MLCM, Dynamics
from mlcm_torch.functional import margins
from mlcm_torch.functional.plasticity import unstable_neurons

D, N, C = 48, 64, 4


def network(layers: int, backend: str = "dense", protocol: str = "steering") -> MLCM:
    net = MLCM(D, N, layers, C, seed=11, j_d=0.4, lambda_in=1.5, lambda_left=0.8, lambda_right=0.3,
               lambda_out=1.0, max_sweeps=40, input_coupling="dense", lr=0.1, lr_in=0.05, robustness=0.5,
               protocol=protocol)
    net.dynamics = Dynamics(**{**net.dynamics.__dict__, "backend": backend})
    # a few training steps so that J and the input couplings are not their initial draws
    for step in range(3):
        x, y = inputs(8, seed=100 + step)
        net.local_update(net.relax(x, y), x, y)
    return net


def inputs(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.randint(0, 2, (batch, D), generator=g).float() - 1, torch.randint(0, C, (batch,), generator=g)


def reference_margins(net: MLCM, states: torch.Tensor, x: torch.Tensor) -> list[torch.Tensor]:
    """m^l_bi = s_i (Σ_(j≠i) J_ij s_j + Σ_(input and leftward couplings) λ (W pre)_i), term by
    term in Python floats (float64)."""
    graph = net.graph()
    out = []
    for layer, spec in enumerate(graph.layers):
        s = states[:, graph.slice(layer)].double().tolist()
        J = spec.J.double().tolist()
        m = torch.zeros(states.shape[0], spec.size, dtype=torch.float64)
        for b, i in itertools.product(range(states.shape[0]), range(spec.size)):
            h = sum(J[i][j] * s[b][j] for j in range(spec.size) if j != i)
            for coupling in graph.couplings:
                if coupling.post != layer or not coupling.margin or coupling.strength == 0:
                    continue
                pre = x[b] if coupling.pre == "input" else states[b, graph.slice(coupling.pre)]
                pre = pre.double().tolist()
                if coupling.W is None:
                    h += coupling.strength * (pre[i] if i < len(pre) else 0.0)
                else:
                    W = coupling.W.double().tolist()
                    h += coupling.strength * sum(W[i][j] * pre[j] for j in range(len(pre)))
            m[b, i] = s[b][i] * h
        out.append(m)
    return out


def thresholds_at_margins(m: torch.Tensor, count: int = 12) -> list[float]:
    """ρ just above or just below the margin of one (sample, neuron) each: 1e-9 away, far below
    float32 rounding (~1e-7 here) and far above float64 rounding."""
    g = torch.Generator().manual_seed(3)
    picks = torch.randint(0, m.numel(), (count,), generator=g).tolist()
    return [m.flatten()[p].item() + (1e-9 if k % 2 else -1e-9) for k, p in enumerate(picks)]


@pytest.mark.parametrize("layers", [1, 3])
def test_margins_are_decided_as_in_float64(layers):
    """With ρ 1e-9 from some margins, the float32 network's unstable neurons equal the float64
    reference everywhere, while the float32 margins alone decide some of them wrongly."""
    net = network(layers)
    x, y = inputs(16, seed=7)
    states = net.relax(x, y).states.reshape(16, -1)
    graph = net.graph()
    reference = reference_margins(net, states, x)
    float32_wrong = 0
    for layer in range(layers):
        for rho in thresholds_at_margins(reference[layer]):
            robustness = [rho if k == layer else 0.5 for k in range(layers)]
            decided = unstable_neurons(graph, states, x, robustness)
            assert torch.equal(decided[layer], reference[layer] <= rho), (layer, rho)
            float32_wrong += int(((margins(graph, states, x)[layer] <= rho) != (reference[layer] <= rho)).sum())
    assert float32_wrong > 0  # the float32 margins alone would have decided differently


@pytest.mark.parametrize("protocol, layers", [("steering", 1), ("steering", 3), ("thesis", 3)])
def test_carried_fields_give_the_margins_of_the_product(protocol, layers):
    """After an event relaxation the local update takes J s from the carried fields
    (``Network._kept_fields``; for the thesis protocol, whose only phase has the feedback on,
    less the one-to-one feedback λ_R s^(l+1)) and decides exactly as the float64 reference; a
    product-based decision (fields not passed) agrees."""
    net = network(layers, backend="event", protocol=protocol)
    x, y = inputs(16, seed=8)
    relaxation = net.relax(x, y)
    states = relaxation.states.reshape(16, -1)
    graph = net.graph()
    kept = net._kept_fields(graph, states)
    assert kept is not None and all(field is not None for field in kept[0])
    reference = reference_margins(net, states, x)
    for layer in range(layers):
        for rho in thresholds_at_margins(reference[layer]):
            robustness = [rho if k == layer else 0.5 for k in range(layers)]
            from_fields = unstable_neurons(graph, states, x, robustness, carried=kept)[layer]
            from_product = unstable_neurons(graph, states, x, robustness)[layer]
            assert torch.equal(from_fields, reference[layer] <= rho), (layer, rho)
            assert torch.equal(from_product, from_fields)


def test_kept_fields_only_for_the_states_and_couplings_they_belong_to():
    net = network(1, backend="event")
    x, y = inputs(8, seed=9)
    states = net.relax(x, y).states.reshape(8, -1)
    graph = net.graph()
    assert net._kept_fields(graph, states) is not None
    other = states.clone()
    other[0, 0] = -other[0, 0]
    assert net._kept_fields(graph, other) is None
    net.layers[0].J.mul_(1.0)  # an in-place change of the couplings (a new version)
    assert net._kept_fields(net.graph(), states) is None
    net.relax(x, y)
    net.local_update(net.relax(x, y), x, y)
    assert net._kept_fields(net.graph(), states) is None  # used once, then dropped
