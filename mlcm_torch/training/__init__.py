"""Lightning training: the MLCM classifier and the baselines behind one CLI."""

from mlcm_torch.training.base import ClassifierModule
from mlcm_torch.training.baselines import MLPBaseline, PerceptronBaseline
from mlcm_torch.training.classifier import MLCMClassifier

__all__ = ["ClassifierModule", "MLCMClassifier", "MLPBaseline", "PerceptronBaseline"]
