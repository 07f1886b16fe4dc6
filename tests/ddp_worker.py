"""Run by tests/test_training.py in a subprocess: fit a small MLCM on 2 CPU processes
(strategy="ddp", gloo) and save every rank's couplings to <out>/rank<r>.pt."""

import sys
from pathlib import Path

import lightning as L
import torch

from mlcm_torch import MLCM
from mlcm_torch.data import SyntheticDataModule
from mlcm_torch.training import MLCMClassifier

if __name__ == "__main__":
    out, readout = Path(sys.argv[1]), sys.argv[2]
    L.seed_everything(0)
    model = MLCMClassifier(MLCM(
        32, 48, 2, 4, j_d=0.5, lambda_in=2.0, lambda_left=1.0, lambda_right=0.5, lambda_out=2.0,
        lr=0.05, robustness=0.5, max_sweeps=15, input_coupling="dense", lr_in=0.02, seed=3,
        readout=readout, readout_margin=1.0 if readout == "perceptron" else 0.0,
    ))
    data = SyntheticDataModule(num_classes=4, in_features=32, flip_prob=0.2, train_size=256,
                               val_size=0, test_size=64, batch_size=16)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=8,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, data)
    state = {k: v.detach().clone() for k, v in model.network.state_dict().items() if torch.is_tensor(v)}
    state["global_step"] = torch.tensor(trainer.global_step)
    torch.save(state, out / f"rank{trainer.global_rank}.pt")
