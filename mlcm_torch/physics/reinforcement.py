"""Sparse positive reinforcement phase diagram (thesis §3.2, Fig. 3.3).

Couplings J + A with A_ij = a/√N on about N^d random off-diagonal entries (d ∈ (1, 2)).
A magnetised state m feels an extra field of order a·m·N^(d−3/2): negligible for d < 3/2 at
large N (the random part dominates and the dynamics stays chaotic), dominant for d > 3/2 (the
network falls into the trivial fixed points all +1 or all −1), with non-trivial fixed points
reached in between. Each sample is classified as
  chaotic       no fixed point within T_max,
  trivial_plus  converged to all +1,  trivial_minus  converged to all −1,
  intermediate  converged to any other fixed point,
and each (d, a) cell takes the label of the majority.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from mlcm_torch.physics.dynamics import DYNAMICS, run_dynamics
from mlcm_torch.physics.networks import (
    Network,
    check_values,
    random_couplings,
    random_states,
    sparse_reinforcement,
)

LABELS = ("chaotic", "intermediate", "trivial all+1", "trivial all-1", "trivial all±1")


def cell_label(chaotic: float, intermediate: float, plus: float, minus: float) -> str:
    """Regime of one (d, a) cell from the fractions of its samples in each class."""
    if chaotic > 0.5:
        return "chaotic"
    if plus + minus > 0.5:
        if minus == 0:
            return "trivial all+1"
        if plus == 0:
            return "trivial all-1"
        return "trivial all±1"
    return "intermediate"


def phase_diagram(
    n: int,
    d_values: list[float],
    a_values: list[float],
    *,
    j_d: float = 0.0,
    n_networks: int = 2,
    n_states: int = 16,
    kind: str = "binary",
    dynamics: str = "sync",
    max_steps: int = 500,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict:
    """Mean iterations to converge (non-converged counted as T_max) and regime over the (d, a) grid.

    For each d, all a values are run in one batch (len(a) · n_networks networks), on the dense
    backend: binary couplings ±1/√N plus reinforcement, stored in float32, have fields that are
    exactly zero at J_D = 0, where float32 sums leave rounding that the backends resolve
    differently (:func:`~mlcm_torch.physics.dynamics.run_dynamics`); this keeps the published results.
    """
    d_values = check_values("d_values", d_values)
    a_values = check_values("a_values", a_values)
    if dynamics not in DYNAMICS:
        raise ValueError(f"dynamics must be one of {DYNAMICS}, got {dynamics!r}")
    generator = torch.Generator(device=device).manual_seed(seed)
    k = len(a_values)
    grid = {"mean_steps": [], "fraction_converged": [], "chaotic": [], "intermediate": [],
            "trivial_plus": [], "trivial_minus": [], "label": []}
    for d in tqdm(d_values, disable=not progress, desc=f"phase diagram N={n}"):
        j, _ = random_couplings(n, n_networks=k * n_networks, kind=kind, storage="float32",
                                generator=generator, device=device, batch=n_states)
        for i, a in enumerate(a_values):
            block = slice(i * n_networks, (i + 1) * n_networks)
            j[block] += sparse_reinforcement(n, d, a, n_networks=n_networks, generator=generator, device=device)
        net = Network(j, j_d)
        initial = random_states(k * n_networks, n_states, n, generator=generator, device=device)
        res = run_dynamics(net, initial, dynamics=dynamics, max_steps=max_steps, backend="dense",
                           generator=torch.Generator().manual_seed(seed), progress=progress)
        conv = res.converged.view(k, -1).cpu()
        steps = torch.where(res.converged, res.steps, max_steps).view(k, -1).to(torch.float64).cpu()
        mag = res.states.mean(-1).view(k, -1).cpu()
        plus = (conv & (mag == 1)).to(torch.float64).mean(1)
        minus = (conv & (mag == -1)).to(torch.float64).mean(1)
        frac = conv.to(torch.float64).mean(1)
        chaotic = 1 - frac
        inter = frac - plus - minus
        grid["mean_steps"].append(steps.mean(1).tolist())
        grid["fraction_converged"].append(frac.tolist())
        grid["chaotic"].append(chaotic.tolist())
        grid["intermediate"].append(inter.tolist())
        grid["trivial_plus"].append(plus.tolist())
        grid["trivial_minus"].append(minus.tolist())
        grid["label"].append([cell_label(*v) for v in zip(chaotic.tolist(), inter.tolist(), plus.tolist(),
                                                           minus.tolist())])
        del j, net, initial
    return {"n": n, "d": list(map(float, d_values)), "a": list(map(float, a_values)), "j_d": j_d, **grid}
