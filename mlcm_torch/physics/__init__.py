"""Statistical physics of random asymmetric networks (thesis Part I ch. 2-3, §5.1; arXiv 2510.11984).

Run the experiments with `python -m mlcm_torch.physics <experiment>`; see docs/physics.md.
"""

from mlcm_torch.physics.accessibility import accessibility, crossing
from mlcm_torch.physics.capacity import capacity, cover_probability, is_separable, separability_curve
from mlcm_torch.physics.convergence import convergence_times, fit_power_law
from mlcm_torch.physics.critical import CriticalEstimate, critical_self_coupling, critical_vs_size, row_bound
from mlcm_torch.physics.dynamics import (
    DynamicsResult,
    asynchronous_sweep,
    run_dynamics,
    synchronous_step,
    update_neuron,
)
from mlcm_torch.physics.fixed_points import (
    annealed_entropy,
    count_fixed_points,
    expected_entropy,
    fixed_point_counts,
    fixed_point_entropy,
)
from mlcm_torch.physics.hopfield import (
    energy,
    glauber_dynamics,
    hebbian_couplings,
    hopfield_network,
    retrieval,
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
from mlcm_torch.physics.reinforcement import phase_diagram
from mlcm_torch.physics.scan import self_coupling_scan

__all__ = [
    "CriticalEstimate",
    "DynamicsResult",
    "Network",
    "accessibility",
    "annealed_entropy",
    "asynchronous_sweep",
    "capacity",
    "check_memory",
    "convergence_times",
    "count_fixed_points",
    "cover_probability",
    "critical_self_coupling",
    "critical_vs_size",
    "crossing",
    "energy",
    "expected_entropy",
    "fit_power_law",
    "fixed_point_counts",
    "fixed_point_entropy",
    "glauber_dynamics",
    "hebbian_couplings",
    "hopfield_network",
    "is_fixed_point",
    "is_separable",
    "local_fields",
    "network_from_couplings",
    "network_memory_bytes",
    "phase_diagram",
    "random_couplings",
    "random_network",
    "random_states",
    "retrieval",
    "row_bound",
    "run_dynamics",
    "self_coupling_scan",
    "separability_curve",
    "sparse_reinforcement",
    "synchronous_step",
    "update_neuron",
]
