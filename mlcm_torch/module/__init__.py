"""``nn.Module`` wrappers that own the couplings (as buffers) and call the pure functions."""

from mlcm_torch.module.mlcm import MLCM, MLCMFeatures

__all__ = ["MLCM", "MLCMFeatures"]
