"""``lightning predict`` output: one ``predictions.pt`` file per run."""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info


class PredictionWriter(BasePredictionWriter):
    """Writes what ``predict_step`` returns for the whole predict set to ``<output_dir>/predictions.pt``.

    The file holds a dict of tensors, one row per sample in the loader's order (the test set for
    the data modules of :mod:`mlcm_torch.data`); read it with ``torch.load(path)``:

    - ``prediction``: the predicted class index, int64 (N,); for target vectors (hetero-association)
      the predicted ±1 signs, int8 (N, C).
    - ``logits``: the readout's logits, float32 (N, C).
    - ``target``: the labels (or target vectors) of the batches, when the loader gives them.
    - ``features`` (with ``features: true``; MLCM models only): the fixed point of the last layer
      reached without the label, the readout's input, int8 (N, N_L) in the network's state
      encoding (±1 or {0, 1}).

    Under data parallelism each process writes ``predictions-rank<r>.pt`` with an ``index``
    entry (the samples' positions in the loader).

    Args:
        output_dir: folder of the file; default: the run's log folder
            (``lightning_logs/<name>/version_<n>``, where ``config.yaml`` is), or
            ``default_root_dir`` without a logger.
        filename: file name.
        features: also store the last layer's fixed-point states.
    """

    def __init__(self, output_dir: Optional[str] = None, filename: str = "predictions.pt",
                 features: bool = False) -> None:
        super().__init__(write_interval="epoch")
        if not filename:
            raise ValueError("filename is empty; give a file name such as 'predictions.pt'")
        self.output_dir = output_dir
        self.filename = filename
        self.features = bool(features)
        self.path: Optional[str] = None
        """Where the last run wrote."""

    def _folder(self, trainer: L.Trainer) -> str:
        if self.output_dir is not None:
            return str(self.output_dir)
        return str(trainer.log_dir or trainer.default_root_dir)

    def _file(self, trainer: L.Trainer) -> str:
        name = self.filename
        if trainer.world_size > 1:
            stem, ext = os.path.splitext(name)
            name = f"{stem}-rank{trainer.global_rank}{ext}"
        return os.path.join(self._folder(trainer), name)

    def collate(self, outputs: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Concatenate the per-batch dicts of ``predict_step`` (the wanted keys, on the CPU)."""
        if not outputs:
            return {}
        keys = [key for key in outputs[0] if key != "features" or self.features]
        if self.features and "features" not in outputs[0]:
            raise ValueError("features=True, but the model's predict_step returns no 'features' (only "
                             "MLCMClassifier gives the last layer's fixed points)")
        return {key: torch.cat([output[key].detach().cpu() for output in outputs]) for key in keys}

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Sequence[Any],
                           batch_indices: Sequence[Any]) -> None:
        # One list per predict loader; the data modules have one.
        if predictions and isinstance(predictions[0], list):
            predictions, batch_indices = predictions[0], batch_indices[0] if batch_indices else []
        for output in predictions:
            if not isinstance(output, dict):
                raise TypeError(f"PredictionWriter needs predict_step to return a dict of tensors, got "
                                f"{type(output).__name__}")
        record = self.collate(predictions)
        if trainer.world_size > 1 and batch_indices:
            record["index"] = torch.tensor([i for batch in batch_indices for i in batch], dtype=torch.int64)
        path = self._file(trainer)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        torch.save(record, path)
        self.path = path
        shapes = ", ".join(f"{key} {tuple(value.shape)}" for key, value in record.items())
        rank_zero_info(f"Wrote the predictions to {path}: {shapes}")
