"""``MLCMClassifier``: the MLCM trained by steering its dynamics, as a LightningModule."""

from __future__ import annotations

from typing import Literal

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from mlcm_torch.functional.dynamics import Relaxation
from mlcm_torch.module import checks
from mlcm_torch.module.config import from_config
from mlcm_torch.module.network import Network
from mlcm_torch.training.base import ClassifierModule


class MLCMClassifier(ClassifierModule):
    """Trains a :class:`~mlcm_torch.Network` (e.g. the :class:`~mlcm_torch.MLCM` chain) with
    manual optimization.

    ``training_step``: relax with the label (convergence step) → local perceptron update of
    the couplings (thesis eq. 6.3, one GEMM per learnable tensor; deltas averaged across
    processes under data parallelism) → readout step with the module's one torch optimizer
    (cross-entropy by autograd on the detached final states; for the perceptron readout the
    readout learns in the local update and the optimizer step only advances ``global_step``).
    ``validation_step`` / ``test_step`` / ``predict_step``: inference relaxation, no label.

    The network is injected (Lightning's pattern): in a config, ``network: {class_path: ...,
    init_args: ...}``. Its constructor call is stored in the hyperparameters, so
    ``load_from_checkpoint`` rebuilds it.

    Args:
        network: the network to train (a :class:`~mlcm_torch.Network`, e.g. ``MLCM``).
        readout_optimizer: optimizer of the cross-entropy readout (lr: the network's
            ``readout_lr``).
        readout_momentum: SGD momentum.
        histogram_every_n_steps: log coupling and field histograms to TensorBoard every n
            optimizer steps (0: never; ignored with other loggers).
        check_finite: after every update, raise if a coupling is NaN or infinite.
    """

    def __init__(
        self,
        network: Network,
        readout_optimizer: Literal["sgd", "adam"] = "sgd",
        readout_momentum: float = 0.0,
        histogram_every_n_steps: int = 0,
        check_finite: bool = False,
    ) -> None:
        if isinstance(network, dict):
            network = from_config(network, Network)
        if not isinstance(network, Network):
            raise ValueError(f"network must be a mlcm_torch.Network, got {type(network).__name__}")
        super().__init__(network.in_features, network.num_classes)
        checks.one_of("readout_optimizer", readout_optimizer, ("sgd", "adam"))
        checks.finite_at_least("readout_momentum", readout_momentum, 0.0)
        checks.integer_at_least("histogram_every_n_steps", histogram_every_n_steps, 0)
        self.save_hyperparameters(ignore=["network"])
        self.hparams["network"] = network.config()
        self.automatic_optimization = False
        self.network = network
        self.register_buffer("_epoch_not_converged", torch.zeros(2), persistent=False)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        params, lr = self.network.readout.parameters(), self.network.readout_options.lr
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
        features = self.network.layer_states(relaxation.states, self.network.num_layers - 1)
        perceptron_readout = self.network.readout_options.rule == "perceptron"
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
        features = self.network.layer_states(relaxation.states, self.network.num_layers - 1)
        return self.log_classification(stage, self.network.readout(features), y)

    def on_train_epoch_start(self) -> None:
        self._epoch_not_converged.zero_()

    def on_train_epoch_end(self) -> None:
        missed, seen = self._epoch_not_converged.tolist()
        if missed:
            rank_zero_warn(
                f"epoch {self.current_epoch}: {int(missed)} of {int(seen)} training samples "
                f"({missed / seen:.1%}) stopped at max_sweeps={self.network.dynamics.max_sweeps} without "
                f"reaching a fixed point, and the local update used those states; raise "
                f"max_sweeps (or free_sweeps) or j_d if this persists"
            )

    def _log_dynamics(self, stage: str, relaxation: Relaxation, batch: int) -> None:
        self.log(f"{stage}/sweeps", relaxation.sweeps.float().mean(), batch_size=batch)
        self.log(f"{stage}/not_converged", relaxation.not_converged_fraction(), batch_size=batch)
        activity = relaxation.activity(self.network.state_encoding, self.network.sizes)
        for layer, value in enumerate(activity):
            self.log(f"{stage}/activity/layer_{layer}", value, batch_size=batch)

    def _log_coupling_norms(self) -> None:
        """Coupling norms; called only on steps the logger writes (each is a pass over J),
        as Lightning's own LearningRateMonitor decides."""
        net = self.network
        for layer, module in enumerate(net.layers):
            self.log(f"couplings/J_norm/layer_{layer}", torch.linalg.matrix_norm(module.J))
        for index, coupling in enumerate(net.couplings):
            if coupling.lr > 0:
                self.log(f"couplings/W_norm/coupling_{index}", coupling.W.norm())
        self.log("couplings/readout_norm", net.readout.weight.detach().norm())

    def _log_histograms(self, relaxation: Relaxation, x: Tensor, y: Tensor) -> None:
        if not isinstance(self.logger, TensorBoardLogger):
            return
        writer, step = self.logger.experiment, self.global_step
        h = self.network.fields(relaxation.states, x, y)
        for layer, module in enumerate(self.network.layers):
            writer.add_histogram(f"couplings/J/layer_{layer}", module.J, step)
            writer.add_histogram(f"fields/layer_{layer}", self.network.layer_states(h, layer), step)

    def _check_finite(self) -> None:
        for name, tensor in (*self.network.named_buffers(), *self.network.named_parameters()):
            if not bool(torch.isfinite(tensor).all()):
                raise FloatingPointError(
                    f"non-finite values in {name} after the update at global step "
                    f"{self.global_step}"
                )
