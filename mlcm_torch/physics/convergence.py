"""Convergence time vs self-coupling (thesis Fig. 3.2) and its power-law divergence at J_D*.

The time is counted in parallel steps (synchronous) or sweeps of N single updates
(asynchronous). Near J_D* at large N the mean time diverges as T ∝ (J_D − J_D*)^(−γ);
at small N it is a staircase of plateaus because the fields take few distinct values.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.optimize import curve_fit
from tqdm.auto import tqdm

from mlcm_torch.physics.dynamics import DYNAMICS
from mlcm_torch.physics.networks import check_sizes, check_values, random_network, random_states
from mlcm_torch.physics.scan import self_coupling_scan


def lowest_all_converged(j_d_values, all_converged) -> float | None:
    """Smallest J_D of an ascending grid from which on every sample converged (grid estimate of J_D*)."""
    lowest = None
    for j, ok in reversed(list(zip(j_d_values, all_converged))):
        if not ok:
            break
        lowest = float(j)
    return lowest


def fit_power_law(j_d, times, *, min_time: float = 3.0) -> dict:
    """Fit T = A (J_D − J_c)^(−γ) to mean convergence times (thesis Fig. 3.2).

    Uses the points with finite T >= min_time (the divergent region, above the few-step floor);
    J_c is a free parameter below the smallest such J_D. Returns gamma, j_c, amplitude, their
    standard errors (from the fit covariance) and the number of points used.
    """
    x = np.asarray(j_d, dtype=float)
    y = np.asarray(times, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"j_d and times must be 1-D of equal length, got {x.shape} and {y.shape}")
    use = np.isfinite(y) & (y >= min_time)
    if use.sum() < 4:
        raise ValueError(f"power-law fit needs at least 4 points with finite time >= {min_time}, got {int(use.sum())}")
    x, y = x[use], y[use]
    x_min = float(x.min())
    span = float(x.max() - x_min)

    def model(v, log_a, j_c, gamma):
        return log_a - gamma * np.log(np.maximum(v - j_c, 1e-12))

    guess = (float(np.log(y.min())), x_min - 0.1 * span, 1.0)
    bounds = ([-np.inf, x_min - 10 * span - 1.0, 0.0], [np.inf, x_min - 1e-6, 20.0])
    params, cov = curve_fit(model, x, np.log(y), p0=guess, bounds=bounds, maxfev=20000)
    err = np.sqrt(np.clip(np.diag(cov), 0, None))
    return {
        "gamma": float(params[2]), "gamma_err": float(err[2]),
        "j_c": float(params[1]), "j_c_err": float(err[1]),
        "amplitude": float(np.exp(params[0])), "points": int(use.sum()),
        "j_d_range": [x_min, float(x.max())],
    }


def convergence_times(
    sizes: list[int],
    j_d_values: list[float],
    *,
    n_networks: int = 4,
    n_states: int = 16,
    kind: str = "binary",
    dynamics: tuple[str, ...] = DYNAMICS,
    max_steps: int = 300,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    backend: str = "auto",
) -> dict:
    """Mean convergence time vs J_D for each N and dynamics, with a power-law fit per curve.

    Times average over the samples that converged; `fraction` is the converged share. The fit
    uses the J_D values where every sample converged (else the mean is biased by the cap).
    ``backend``: that of :func:`~mlcm_torch.physics.dynamics.run_dynamics`.
    """
    sizes = check_sizes(sizes)
    j_d_values = check_values("j_d_values", j_d_values)
    generator = torch.Generator(device=device).manual_seed(seed)
    rows = []
    for n in tqdm(sizes, disable=not progress, desc="convergence time"):
        net = random_network(n, 0.0, n_networks=n_networks, kind=kind, generator=generator, device=device,
                             batch=n_states * len(j_d_values))
        initial = random_states(n_networks, n_states, n, generator=generator, device=device, dtype=net.state_dtype)
        row = {"n": n}
        for dyn in dynamics:
            res = self_coupling_scan(net, initial, j_d_values, dynamics=dyn, max_steps=max_steps, seed=seed,
                                     backend=backend)
            steps = res.steps.flatten(1).to(torch.float64).cpu()
            conv = res.converged.flatten(1).cpu()
            count = conv.sum(1)
            mean = torch.where(count > 0, (steps * conv).sum(1) / count.clamp_min(1), torch.nan)
            sq = ((steps - mean.unsqueeze(1)) ** 2 * conv).sum(1)
            sem = torch.where(count > 1, torch.sqrt(sq / (count - 1).clamp_min(1) / count.clamp_min(1)), torch.nan)
            fraction = conv.to(torch.float64).mean(1)
            all_ok = fraction == 1
            curve = {
                "mean_time": [None if math.isnan(v) else v for v in mean.tolist()],
                "sem_time": [None if math.isnan(v) else v for v in sem.tolist()],
                "fraction": fraction.tolist(),
                "j_d_all_converge": lowest_all_converged(j_d_values, all_ok.tolist()),
            }
            try:
                curve["fit"] = fit_power_law(np.asarray(j_d_values)[all_ok.numpy()], mean[all_ok].numpy())
            except (ValueError, RuntimeError) as exc:
                curve["fit"] = {"error": str(exc)}
            row[dyn] = curve
        rows.append(row)
        del net, initial
    return {"j_d": list(map(float, j_d_values)), "sizes": rows}
