"""mlcm_torch: the Multi-Layer Chain Model — binary attractor networks that learn by steering
their dynamics with local perceptron plasticity — in PyTorch and Lightning."""

from mlcm_torch.functional.dynamics import Relaxation
from mlcm_torch.module import (
    MLCM,
    Dense,
    Dynamics,
    InputCoupling,
    LabelCoupling,
    MLCMFeatures,
    Network,
    OneToOne,
    Readout,
    RecurrentLayer,
)

_LIGHTNING = ("MLCMClassifier", "PerceptronBaseline", "MLPBaseline")

__all__ = [
    "MLCM", "Dense", "Dynamics", "InputCoupling", "LabelCoupling", "MLCMFeatures", "Network", "OneToOne",
    "Readout", "RecurrentLayer", "Relaxation", *_LIGHTNING,
]
__version__ = "0.8.0"


def __getattr__(name: str):
    """The Lightning modules load lazily, so ``import mlcm_torch`` does not import Lightning."""
    if name in _LIGHTNING:
        from mlcm_torch import training

        return getattr(training, name)
    raise AttributeError(f"module 'mlcm_torch' has no attribute {name!r}")
