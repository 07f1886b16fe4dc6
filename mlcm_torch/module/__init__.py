"""``nn.Module``s that own the couplings (as buffers) and call the engine: layers, couplings, the
composable :class:`Network`, and the thesis chain :class:`MLCM` as a preset of it."""

from mlcm_torch.module.couplings import Coupling, Dense, InputCoupling, LabelCoupling, OneToOne
from mlcm_torch.module.layers import RecurrentLayer
from mlcm_torch.module.mlcm import MLCM
from mlcm_torch.module.network import MLCMFeatures, Network
from mlcm_torch.module.options import Dynamics, Readout

__all__ = [
    "Coupling", "Dense", "Dynamics", "InputCoupling", "LabelCoupling", "MLCM", "MLCMFeatures", "Network",
    "OneToOne", "Readout", "RecurrentLayer",
]
