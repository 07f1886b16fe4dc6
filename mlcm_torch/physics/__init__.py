"""Statistical physics of random asymmetric networks (thesis Part I ch. 2-3, §5.1; arXiv 2510.11984)."""

from mlcm_torch.physics.dynamics import DynamicsResult, asynchronous_sweep, run_dynamics, synchronous_step, update_neuron
from mlcm_torch.physics.fixed_points import (
    annealed_entropy,
    count_fixed_points,
    expected_entropy,
    fixed_point_counts,
    fixed_point_entropy,
)
from mlcm_torch.physics.networks import (
    Network,
    check_memory,
    is_fixed_point,
    local_fields,
    network_from_couplings,
    network_memory_bytes,
    random_couplings,
    random_network,
    random_states,
    sparse_reinforcement,
)

__all__ = [
    "DynamicsResult",
    "Network",
    "annealed_entropy",
    "asynchronous_sweep",
    "check_memory",
    "count_fixed_points",
    "expected_entropy",
    "fixed_point_counts",
    "fixed_point_entropy",
    "is_fixed_point",
    "local_fields",
    "network_from_couplings",
    "network_memory_bytes",
    "random_couplings",
    "random_network",
    "random_states",
    "run_dynamics",
    "sparse_reinforcement",
    "synchronous_step",
    "update_neuron",
]
