"""``MLCMClassifier``: the MLCM trained by steering its dynamics, as a LightningModule."""

from __future__ import annotations

import inspect
from typing import Sequence

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from mlcm_torch.functional.dynamics import Relaxation
from mlcm_torch.module.mlcm import MLCM
from mlcm_torch.training.base import ClassifierModule

NETWORK_ARGUMENTS = tuple(inspect.signature(MLCM).parameters)


class MLCMClassifier(ClassifierModule):
    """Trains an :class:`~mlcm_torch.MLCM` with manual optimization.

    ``training_step``: relax with the label (convergence step) → local perceptron update of
    the couplings (thesis eq. 6.3, batched einsum; deltas averaged across processes under
    data parallelism) → readout step with the module's one torch optimizer (cross-entropy by
    autograd on the detached final states; for ``readout="perceptron"`` the readout learns
    in the local update and the optimizer step only advances ``global_step``).
    ``validation_step`` / ``test_step`` / ``predict_step``: inference relaxation, no label.

    The network arguments are those of :class:`~mlcm_torch.MLCM` (same names, same
    defaults). Training options:

    Args:
        readout_optimizer: ``"sgd"`` or ``"adam"`` for the cross-entropy readout (lr
            ``readout_lr``).
        readout_momentum: SGD momentum.
        histogram_every_n_steps: log coupling and field histograms to TensorBoard every n
            optimizer steps (0: never; ignored with other loggers).
        check_finite: after every update, raise if a coupling is NaN or infinite.
    """

    def __init__(
        self,
        in_features: int = 784,
        hidden: int = 1000,
        num_layers: int = 5,
        num_classes: int = 10,
        j_d: float = 0.1,
        lambda_in: float = 6.0,
        lambda_left: float | Sequence[float] = 4.0,
        lambda_right: float | Sequence[float] = 2.0,
        lambda_out: float = 12.0,
        lr: float = 0.01,
        weight_decay: float = 0.0,
        robustness: float = 0.0,
        max_sweeps: int = 20,
        schedule: str = "layer_sequential_sync",
        state_encoding: str = "pm1",
        seed: int | None = None,
        input_coupling: str = "identity",
        lr_in: float = 0.0,
        protocol: str = "thesis",
        free_sweeps: int | None = None,
        warmup_sweeps: int = 0,
        inference_sweeps: int | None = None,
        init_state: str = "zeros",
        sparsity_threshold: float = 0.0,
        k_winners: int | None = None,
        lr_scaling: str = "thesis",
        readout: str = "cross_entropy",
        readout_lr: float = 0.1,
        readout_margin: float = 0.0,
        readout_targets: tuple[float, float] = (1.0, -1.0),
        check_inputs: bool = True,
        readout_optimizer: str = "sgd",
        readout_momentum: float = 0.0,
        histogram_every_n_steps: int = 0,
        check_finite: bool = False,
    ) -> None:
        super().__init__(in_features, num_classes)
        if readout_optimizer not in ("sgd", "adam"):
            raise ValueError(f"readout_optimizer={readout_optimizer!r}; expected 'sgd' or 'adam'")
        if histogram_every_n_steps < 0:
            raise ValueError(f"histogram_every_n_steps={histogram_every_n_steps} must be >= 0")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.network = MLCM(**{name: self.hparams[name] for name in NETWORK_ARGUMENTS})
        self.register_buffer("_epoch_not_converged", torch.zeros(2), persistent=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params, lr = self.network.readout.parameters(), self.network.readout_lr
        if self.hparams.readout_optimizer == "adam":
            return torch.optim.Adam(params, lr=lr)
        return torch.optim.SGD(params, lr=lr, momentum=self.hparams.readout_momentum)

    def logits(self, x: Tensor) -> Tensor:
        return self.network(x)

    def _mean_over_processes(self, delta: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(delta, reduce_op="mean")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        relaxation = self.network.relax(x, y)
        features = relaxation.states[:, -1]
        perceptron_readout = self.network.readout_rule == "perceptron"
        with torch.set_grad_enabled(not perceptron_readout):
            logits = self.network.readout(features)
        stats = self.network.local_update(relaxation, x, y, reduce=self._mean_over_processes)
        if self.hparams.check_finite:
            self._check_finite()
        optimizer = self.optimizers()
        optimizer.zero_grad()
        loss = self.log_classification("train", logits, y)
        if not perceptron_readout:
            self.manual_backward(loss)
        optimizer.step()
        self._log_dynamics("train", relaxation, y.shape[0])
        for layer, value in enumerate(stats["unstable_fraction"]):
            self.log(f"train/unstable_fraction/layer_{layer}", value, batch_size=y.shape[0])
        if "readout_unstable_fraction" in stats:
            self.log("train/readout_unstable_fraction", stats["readout_unstable_fraction"],
                     batch_size=y.shape[0])
        if self.trainer.fast_dev_run or self.trainer._logger_connector.should_update_logs:
            self._log_coupling_norms()
        self._epoch_not_converged += torch.stack(
            [(~relaxation.converged).sum(), torch.tensor(y.shape[0], device=y.device)]
        )
        every = self.hparams.histogram_every_n_steps
        if every and self.global_step % every == 0:
            self._log_histograms(relaxation, x, y)
        return loss

    def evaluation_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        relaxation = self.network.relax(x)
        self._log_dynamics(stage, relaxation, y.shape[0])
        return self.log_classification(stage, self.network.readout(relaxation.states[:, -1]), y)

    def on_train_epoch_start(self) -> None:
        self._epoch_not_converged.zero_()

    def on_train_epoch_end(self) -> None:
        missed, seen = self._epoch_not_converged.tolist()
        if missed:
            rank_zero_warn(
                f"epoch {self.current_epoch}: {int(missed)} of {int(seen)} training samples "
                f"({missed / seen:.1%}) stopped at max_sweeps={self.network.max_sweeps} without "
                f"reaching a fixed point, and the local update used those states; raise "
                f"max_sweeps (or free_sweeps) or j_d if this persists"
            )

    def _log_dynamics(self, stage: str, relaxation: Relaxation, batch: int) -> None:
        self.log(f"{stage}/sweeps", relaxation.sweeps.float().mean(), batch_size=batch)
        self.log(f"{stage}/not_converged", relaxation.not_converged_fraction(), batch_size=batch)
        activity = relaxation.activity(self.network.state_encoding)
        for layer, value in enumerate(activity):
            self.log(f"{stage}/activity/layer_{layer}", value, batch_size=batch)

    def _log_coupling_norms(self) -> None:
        """Coupling norms; called only on steps the logger writes (each is a pass over J),
        as Lightning's own LearningRateMonitor decides."""
        net = self.network
        for layer, norm in enumerate(torch.linalg.matrix_norm(net.J)):
            self.log(f"couplings/J_norm/layer_{layer}", norm)
        if net.W_in is not None:
            self.log("couplings/W_in_norm", net.W_in.norm())
        self.log("couplings/readout_norm", net.readout.weight.detach().norm())

    def _log_histograms(self, relaxation: Relaxation, x: Tensor, y: Tensor) -> None:
        if not isinstance(self.logger, TensorBoardLogger):
            return
        writer, step = self.logger.experiment, self.global_step
        h = self.network.fields(relaxation.states, x, y)
        for layer in range(self.network.num_layers):
            writer.add_histogram(f"couplings/J/layer_{layer}", self.network.J[layer], step)
            writer.add_histogram(f"fields/layer_{layer}", h[:, layer], step)

    def _check_finite(self) -> None:
        for name, tensor in (*self.network.named_buffers(), *self.network.named_parameters()):
            if not bool(torch.isfinite(tensor).all()):
                raise FloatingPointError(
                    f"non-finite values in {name} after the update at global step "
                    f"{self.global_step}"
                )
