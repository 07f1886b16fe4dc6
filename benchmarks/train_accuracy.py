"""Train a config for E epochs and record train, validation and test accuracy per epoch as JSON.

    MLCM_DATA_DIR=data python benchmarks/train_accuracy.py \
        --config lightning_configs/mnist.yaml --epochs 5 --seed 1 \
        --out benchmarks/results/accuracy/mnist_seed1.json

Extra arguments after ``--`` go to the CLI unchanged, e.g. ``-- --model.init_args.lr=0.01``.
``--seed K`` sets ``--seed_everything=K`` (model initialisation) and
``--data.init_args.shuffle_seed=K`` (training order).

By default ``--val-size 5000`` training images are held out for validation: settings are chosen
on the validation accuracy and the test accuracy is reported. ``--val-size 0`` trains on the
whole official training set, as the published figures do. After every epoch the script
evaluates the validation and test sets itself (Lightning's own validation loop, the config's
logger, callbacks and checkpoints are switched off: nothing here monitors them) and rewrites
the JSON, which holds: the command, the config path, the resolved config and its SHA-256, the
overrides, the seed, the git commit, the machine, the torch version and, per epoch, the
epoch's running training accuracy, the validation accuracy (null without a split), the test
accuracy and the wall-clock seconds since the start; ``finished`` turns true after the last
epoch. With the model's ``readout_refit`` the last epoch's accuracies are those of the refit
readout, its ``before_refit`` those of the readout trained with the network, and
``readout_refit`` holds the refit's report (samples, losses, seconds). Re-running the recorded command on the same machine gives the same accuracies.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import lightning as L
import torch
import yaml

from mlcm_torch.cli import cli
from mlcm_torch.experiments.run import cpu_name

ROOT = Path(__file__).resolve().parents[1]
RECORD_FORMAT = 2
"""Version of the JSON layout (1: test accuracy only, machine as one string)."""


def machine() -> dict:
    """Where the run ran: CPU model, cores, torch threads, GPU name (None without one), platform."""
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": cpu_name(), "cpus": os.cpu_count(), "threads": torch.get_num_threads(), "gpu": gpu,
            "platform": platform.platform(), "python": platform.python_version()}


def git_state() -> dict:
    """The checkout's commit and whether the package, configs or benchmarks differ from it (None
    outside a git checkout)."""
    def git(*args: str) -> Optional[str]:
        try:
            out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "-uno", "--", "mlcm_torch", "lightning_configs", "benchmarks")
    return {"git_commit": commit, "git_modified": None if commit is None or changes is None else bool(changes)}


@torch.no_grad()
def accuracy(module: L.LightningModule, loader) -> Optional[float]:
    """Label-free accuracy of ``module`` over ``loader`` (None for an empty loader)."""
    correct = total = 0
    for x, y in loader:
        x, y = x.to(module.device), y.to(module.device)
        correct += int(module.correct(module.logits(x), y).sum())
        total += y.shape[0]
    return correct / total if total else None


def train_epoch_accuracy(trainer: L.Trainer, module: L.LightningModule) -> Optional[float]:
    """The epoch's running training accuracy: the module's own sums where it keeps them
    (``MLCMClassifier`` logs them as ``train/acc_epoch`` only after the callbacks'
    ``on_train_epoch_end``), else the logged ``train/acc_epoch`` (the baselines)."""
    value = getattr(module, "train_epoch_accuracy", None)
    if value is None:
        value = trainer.callback_metrics.get("train/acc_epoch")
    return None if value is None else round(float(value), 6)


class AccuracyRecorder(L.Callback):
    """After every training epoch, record the training accuracy, evaluate the validation and
    test sets, and rewrite ``out``; mark the record finished when training ends."""

    def __init__(self, out: Path, record: dict) -> None:
        self.out, self.record = out, record
        self.start = time.perf_counter()

    def _write(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.record, indent=1))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        datamodule.setup("test")
        entry = {
            "epoch": trainer.current_epoch + 1,
            "train_acc": train_epoch_accuracy(trainer, pl_module),
            "val_acc": accuracy(pl_module, datamodule.val_dataloader()),
            "test_acc": accuracy(pl_module, datamodule.test_dataloader()),
            "seconds": round(time.perf_counter() - self.start, 1),
        }
        report = getattr(pl_module, "readout_refit_report", None)
        if report is not None and "readout_refit" not in self.record:
            entry["before_refit"] = self._accuracy_with_readout(pl_module, report["weight_before"])
            self.record["readout_refit"] = {key: value for key, value in report.items() if key != "weight_before"}
        self.record["epochs"].append(entry)
        self._write()
        print(json.dumps(self.record["epochs"][-1]), flush=True)

    @staticmethod
    def _accuracy_with_readout(pl_module: L.LightningModule, weight: torch.Tensor) -> dict:
        """Validation and test accuracy with ``weight`` as W_out (the readout before its refit)."""
        datamodule = pl_module.trainer.datamodule
        readout = pl_module.network.readout.weight
        refit = readout.detach().clone()
        with torch.no_grad():
            readout.copy_(weight)
        try:
            return {"val_acc": accuracy(pl_module, datamodule.val_dataloader()),
                    "test_acc": accuracy(pl_module, datamodule.test_dataloader())}
        finally:
            with torch.no_grad():
                readout.copy_(refit)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.record["finished"] = len(self.record["epochs"]) == self.record["max_epochs"]
        self._write()


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--val-size", type=int, default=5000,
                        help="training images held out for validation (default 5000; 0: train on all)")
    parser.add_argument("--seed", type=int, default=None,
                        help="sets --seed_everything and --data.init_args.shuffle_seed (default: the config's)")
    parser.add_argument("overrides", nargs="*", help="extra CLI arguments, after --")
    return parser.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> dict:
    """Run the recorder on ``argv`` (default: the command line); returns the record."""
    args = parse_args(argv)
    seeding = [] if args.seed is None else [f"--seed_everything={args.seed}",
                                            f"--data.init_args.shuffle_seed={args.seed}"]
    built = cli(
        ["--config", args.config, f"--trainer.max_epochs={args.epochs}",
         "--trainer.enable_progress_bar=false", "--trainer.logger=false",
         "--trainer.callbacks=null", "--trainer.enable_checkpointing=false",
         "--trainer.limit_val_batches=0", f"--data.init_args.val_size={args.val_size}",
         *seeding, *args.overrides],
        run=False,
    )
    resolved = yaml.safe_load(built.parser.dump(built.config, skip_none=False))
    record = {
        "format": RECORD_FORMAT,
        "command": ["python", "benchmarks/train_accuracy.py", *(sys.argv[1:] if argv is None else argv)],
        "config": args.config,
        "config_sha256": hashlib.sha256(json.dumps(resolved, sort_keys=True).encode()).hexdigest(),
        "resolved_config": resolved,
        "overrides": args.overrides,
        "seed": resolved.get("seed_everything"),
        "shuffle_seed": resolved["data"]["init_args"].get("shuffle_seed"),
        "val_size": args.val_size,
        "max_epochs": args.epochs,
        **git_state(),
        "machine": machine(),
        "torch": torch.__version__,
        "finished": False,
        "epochs": [],
    }
    built.trainer.callbacks.append(AccuracyRecorder(args.out, record))
    built.trainer.fit(built.model, built.datamodule)
    return record


if __name__ == "__main__":
    main()
