"""Critical self-coupling J_D*(N) (thesis Fig. 3.1).

J_D* is the smallest J_D at which every sampled initial state of every sampled network reaches
a fixed point within the step budget. It is found per network by bisection on J_D with the
initial states (and asynchronous update orders) held fixed, assuming convergence is monotone
in J_D; the estimate for the whole sample is the largest per-network value.

Above the row bound J_D > max_i Σ_j |J_ij| every state is a fixed point, so the bisection
always has a valid upper end.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from mlcm_torch.physics.dynamics import run_dynamics
from mlcm_torch.physics.networks import (
    _CHUNK_BYTES,
    Network,
    available_memory_bytes,
    check_sizes,
    default_storage,
    network_memory_bytes,
    random_network,
    random_states,
)


class CriticalEstimate(NamedTuple):
    """Per network (M,): j_d_star, the smallest tested J_D where all states converged, and lower,
    the largest tested J_D below it where some state did not (or 0 if all converge at J_D = 0)."""

    j_d_star: torch.Tensor
    lower: torch.Tensor


def row_bound(network: Network) -> torch.Tensor:
    """max_i Σ_j |J_ij| per network (M,): above it every state is a fixed point. Summed in row
    chunks of at most ``_CHUNK_BYTES`` bytes of float64, so that no copy of a whole coupling matrix
    is made (at N = 100,000 a float64 copy would take 75 GiB)."""
    n = network.n
    rows = max(1, _CHUNK_BYTES // (8 * n))
    sums = []
    for m in range(network.n_networks):
        J = network.couplings[m]
        sums.append(torch.stack([J[r:r + rows].abs().sum(-1, dtype=torch.float64).max()
                                 for r in range(0, n, rows)]).max())
    return torch.stack(sums).cpu() / network.unit


def all_converge(
    network: Network, initial: torch.Tensor, j_d: torch.Tensor, *, dynamics: str, max_steps: int, seed: int,
    backend: str = "auto",
) -> torch.Tensor:
    """(M,) bool: every initial state of network m converges within max_steps at self-coupling j_d[m]."""
    net = network.with_self_coupling(j_d.to(torch.float64))
    result = run_dynamics(net, initial, dynamics=dynamics, max_steps=max_steps, backend=backend,
                          generator=torch.Generator().manual_seed(seed))
    return result.converged.all(-1).cpu()


def critical_self_coupling(
    network: Network,
    initial: torch.Tensor,
    *,
    dynamics: str = "sync",
    max_steps: int = 1000,
    tol: float = 0.01,
    seed: int = 0,
    progress: bool = False,
    backend: str = "auto",
) -> CriticalEstimate:
    """Bisection for J_D* of each network (thesis Fig. 3.1) to within `tol`, J_D >= 0.

    The upper end starts at 1 and doubles (capped at the row bound + tol) until every state
    converges; then the bracket [lower, j_d_star] is halved until it is narrower than tol.
    ``backend``: that of :func:`~mlcm_torch.physics.dynamics.run_dynamics`.
    """
    if not (math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    m = network.n_networks
    cap = row_bound(network) + tol

    def check(j_d: torch.Tensor) -> torch.Tensor:
        return all_converge(network, initial, j_d, dynamics=dynamics, max_steps=max_steps, seed=seed, backend=backend)

    lower = torch.zeros(m, dtype=torch.float64)
    upper = torch.minimum(torch.ones(m, dtype=torch.float64), cap)
    done_at_zero = check(lower)
    ok = check(upper) | done_at_zero
    while not bool(ok.all()):
        lower = torch.where(ok, lower, upper)
        upper = torch.where(ok, upper, torch.minimum(2 * upper, cap))
        ok = ok | check(upper)
    upper = torch.where(done_at_zero, 0.0, upper)
    steps = max(0, math.ceil(math.log2(float((upper - lower).max()) / tol))) if bool((upper > lower).any()) else 0
    for _ in tqdm(range(steps), disable=not progress, desc="bisection", leave=False):
        mid = (lower + upper) / 2
        ok = check(mid)
        upper = torch.where(ok, mid, upper)
        lower = torch.where(ok, lower, mid)
    return CriticalEstimate(upper, lower)


def networks_per_batch(n: int, n_networks: int, n_states: int, storage: str, device: str | torch.device) -> int:
    """How many networks of N neurons fit at once in (most of) the free memory of `device`."""
    free = 0.9 * available_memory_bytes(device)
    per = network_memory_bytes(n, 1, storage, n_states)
    return max(1, min(n_networks, int(free // per)))


def critical_vs_size(
    sizes: list[int],
    *,
    n_networks: int = 8,
    n_states: int = 16,
    kind: str = "binary",
    storage: str | None = None,
    dynamics: str = "sync",
    max_steps: int = 1000,
    tol: float = 0.01,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
    backend: str = "auto",
) -> dict:
    """J_D*(N) for each N (thesis Fig. 3.1): per-network estimates, their mean and the maximum.

    Networks are drawn in groups that fit in memory (one at a time for the largest N, e.g. int8
    couplings at N = 200,000 on an 80 GB GPU); each gets `n_states` random initial states.
    """
    sizes = check_sizes(sizes)
    generator = torch.Generator(device=device).manual_seed(seed)
    storage = default_storage(kind) if storage is None else storage
    rows = []
    for n in tqdm(sizes, disable=not progress, desc="J_D*(N)"):
        group = networks_per_batch(n, n_networks, n_states, storage, device)
        stars, lowers = [], []
        for start in range(0, n_networks, group):
            size = min(group, n_networks - start)
            net = random_network(n, 0.0, n_networks=size, kind=kind, storage=storage,
                                 generator=generator, device=device, batch=n_states)
            initial = random_states(size, n_states, n, generator=generator, device=device, dtype=net.state_dtype)
            est = critical_self_coupling(net, initial, dynamics=dynamics, max_steps=max_steps, tol=tol,
                                         seed=seed + start, progress=progress, backend=backend)
            stars += est.j_d_star.tolist()
            lowers += est.lower.tolist()
            del net, initial
        t = torch.tensor(stars, dtype=torch.float64)
        rows.append({
            "n": n,
            "j_d_star": float(t.max()),
            "j_d_star_mean": float(t.mean()),
            "j_d_star_std": float(t.std()) if t.numel() > 1 else 0.0,
            "per_network": stars,
            "per_network_lower": lowers,
        })
    return {"sizes": rows}
