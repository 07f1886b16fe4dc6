"""Hopfield network (thesis ch. 2): Hebbian couplings, zero-temperature and Glauber dynamics.

J_ij = (1/N) Σ_μ ξ_i^μ ξ_j^μ for i ≠ j, J_ii = 0; energy E(s) = −½ Σ_(i≠j) J_ij s_i s_j.
Asynchronous zero-temperature updates s_i ← sign(h_i) (a zero field keeps s_i) never raise E,
since a flip changes it by 2 s_i h_i < 0. Glauber dynamics at inverse temperature β sets
s_i = +1 with probability 1/(1 + exp(−2β h_i)). Retrieval from a stored pattern breaks down
near the load α_c = P/N ≈ 0.138 (Amit, Gutfreund and Sompolinsky).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from tqdm.auto import tqdm

from mlcm_torch.functional.dynamics import sequential_updates
from mlcm_torch.functional.fields import coupling_sum
from mlcm_torch.physics.accessibility import crossing
from mlcm_torch.physics.dynamics import BLOCK, run_dynamics
from mlcm_torch.physics.networks import Network, check_states, check_values, random_states


def hebbian_couplings(patterns: torch.Tensor) -> torch.Tensor:
    """Hebb rule J = ξᵀξ / N with zero diagonal; patterns (P, N) or (M, P, N) of ±1."""
    if patterns.dim() == 2:
        patterns = patterns.unsqueeze(0)
    if patterns.dim() != 3:
        raise ValueError(f"patterns must have shape (P, N) or (M, P, N), got {tuple(patterns.shape)}")
    if not torch.all(patterns.abs() == 1):
        raise ValueError("patterns must contain only -1 and +1")
    xi = patterns.to(torch.float32)
    j = torch.matmul(xi.transpose(1, 2), xi) / xi.shape[-1]
    torch.diagonal(j, dim1=-2, dim2=-1).zero_()
    return j


def hopfield_network(patterns: torch.Tensor) -> Network:
    """Network with Hebbian couplings, no self-coupling and the Hopfield tie rule (sign(0) keeps s_i)."""
    return Network(hebbian_couplings(patterns), 0.0, 1.0, keep_ties=True)


def energy(network: Network, states: torch.Tensor) -> torch.Tensor:
    """E = −½ Σ_(i≠j) J_ij s_i s_j per state, shape (M, B), float64 (the J_D term is a constant, left out).

    The engine's coupling sum Σ_(j≠i) J_ij s_j of the physical couplings, in float64.
    """
    states = check_states(network, states).to(torch.float64)
    couplings = network.couplings.to(torch.float64) / network.unit
    h = coupling_sum(network.graph.layers[0]._replace(J=couplings, unit=1.0), states)
    return -0.5 * (states * h).sum(-1)


def glauber_sweep(
    network: Network, states: torch.Tensor, beta: float, order: torch.Tensor,
    generator: torch.Generator | None = None, block: int = BLOCK,
) -> None:
    """One sweep of Glauber dynamics at inverse temperature β, in place, neurons in `order`.

    Exactly sequential: the engine's block-corrected
    :func:`~mlcm_torch.functional.dynamics.sequential_updates`, whose callback receives the
    physical field h_i (J_D s_i included) and sets s_i = +1 with probability 1/(1 + exp(−2β h_i)).
    """
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    draws = torch.rand((order.numel(), *states.shape[:2]), generator=generator, device=states.device,
                       dtype=states.dtype)

    def new_state(k: int, s: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        h = h.to(states.dtype)
        return torch.where(draws[k] < torch.sigmoid(2 * beta * h), 1.0, -1.0).to(states.dtype)

    sequential_updates(network.graph, states, 0, order, network.phase, new_state, block)


def glauber_dynamics(
    network: Network, initial: torch.Tensor, beta: float, sweeps: int, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """States after `sweeps` Glauber sweeps at inverse temperature β (random order each sweep)."""
    if isinstance(sweeps, bool) or int(sweeps) != sweeps or sweeps < 0:
        raise ValueError(f"sweeps must be a non-negative integer, got {sweeps!r}")
    states = check_states(network, initial).clone()
    device = generator.device if generator is not None else "cpu"
    order_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=device))
    order_gen = torch.Generator().manual_seed(order_seed)
    for _ in range(int(sweeps)):
        glauber_sweep(network, states, beta, torch.randperm(network.n, generator=order_gen), generator)
    return states


def retrieval(
    n: int,
    alphas: list[float],
    *,
    n_networks: int = 4,
    n_cues: int = 8,
    beta: float | None = None,
    sweeps: int = 20,
    max_sweeps: int = 100,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict:
    """Final overlap m = ξ·s/N with the pattern a run started from, vs the load α = P/N.

    Zero-temperature asynchronous dynamics to a fixed point (max_sweeps) and, if beta is given,
    Glauber dynamics for `sweeps` sweeps. A run retrieves its pattern when m > 0.9; α_c is where
    the retrieved fraction falls through 1/2. The dense backend: Hebbian fields are often exactly
    zero, and the float32 couplings ξᵀξ/N leave rounding there that the backends resolve
    differently (:func:`~mlcm_torch.physics.dynamics.run_dynamics`); this keeps the published results.
    """
    alphas = check_values("alphas", alphas)
    if min(alphas) <= 0:
        raise ValueError(f"alphas = P/N must be positive, got {alphas!r}")
    generator = torch.Generator(device=device).manual_seed(seed)
    loads = [max(1, round(a * n)) for a in alphas]
    cues = min(n_cues, min(loads))
    rows = {"zero_temperature": []}
    if beta is not None:
        rows["glauber"] = []
    for p in tqdm(loads, disable=not progress, desc=f"Hopfield N={n}"):
        patterns = random_states(n_networks, p, n, generator=generator, device=device)
        net = hopfield_network(patterns)
        start = patterns[:, :cues]
        runs = {"zero_temperature": run_dynamics(net, start, dynamics="async", max_steps=max_sweeps, backend="dense",
                                                 generator=torch.Generator().manual_seed(seed)).states}
        if beta is not None:
            runs["glauber"] = glauber_dynamics(net, start, beta, sweeps, generator=generator)
        for key, final in runs.items():
            m = (final * start).mean(-1).flatten().cpu().to(torch.float64)
            rows[key].append({
                "overlap_mean": float(m.mean()),
                "overlap_err": float(m.std() / math.sqrt(m.numel())),
                "retrieved": float((m > 0.9).to(torch.float64).mean()),
            })
        del net, patterns
    out = {"n": n, "alphas": list(map(float, alphas)), "patterns": loads, "runs_per_point": n_networks * cues,
           "beta": beta, "sweeps": sweeps}
    for key, values in rows.items():
        failed = [1 - v["retrieved"] for v in values]
        out[key] = {
            "overlap_mean": [v["overlap_mean"] for v in values],
            "overlap_err": [v["overlap_err"] for v in values],
            "retrieved": [v["retrieved"] for v in values],
            "alpha_c": crossing(np.asarray(alphas, dtype=float), np.asarray(failed)),
        }
    return out
