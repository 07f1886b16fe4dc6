"""What every classifier of the CLI shares: metrics, one evaluation step behind
validation/test, prediction, and the input-width check at setup."""

from __future__ import annotations

from abc import ABC, abstractmethod

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

STAGES = ("train", "val", "test")


class ClassifierModule(L.LightningModule, ABC):
    """Base LightningModule: subclasses implement :meth:`logits` and ``training_step``.

    Logs ``{stage}/loss`` and ``{stage}/acc`` for train, val and test. Class labels (B,):
    cross-entropy and multiclass accuracy. Target vectors (B, C) (hetero-association): binary
    cross-entropy of the logits against y > 0, and the fraction of samples whose every output
    sign matches its target (``acc``).
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.in_features, self.num_classes = in_features, num_classes
        self.accuracy = torch.nn.ModuleDict(
            {f"{stage}_acc": MulticlassAccuracy(num_classes, average="micro") for stage in STAGES}
        )
        self.exact_match = torch.nn.ModuleDict({f"{stage}_acc": MeanMetric() for stage in STAGES})

    @abstractmethod
    def logits(self, x: Tensor) -> Tensor:
        """Inference logits (B, C)."""

    def forward(self, x: Tensor) -> Tensor:
        return self.logits(x)

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        width = getattr(datamodule, "in_features", None)
        if width is not None and width != self.in_features:
            raise ValueError(
                f"the dataset gives inputs of width {width} but the model has "
                f"in_features={self.in_features}; set model in_features to {width}"
            )
        classes = getattr(datamodule, "num_classes", None)
        if classes is not None and classes != self.num_classes:
            raise ValueError(
                f"the dataset has {classes} classes but the model has "
                f"num_classes={self.num_classes}"
            )

    @staticmethod
    def loss(logits: Tensor, y: Tensor) -> Tensor:
        """Cross-entropy for class labels; binary cross-entropy against y > 0 for target vectors."""
        if y.dim() == 2:
            return F.binary_cross_entropy_with_logits(logits, (y > 0).to(logits.dtype))
        return F.cross_entropy(logits, y)

    @staticmethod
    def correct(logits: Tensor, y: Tensor) -> Tensor:
        """Per sample (B,) 1.0 where the prediction is right: the argmax class for labels, every
        output sign for target vectors."""
        if y.dim() == 2:
            return ((logits >= 0) == (y > 0)).all(dim=-1).float()
        return (logits.argmax(dim=-1) == y).float()

    def log_classification(self, stage: str, logits: Tensor, y: Tensor) -> Tensor:
        """Log loss and accuracy of ``logits`` for ``stage``; returns the loss."""
        loss = self.loss(logits, y)
        if y.dim() == 2:
            accuracy = self.exact_match[f"{stage}_acc"]
            accuracy(self.correct(logits, y))
        else:
            accuracy = self.accuracy[f"{stage}_acc"]
            accuracy(logits, y)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True,
                 batch_size=y.shape[0])
        self.log(f"{stage}/acc", accuracy, on_step=on_step, on_epoch=True,
                 prog_bar=True, batch_size=y.shape[0])
        return loss

    def evaluation_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        return self.log_classification(stage, self.logits(x), y)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.evaluation_step(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        return self.evaluation_step(batch, "test")

    @staticmethod
    def split_batch(batch) -> tuple[Tensor, Tensor | None]:
        """``(x, y)`` of a batch given as ``x`` or ``(x, y)`` (``y`` is None without labels)."""
        if isinstance(batch, (tuple, list)):
            return batch[0], (batch[1] if len(batch) > 1 else None)
        return batch, None

    @staticmethod
    def prediction(logits: Tensor, y: Tensor | None = None) -> Tensor:
        """The predicted class indices (B,) int64; for target vectors y (B, C), the predicted ±1
        signs (B, C) int8."""
        if y is not None and y.dim() == 2:
            return torch.where(logits >= 0, 1, -1).to(torch.int8)
        return logits.argmax(dim=-1)

    def prediction_record(self, logits: Tensor, y: Tensor | None) -> dict[str, Tensor]:
        """What ``predict_step`` returns for :class:`~mlcm_torch.training.PredictionWriter`."""
        record = {"prediction": self.prediction(logits, y), "logits": logits.float()}
        if y is not None:
            record["target"] = y
        return record

    def predict_step(self, batch, batch_idx: int) -> dict[str, Tensor]:
        """A dict for a batch (``x`` or ``(x, y)``): ``prediction`` (class indices (B,), or ±1 signs
        (B, C) for target vectors), ``logits`` (B, C) and, when the batch has labels, ``target``."""
        x, y = self.split_batch(batch)
        return self.prediction_record(self.logits(x), y)
