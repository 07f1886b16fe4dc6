"""Run the dynamics of the same networks and initial states at many self-couplings J_D at once.

The K values of J_D are stacked along the network axis (K·M networks with a per-network J_D),
so one batched run covers the whole scan; the stack is split into chunks that fit a memory budget.
"""

from __future__ import annotations

import torch

from mlcm_torch.physics.dynamics import DynamicsResult, run_dynamics
from mlcm_torch.physics.networks import Network, check_states


def self_coupling_scan(
    network: Network,
    initial: torch.Tensor,
    j_d_values,
    *,
    dynamics: str = "sync",
    max_steps: int = 1000,
    seed: int = 0,
    budget_bytes: int = 1 << 30,
    progress: bool = False,
    backend: str = "auto",
) -> DynamicsResult:
    """Dynamics of `network` (its own J_D ignored) from `initial` at each J_D; results shaped (K, M, B[, N]).

    Asynchronous update orders come from a CPU generator seeded with `seed` for every chunk.
    ``backend``: that of :func:`~mlcm_torch.physics.dynamics.run_dynamics`.
    """
    j_d = torch.as_tensor(j_d_values, dtype=torch.float64).reshape(-1)
    if j_d.numel() == 0 or not torch.isfinite(j_d).all():
        raise ValueError("j_d_values must be a non-empty list of finite numbers")
    initial = check_states(network, initial)
    m = network.n_networks
    per_value = network.couplings.numel() * network.couplings.element_size()
    chunk = max(1, min(j_d.numel(), budget_bytes // max(1, per_value)))
    states, steps, converged = [], [], []
    for k0 in range(0, j_d.numel(), chunk):
        values = j_d[k0:k0 + chunk]
        k = values.numel()
        stacked = Network(network.couplings.repeat(k, 1, 1), values.repeat_interleave(m), network.unit,
                          network.keep_ties)
        result = run_dynamics(stacked, initial.repeat(k, 1, 1), dynamics=dynamics, max_steps=max_steps, backend=backend,
                              generator=torch.Generator().manual_seed(seed), progress=progress)
        states.append(result.states.view(k, m, *result.states.shape[1:]))
        steps.append(result.steps.view(k, m, -1))
        converged.append(result.converged.view(k, m, -1))
    return DynamicsResult(torch.cat(states), torch.cat(steps), torch.cat(converged))
