"""Accessibility of fixed points vs self-coupling (arXiv 2510.11984).

Fixed points exist in exponential number for any J_D > −∞ (thesis eq. 3.2), but simple
dynamics only reaches them past an algorithm-dependent threshold. We measure the fraction of
random initial states that converge within a step budget, for synchronous and asynchronous
updates, and locate the J_D where it crosses one half.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from mlcm_torch.physics.dynamics import DYNAMICS
from mlcm_torch.physics.networks import check_values, random_network, random_states
from mlcm_torch.physics.scan import self_coupling_scan


def crossing(x, y, level: float = 0.5) -> float | None:
    """First x where the piecewise-linear curve y(x) rises through `level` (None if it never does)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError(f"x and y must be 1-D of equal length >= 2, got {x.shape} and {y.shape}")
    if y[0] >= level:
        return float(x[0])
    for i in range(1, x.size):
        if y[i - 1] < level <= y[i]:
            return float(x[i - 1] + (level - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))
    return None


def accessibility(
    n: int,
    j_d_values: list[float],
    *,
    n_networks: int = 4,
    n_states: int = 32,
    kind: str = "gaussian",
    dynamics: tuple[str, ...] = DYNAMICS,
    max_steps: int = 200,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    backend: str = "auto",
) -> dict:
    """Fraction of random initial states reaching a fixed point within max_steps, vs J_D.

    For each dynamics: the fraction with its binomial standard error, and the threshold J_D
    where the fraction crosses 1/2, bracketed by the crossings of fraction ± 1 s.e.
    ``backend``: that of :func:`~mlcm_torch.physics.dynamics.run_dynamics` (``dense`` reproduces
    versions before 0.8 exactly).
    """
    j_d_values = check_values("j_d_values", j_d_values)
    generator = torch.Generator(device=device).manual_seed(seed)
    net = random_network(n, 0.0, n_networks=n_networks, kind=kind, generator=generator, device=device,
                         batch=n_states * len(j_d_values))
    initial = random_states(n_networks, n_states, n, generator=generator, device=device, dtype=net.state_dtype)
    samples = n_networks * n_states
    out = {"n": n, "j_d": list(map(float, j_d_values)), "samples_per_point": samples}
    for dyn in tqdm(dynamics, disable=not progress, desc="accessibility"):
        res = self_coupling_scan(net, initial, j_d_values, dynamics=dyn, max_steps=max_steps, seed=seed,
                                 progress=progress, backend=backend)
        fraction = res.converged.flatten(1).to(torch.float64).mean(1).cpu().numpy()
        err = np.sqrt(np.maximum(fraction * (1 - fraction), 1.0 / samples) / samples)
        steps = res.steps.flatten(1).to(torch.float64).cpu()
        conv = res.converged.flatten(1).cpu()
        mean_steps = ((steps * conv).sum(1) / conv.sum(1).clamp_min(1)).tolist()
        out[dyn] = {
            "fraction": fraction.tolist(),
            "fraction_err": err.tolist(),
            "mean_steps_converged": [v if c > 0 else None for v, c in zip(mean_steps, conv.sum(1).tolist())],
            "threshold": crossing(j_d_values, fraction),
            "threshold_low": crossing(j_d_values, fraction + err),
            "threshold_high": crossing(j_d_values, fraction - err),
        }
    del net
    return out

