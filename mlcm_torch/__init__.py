"""mlcm_torch: the Multi-Layer Chain Model — binary attractor networks that learn by steering
their dynamics with local perceptron plasticity — in PyTorch and Lightning."""

from mlcm_torch.functional.dynamics import Relaxation
from mlcm_torch.module.mlcm import MLCM, MLCMFeatures

__all__ = ["MLCM", "MLCMFeatures", "Relaxation"]
__version__ = "0.1.0"
