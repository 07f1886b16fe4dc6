"""The one dynamics engine, as pure tensor functions: the network description (graph.py), local
fields (fields.py: thesis eq. 6.1, 7.1, 3.1), sweeps and the relaxation loop (dynamics.py:
§6.2.1), and the learning rules (plasticity.py: eq. 6.3 / Alg. 3). No state, no modules."""

from mlcm_torch.functional.dynamics import Relaxation, relax, sequential_updates, sweep
from mlcm_torch.functional.fields import (
    activate,
    fields,
    is_fixed_point,
    layer_fields,
    prepare_phase,
    zero_one_thresholds,
)
from mlcm_torch.functional.graph import ENCODINGS, SCHEDULES, TIES, Coupling, Graph, Layer, Phase
from mlcm_torch.functional.plasticity import (
    Outer,
    PerceptronDeltas,
    apply_update,
    decay_and_add,
    margins,
    perceptron_rule,
    readout_perceptron_delta,
    readout_perceptron_rule,
)

__all__ = [
    "ENCODINGS", "SCHEDULES", "TIES", "Coupling", "Graph", "Layer", "Outer", "PerceptronDeltas", "Phase", "Relaxation",
    "activate", "apply_update", "decay_and_add", "fields", "is_fixed_point", "layer_fields", "margins", "perceptron_rule",
    "prepare_phase", "readout_perceptron_delta", "readout_perceptron_rule", "relax", "sequential_updates", "sweep", "zero_one_thresholds",
]
