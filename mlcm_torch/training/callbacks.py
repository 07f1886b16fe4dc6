"""Callbacks of the configs: a checkpoint on Ctrl-C or an exception next to the run's other
checkpoints, a step checkpoint that micro-batches cannot skip, and a model summary that counts
the couplings (buffers, not parameters)."""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any, Optional

import lightning as L
from lightning.pytorch.callbacks import Checkpoint, ModelCheckpoint, ModelSummary
from lightning.pytorch.utilities import rank_zero_info
from lightning.pytorch.utilities.model_summary.model_summary import (
    _format_summary_table,
    get_formatted_model_size,
    get_human_readable_count,
)
from torch import nn

# Lightning prints its summary through this logger (it has a handler; a logger of this package would not).
_SUMMARY_LOG = logging.getLogger("lightning.pytorch.callbacks.model_summary")


def checkpoint_dir(trainer: L.Trainer) -> str:
    """Where the run's ModelCheckpoint writes: its ``dirpath`` if set, else
    ``<logger save_dir>/<name>/version_<n>/checkpoints`` (``<default_root_dir>/checkpoints``
    without a logger), as Lightning resolves it."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return str(callback.dirpath)
    if trainer.loggers:
        logger = trainer.loggers[0]
        save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
        version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
        return os.path.join(save_dir, str(logger.name), version, "checkpoints")
    return os.path.join(trainer.default_root_dir, "checkpoints")


class InterruptCheckpoint(Checkpoint):
    """A checkpoint on Ctrl-C or an exception during ``fit``, like Lightning's
    ``OnExceptionCheckpoint``, written next to the run's other checkpoints, with Ctrl-C stopping
    at a batch boundary.

    - ``dirpath`` defaults to the folder of the run's ``ModelCheckpoint``
      (``lightning_logs/<name>/version_<n>/checkpoints``), so the file sits beside ``last.ckpt``.
    - The first Ctrl-C (SIGINT) during ``fit`` lets the current batch finish, then stops the run
      as Lightning stops on Ctrl-C (exit code 1) and saves the checkpoint; the state is that of a
      whole number of batches, so ``--ckpt_path <dirpath>/on_exception.ckpt`` resumes exactly (the
      training loader of :mod:`mlcm_torch.data` continues the interrupted epoch). A second Ctrl-C
      stops at once (the checkpoint may then hold a half-applied update). Single-process runs only:
      under data parallelism Ctrl-C acts as Lightning's default.
    - Nothing is saved when training has not taken a step in this process (an error while loading
      data or setting up leaves no checkpoint and no folder), nor outside ``fit``.
    - As with Lightning's callback, the file is removed when a later run in the same folder ends
      normally.

    It is not an ``OnExceptionCheckpoint`` subclass on purpose: with one of those in the callbacks,
    Lightning turns every ``fit`` without ``ckpt_path`` into ``ckpt_path="last"`` (resuming the
    newest ``last``/on-exception checkpoint it finds, and warning on every run).

    Args:
        dirpath: folder of the checkpoint (default: the run's checkpoint folder).
        filename: file name without the ``.ckpt`` extension.
        defer_sigint: finish the current batch on the first Ctrl-C (else stop at once, as Lightning).
    """

    FILE_EXTENSION = ".ckpt"

    def __init__(self, dirpath: Optional[str] = None, filename: str = "on_exception", defer_sigint: bool = True) -> None:
        super().__init__()
        if not filename:
            raise ValueError("filename is empty; give a name without extension, e.g. 'on_exception'")
        self.dirpath = dirpath
        self.filename = filename
        self.defer_sigint = defer_sigint
        self._resolved: Optional[str] = None
        self._stepped = False
        self._stop_requested = False
        self._previous_handler: Any = None

    @property
    def ckpt_path(self) -> Optional[str]:  # type: ignore[override]
        """The checkpoint's path; None until training starts when ``dirpath`` is not given."""
        folder = self.dirpath or self._resolved
        return None if folder is None else os.path.join(folder, self.filename + self.FILE_EXTENSION)

    # ------------------------------------------------------------------ Ctrl-C at a batch boundary
    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        print("\nCtrl-C: stopping after the current batch and saving a checkpoint (Ctrl-C again stops at once)",
              file=sys.stderr, flush=True)

    def _install(self, trainer: L.Trainer) -> None:
        if not self.defer_sigint or trainer.world_size > 1 or self._previous_handler is not None:
            return
        try:
            self._previous_handler = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread
            self._previous_handler = None

    def _restore(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)
            self._previous_handler = None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._stepped, self._stop_requested = False, False
        self._resolved = checkpoint_dir(trainer)
        self._install(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._stepped = True
        if self._stop_requested:
            self._stop_requested = False
            raise KeyboardInterrupt

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._restore()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self._restore()
        if not self._stepped or trainer.state.fn != "fit":
            return
        self._resolved = self._resolved or checkpoint_dir(trainer)
        trainer.save_checkpoint(self.ckpt_path, weights_only=False)
        rank_zero_info(f"Saved the training state at global step {trainer.global_step} to {self.ckpt_path}; "
                       f"resume with the same command and --ckpt_path {self.ckpt_path}")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restore()
        if stage == "fit" and self.ckpt_path is not None:  # a fit that ended normally: a stale file goes
            trainer.strategy.remove_checkpoint(self.ckpt_path)


class StepCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``every_n_train_steps`` saves on the Lightning step in which
    ``global_step`` reaches or passes a multiple of N.

    With ``MLCMClassifier(micro_batch_size=...)`` ``global_step`` advances by several per
    Lightning step (one per micro-batch), and after an epoch with a short last batch it no longer
    lands on the multiples of N: Lightning's own test (``global_step % N == 0``) would then skip
    every later save. Everything else is ``ModelCheckpoint``'s.
    """

    _every_configured: Optional[int] = None  # N while on_train_batch_end lends the attribute out

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        self._step_at_start = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        every, step = self._every_n_train_steps, trainer.global_step
        passed = every >= 1 and step // every > getattr(self, "_step_at_start", step) // every
        if not passed or step % every == 0:
            return super().on_train_batch_end(trainer, *args, **kwargs)
        # ModelCheckpoint's own test (step % N == 0) passes for this step with N = step
        self._every_configured, self._every_n_train_steps = every, step
        try:
            super().on_train_batch_end(trainer, *args, **kwargs)
        finally:
            self._every_n_train_steps, self._every_configured = every, None

    @property
    def state_key(self) -> str:
        """ModelCheckpoint's key (it names the callback's state in a checkpoint), always from the
        configured N, also for a checkpoint written while ``on_train_batch_end`` lends it out."""
        if self._every_configured is None:
            return super().state_key
        lent, self._every_n_train_steps = self._every_n_train_steps, self._every_configured
        try:
            return super().state_key
        finally:
            self._every_n_train_steps = lent


def coupling_elements(module: nn.Module) -> tuple[int, int]:
    """(elements, bytes) of the floating-point persistent buffers of ``module`` and its children:
    the couplings of a :class:`~mlcm_torch.Network` (J, W, W_in, W_back), which local rules or
    nothing change, so they are buffers that a parameter count leaves out."""
    elements = size = 0
    for child in module.modules():
        for name, buffer in child._buffers.items():
            if buffer is None or name in child._non_persistent_buffers_set or not buffer.is_floating_point():
                continue
            elements += buffer.numel()
            size += buffer.numel() * buffer.element_size()
    return elements, size


class CouplingSummary(ModelSummary):
    """Lightning's model summary with a ``Couplings`` column and total: the entries of the coupling
    buffers (J, W, W_in, W_back), which parameter counts miss (an MLCM of 1,600 neurons on MNIST
    has 16 K parameters, its readout, and 3.8 M couplings).

    Args:
        max_depth: depth of the module rows (0: no summary).
        **summarize_kwargs: passed to Lightning's summary.
    """

    def table(self, trainer: L.Trainer, pl_module: L.LightningModule) -> str:
        """The summary table with the couplings' column and totals."""
        summary = self._summary(trainer, pl_module)
        data = summary._get_summary_data()
        modules = dict(pl_module.named_modules())
        names = dict(data)["Name"]
        counts = [coupling_elements(modules[name])[0] if name in modules else 0 for name in names]
        data.insert(4, ("Couplings", [get_human_readable_count(count) for count in counts]))
        flops = summary.total_flops if hasattr(summary, "total_flops") else 0
        table = _format_summary_table(summary.total_parameters, summary.trainable_parameters, summary.model_size,
                                      summary.total_training_modes, flops, *data)
        elements, size = coupling_elements(pl_module)
        return (f"{table}\n{get_human_readable_count(elements):<10}Couplings (buffers learned by local rules or "
                f"fixed; not in the params above)\n{get_formatted_model_size(size / 1e6):<10}Total couplings size (MB)")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._max_depth:
            return
        table = self.table(trainer, pl_module)
        if trainer.is_global_zero:
            _SUMMARY_LOG.info("\n" + table)


__all__ = ["CouplingSummary", "InterruptCheckpoint", "checkpoint_dir", "coupling_elements"]
