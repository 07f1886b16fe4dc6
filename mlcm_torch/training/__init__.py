"""Lightning training: the MLCM classifier and the baselines behind one CLI, and the callbacks of
the configs (coupling summary, checkpoint on Ctrl-C, step checkpoint, prediction file)."""

from mlcm_torch.training.base import ClassifierModule
from mlcm_torch.training.baselines import MLPBaseline, PerceptronBaseline
from mlcm_torch.training.callbacks import CouplingSummary, InterruptCheckpoint, StepCheckpoint
from mlcm_torch.training.classifier import MLCMClassifier
from mlcm_torch.training.predictions import PredictionWriter
from mlcm_torch.training.refit import ReadoutRefit

__all__ = ["ClassifierModule", "CouplingSummary", "InterruptCheckpoint", "MLCMClassifier", "MLPBaseline",
           "PerceptronBaseline", "PredictionWriter", "ReadoutRefit", "StepCheckpoint"]
