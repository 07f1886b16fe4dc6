"""Pure tensor functions: fields (thesis eq. 6.1), sweeps and relaxation (§6.2.1), plasticity
(eq. 6.3 / Alg. 3). No state, no modules."""

from mlcm_torch.functional.dynamics import SCHEDULES, Relaxation, relax, sweep
from mlcm_torch.functional.fields import (
    Couplings,
    Drive,
    activate,
    fields,
    layer_fields,
    zero_one_thresholds,
)
from mlcm_torch.functional.plasticity import (
    LocalDelta,
    decay_and_add,
    margins,
    perceptron_delta,
    readout_perceptron_delta,
)

__all__ = [
    "SCHEDULES", "Couplings", "Drive", "LocalDelta", "Relaxation", "activate", "decay_and_add",
    "fields", "layer_fields", "margins", "perceptron_delta", "readout_perceptron_delta", "relax",
    "sweep", "zero_one_thresholds",
]
