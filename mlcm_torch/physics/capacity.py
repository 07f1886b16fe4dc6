"""Perceptron capacity on random patterns, raw and after a random recurrent network (thesis §5.1).

P random patterns ξ ∈ {±1}^N with random labels y = ±1 are linearly separable through the
origin iff the linear program {w : y_μ w·ξ_μ ≥ 1 ∀μ} is feasible. The capacity α_c = P/N is
where the probability of separability crosses 1/2; Cover's theorem gives α_c = 2 for points in
general position. In the relaxed variant each pattern is first used as the initial state of a
random network with self-coupling J_D (above J_D*, so it converges) and the perceptron sees
the fixed point it reaches.

Note: Cover's function-counting bound holds for any P points in R^N, so no label-independent
map into N dimensions can push the probability of separability above Cover's curve.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from scipy.optimize import OptimizeWarning, curve_fit, linprog
from scipy.special import erfc
from scipy.stats import binom
from tqdm.auto import tqdm

from mlcm_torch.physics.dynamics import run_dynamics
from mlcm_torch.physics.networks import check_sizes, check_values, random_network, random_states


def is_separable(patterns, labels, tol: float = 1e-9) -> bool:
    """True iff some w satisfies y_μ w·ξ_μ > 0 for all μ (homogeneous perceptron).

    Solves the bounded LP  max t  s.t.  y_μ w·ξ_μ >= t, |w_i| <= 1, t <= 1, which is always
    feasible; the patterns are separable iff the optimum t* exceeds `tol`.
    """
    x = np.asarray(patterns.cpu() if isinstance(patterns, torch.Tensor) else patterns, dtype=float)
    y = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels, dtype=float)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"patterns must be (P, N) and labels (P,), got {x.shape} and {y.shape}")
    if not np.all(np.abs(y) == 1):
        raise ValueError("labels must be -1 or +1")
    p, n = x.shape
    a_ub = np.hstack([-(y[:, None] * x), np.ones((p, 1))])
    cost = np.zeros(n + 1)
    cost[-1] = -1.0
    res = linprog(cost, A_ub=a_ub, b_ub=np.zeros(p), bounds=[(-1, 1)] * n + [(None, 1)], method="highs")
    if res.status != 0:
        raise RuntimeError(f"linear program failed: {res.message}")
    return bool(-res.fun > tol)


def cover_probability(p: int, n: int) -> float:
    """Cover's probability that P random points in general position in R^N are separable."""
    return float(binom.cdf(n - 1, p - 1, 0.5)) if p > 0 else 1.0


def fit_capacity(alphas, fractions, samples: int) -> dict:
    """Fit P(separable) = ½ erfc((α − α_c)/(√2 w)); returns α_c, its standard error and w.

    The error is inf when the points do not constrain the fit (e.g. no point inside the transition).
    """
    a = np.asarray(alphas, dtype=float)
    f = np.asarray(fractions, dtype=float)
    sigma = np.sqrt(np.maximum(f * (1 - f), 0.25 / samples) / samples)

    def model(x, alpha_c, width):
        return 0.5 * erfc((x - alpha_c) / (math.sqrt(2) * np.abs(width)))

    below = a[f >= 0.5]
    guess = (float(below.max()) if below.size else float(a.mean()), 0.1 * float(a.mean()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        params, cov = curve_fit(model, a, f, p0=guess, sigma=sigma, absolute_sigma=True, maxfev=20000)
    err = np.sqrt(np.clip(np.diag(cov), 0, None))
    return {"alpha_c": float(params[0]), "alpha_c_err": float(err[0]), "width": float(abs(params[1]))}


def separability_curve(
    n: int,
    alphas: list[float],
    *,
    instances: int = 20,
    relax: bool = False,
    j_d: float = 1.0,
    kind: str = "binary",
    dynamics: str = "sync",
    max_steps: int = 1000,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict:
    """Fraction of separable instances at each α = P/N, raw or after relaxation, and the fitted α_c.

    Relaxed: each instance has its own random network (J_D = j_d) and its P patterns relax as one
    batch; the share of patterns that reached a fixed point, the share of distinct fixed points
    and the mean overlap ξ·s*/N between a pattern and its fixed point are recorded.
    """
    if instances < 2:
        raise ValueError(f"instances must be >= 2 to estimate a probability, got {instances}")
    alphas = check_values("alphas", alphas)
    if min(alphas) <= 0:
        raise ValueError(f"alphas = P/N must be positive, got {alphas!r}")
    generator = torch.Generator(device=device).manual_seed(seed)
    label_gen = np.random.default_rng(seed)
    fractions, converged, distinct, overlap = [], [], [], []
    for alpha in tqdm(alphas, disable=not progress, desc=f"capacity N={n}{' relaxed' if relax else ''}"):
        p = max(1, round(alpha * n))
        x = random_states(instances, p, n, generator=generator, device=device)
        if relax:
            net = random_network(n, j_d, n_networks=instances, kind=kind, generator=generator, device=device, batch=p)
            res = run_dynamics(net, x.to(net.state_dtype), dynamics=dynamics, max_steps=max_steps,
                               generator=torch.Generator().manual_seed(seed))
            overlap.append(float((res.states * x).mean()))
            x = res.states
            converged.append(float(res.converged.to(torch.float64).mean()))
            distinct.append(float(np.mean([torch.unique(x[i], dim=0).shape[0] / p for i in range(instances)])))
        y = label_gen.choice([-1.0, 1.0], size=(instances, p))
        fractions.append(float(np.mean([is_separable(x[i], y[i]) for i in range(instances)])))
    out = {"n": n, "alphas": list(map(float, alphas)), "fraction_separable": fractions, "instances": instances,
           "cover": [cover_probability(max(1, round(a * n)), n) for a in alphas]}
    if relax:
        out.update({"fraction_converged": converged, "fraction_distinct": distinct, "overlap_with_pattern": overlap})
    try:
        out["fit"] = fit_capacity(alphas, fractions, instances)
    except (RuntimeError, ValueError) as exc:
        out["fit"] = {"error": str(exc)}
    return out


def capacity(
    sizes: list[int],
    alphas: list[float],
    *,
    instances: int = 20,
    j_d: float = 1.0,
    kind: str = "binary",
    dynamics: str = "sync",
    max_steps: int = 1000,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict:
    """Raw and relaxed perceptron capacity α_c ± error for each N (thesis §5.1)."""
    sizes = check_sizes(sizes)
    rows = []
    for n in sizes:
        common = dict(instances=instances, seed=seed, device=device, progress=progress)
        raw = separability_curve(n, alphas, **common)
        relaxed = separability_curve(n, alphas, relax=True, j_d=j_d, kind=kind, dynamics=dynamics,
                                     max_steps=max_steps, **common)
        rows.append({"n": n, "raw": raw, "relaxed": relaxed})
    return {"sizes": rows, "j_d": j_d, "dynamics": dynamics, "kind": kind}
