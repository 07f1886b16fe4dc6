"""``MLCMClassifier``: the MLCM trained by steering its dynamics, as a LightningModule."""

from __future__ import annotations

import math
import warnings
from itertools import islice
from typing import Literal, NamedTuple, Optional, Union

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from mlcm_torch.functional.dynamics import Relaxation
from mlcm_torch.module import checks
from mlcm_torch.module.config import from_config
from mlcm_torch.module.network import Network
from mlcm_torch.training.base import ClassifierModule
from mlcm_torch.training.refit import ReadoutRefit, refit_readout
from mlcm_torch.training.schedules import Schedule, check_schedule, lr_factor


class _Outcome(NamedTuple):
    """What one micro-batch's training leaves for the step's statistics."""

    relaxation: Relaxation
    logits: Tensor  # W_out s^L before the readout's update
    loss: Optional[Tensor]  # the readout's loss when it trains by gradient, else None
    stats: dict


class MLCMClassifier(ClassifierModule):
    """Trains a network of binary neurons (``mlcm_torch.MLCM``, ``mlcm_torch.Network``) by local rules.

    The network is a :class:`~mlcm_torch.Network` (e.g. the :class:`~mlcm_torch.MLCM` chain),
    trained with manual optimization. ``training_step``: relax with the label (convergence step) → local perceptron update of
    the couplings (thesis eq. 6.3, one GEMM per learnable tensor; deltas averaged across
    processes under data parallelism) → readout step with the module's one torch optimizer
    (cross-entropy by autograd on the detached final states; for the perceptron readout the
    readout learns in the local update and the optimizer step only advances ``global_step``).
    ``validation_step`` / ``test_step`` / ``predict_step``: inference relaxation, no label;
    ``predict_step`` returns ``prediction``, ``logits``, ``target`` and ``features`` (the last
    layer's fixed point, int8) for :class:`~mlcm_torch.training.PredictionWriter`.

    The network is injected (Lightning's pattern): in a config, ``network: {class_path: ...,
    init_args: ...}``. Its constructor call is stored in the hyperparameters, so
    ``load_from_checkpoint`` rebuilds it.

    Args:
        network: the network to train (a :class:`~mlcm_torch.Network`, e.g. ``MLCM``).
        readout_optimizer: optimizer of the cross-entropy readout (lr: the network's
            ``readout_lr``).
        readout_momentum: SGD momentum.
        histogram_every_n_steps: log histograms of the couplings (J of every layer, every
            learnable coupling W such as W_in), of the readout weights and of the fields to
            TensorBoard every n optimizer steps (0: never; ignored with other loggers).
        check_finite: every n optimizer steps, after the update, raise ``FloatingPointError``
            naming the tensor and the step if a coupling or the readout is NaN or infinite (one
            host sync per check; 0: never; ``True``/``False`` read as 1/0).
        micro_batch_size: run each loader batch as consecutive micro-batches of this size, each
            with its own relaxation, local update and readout step — the same couplings as a
            loader of that batch size (tested), with one Lightning step per loader batch
            (``global_step`` still counts readout steps, so it moves by several per Lightning step:
            save every N steps with :class:`~mlcm_torch.training.StepCheckpoint`, which cannot skip
            a multiple of N). Default: the whole batch.
        readout_scheduler: learning-rate schedule of the readout, a factor per epoch (see
            :func:`~mlcm_torch.training.schedules.lr_factor`): ``constant`` (no scheduler),
            ``cosine`` or ``step``. It drives a ``LambdaLR`` on the readout optimizer (returned by
            ``configure_optimizers``, stepped once per epoch) and, for the perceptron readout,
            which learns in the local update, the factor of its rate there.
        local_scheduler: the same for the local rule's rates (J of every layer, every learnable
            coupling such as W_in): their updates use ``lr · factor(epoch)``.
        scheduler_epochs: cosine: epochs T over which the factor falls from 1 to
            ``scheduler_min_factor`` (default: the trainer's ``max_epochs``).
        scheduler_min_factor: cosine: the factor reached at epoch T, in [0, 1].
        scheduler_step_size: step: the factor is multiplied by ``scheduler_gamma`` every this many
            epochs (required with ``step``).
        scheduler_gamma: step: the factor per ``scheduler_step_size`` epochs, in (0, 1].
        readout_refit: after the last batch of the last epoch (``max_epochs``), before that
            epoch's validation and checkpoints, refit the readout W_out by Adam on the loss
            (cross-entropy) over the label-free fixed points of an epoch's training batches, from
            W_out = 0 (:mod:`~mlcm_torch.training.refit`; the couplings are not changed). In a
            config: ``readout_refit: {epochs: 20, lr: 0.001}``. Default: no refit. A run ended
            by ``max_steps`` before its last epoch's end is not refit.
    """

    def __init__(
        self,
        network: Network,
        readout_optimizer: Literal["sgd", "adam"] = "sgd",
        readout_momentum: float = 0.0,
        histogram_every_n_steps: int = 500,
        check_finite: Union[int, bool] = 100,
        micro_batch_size: Optional[int] = None,
        readout_scheduler: Schedule = "constant",
        local_scheduler: Schedule = "constant",
        scheduler_epochs: Optional[int] = None,
        scheduler_min_factor: float = 0.0,
        scheduler_step_size: Optional[int] = None,
        scheduler_gamma: float = 0.1,
        readout_refit: Optional[ReadoutRefit] = None,
    ) -> None:
        if isinstance(network, dict):
            network = from_config(network, Network)
        if not isinstance(network, Network):
            raise ValueError(f"network must be a mlcm_torch.Network, got {type(network).__name__}")
        super().__init__(network.in_features, network.num_classes)
        checks.one_of("readout_optimizer", readout_optimizer, ("sgd", "adam"))
        checks.finite_at_least("readout_momentum", readout_momentum, 0.0)
        checks.integer_at_least("histogram_every_n_steps", histogram_every_n_steps, 0)
        checks.integer_at_least("check_finite", int(check_finite), 0)
        if micro_batch_size is not None:
            checks.integer_at_least("micro_batch_size", micro_batch_size, 1)
        for name, kind in (("readout_scheduler", readout_scheduler), ("local_scheduler", local_scheduler)):
            check_schedule(name, kind, scheduler_epochs, scheduler_min_factor, scheduler_step_size, scheduler_gamma)
        if isinstance(readout_refit, dict):
            readout_refit = ReadoutRefit(**readout_refit)
        if readout_refit is not None and not isinstance(readout_refit, ReadoutRefit):
            raise ValueError(f"readout_refit must be a ReadoutRefit, a dict of its fields or None, got "
                             f"{type(readout_refit).__name__}")
        self.save_hyperparameters(ignore=["network", "readout_refit"])
        self.hparams["check_finite"] = int(check_finite)
        self.hparams["readout_refit"] = None if readout_refit is None else readout_refit.config()
        self.readout_refit = readout_refit
        self.readout_refit_report: Optional[dict] = None
        """After a refit: samples, per-epoch losses, seconds, and ``weight_before`` (W_out before it)."""
        self.hparams["network"] = network.config()
        self.automatic_optimization = False
        self.network = network
        statistics = 4 + 2 * network.num_layers + 1
        # the per-step statistics (× batch) and the sample count, summed since the last logging
        # step (row 0) and over the epoch (row 1): one in-place add per Lightning step
        self.register_buffer("_sums", torch.zeros(2, statistics + 1), persistent=False)

    def configure_optimizers(self):
        """The readout optimizer; with a ``readout_scheduler`` other than ``constant``, also a
        ``LambdaLR`` whose factor is :meth:`lr_factor` of the epoch."""
        params, lr = self.network.readout.parameters(), self.network.readout_options.lr
        if self.hparams.readout_optimizer == "adam":
            optimizer = torch.optim.Adam(params, lr=lr)
        else:
            optimizer = torch.optim.SGD(params, lr=lr, momentum=self.hparams.readout_momentum)
        for which in ("readout", "local"):
            self.lr_factor(which, 0)  # a cosine schedule without a length fails here, before training
        if self.hparams.readout_scheduler == "constant":
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: self.lr_factor("readout", epoch))
        return {"optimizer": optimizer, "lr_scheduler": scheduler}

    def lr_factor(self, which: Literal["readout", "local"], epoch: int) -> float:
        """The factor of the ``readout`` or ``local`` learning rates in epoch ``epoch`` (from 0): a
        pure function of the epoch, the scheduler options and, for a cosine schedule without
        ``scheduler_epochs``, the trainer's ``max_epochs``."""
        hparams = self.hparams
        kind = hparams[f"{which}_scheduler"]
        epochs = hparams.scheduler_epochs
        if kind == "cosine" and epochs is None:
            epochs = self.trainer.max_epochs if self._trainer is not None else None
            if epochs is None or epochs < 1:
                raise ValueError(f"{which}_scheduler='cosine' needs scheduler_epochs when the trainer has no "
                                 f"max_epochs")
        return lr_factor(kind, epoch, epochs, hparams.scheduler_min_factor, hparams.scheduler_step_size,
                         hparams.scheduler_gamma)

    def logits(self, x: Tensor) -> Tensor:
        return self.network(x)

    def _mean_over_processes(self, delta: Tensor) -> Tensor:
        return self.trainer.strategy.reduce(delta, reduce_op="mean")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        """The convergence step, the local update and the readout step, for each micro-batch of
        ``micro_batch_size`` samples of the loader's batch in turn (the whole batch by default).
        The step's statistics are computed once, over all its micro-batches, summed on the device
        and logged on the steps the logger writes; returns the step's mean loss."""
        x, y = batch
        size = self.hparams.micro_batch_size or x.shape[0]
        epoch = self.current_epoch
        scales = {"lr_scale": self.lr_factor("local", epoch), "readout_lr_scale": self.lr_factor("readout", epoch)}
        optimizer = self.optimizers()
        outcomes = [self._train_micro_batch(xs, ys, optimizer, scales) for xs, ys in zip(x.split(size), y.split(size))]
        loss = self._add_statistics(outcomes, y)
        if self._refit_due():
            self._refit_readout()
        if self.trainer.fast_dev_run or self.trainer._logger_connector.should_update_logs:
            self._flush_train_logs()
            self._log_coupling_norms()
        return loss

    def _train_micro_batch(self, x: Tensor, y: Tensor, optimizer, scales: dict[str, float]) -> _Outcome:
        relaxation = self.network.relax(x, y)
        perceptron_readout = self.network.readout_options.rule == "perceptron"
        if not perceptron_readout:
            logits = self.network.readout(self.network.layer_states(relaxation.states, self.network.num_layers - 1))
        stats = self.network.local_update(relaxation, x, y, reduce=self._reduce(), **scales)
        every = self.hparams.check_finite
        if every and (self.global_step + 1) % every == 0:
            self._check_finite(self.global_step + 1)
        if perceptron_readout:
            logits, loss = stats["readout_logits"], None  # W_out s^L before the readout's update
            # no gradients, nothing to step: count the step (global_step) with the two calls that
            # LightningOptimizer.step makes around its pass through strategy, precision and hooks
            optimizer._on_before_step()
            optimizer._on_after_step()
        else:
            loss = self.loss(logits, y)
            optimizer.zero_grad()
            self.manual_backward(loss)
            optimizer.step()
            loss = loss.detach()
        every = self.hparams.histogram_every_n_steps
        if every and self.global_step % every == 0:
            self._log_histograms(relaxation, x, y)
        return _Outcome(relaxation, logits.detach(), loss, stats)

    def _add_statistics(self, outcomes: list[_Outcome], y: Tensor) -> Tensor:
        """Add the step's statistics (means over its samples, × its sample count) to the sums;
        micro-batches are concatenated, so each statistic costs a few tensor ops per Lightning step
        rather than per micro-batch. Returns the step's mean loss."""
        logits = torch.cat([outcome.logits for outcome in outcomes])
        shares = [outcome.logits.shape[0] / y.shape[0] for outcome in outcomes]  # each micro-batch's weight
        if outcomes[0].loss is None:
            loss = self.loss(logits, y)
        else:
            losses = torch.stack([outcome.loss for outcome in outcomes])
            loss = losses @ losses.new_tensor(shares)
        relaxation = Relaxation(*(torch.cat(parts) for parts in zip(*(outcome.relaxation for outcome in outcomes))))
        per_layer = [outcome.stats["unstable_fraction"] for outcome in outcomes]
        zero = per_layer[0][0].new_zeros(())
        fractions = torch.stack([torch.stack([*layers, outcome.stats.get("readout_unstable_fraction", zero)])
                                 for layers, outcome in zip(per_layer, outcomes)])
        fractions = fractions.new_tensor(shares) @ fractions
        values = torch.cat([torch.stack([loss, self.correct(logits, y).mean(), relaxation.sweeps.float().mean(),
                                         relaxation.not_converged_fraction()]),
                            relaxation.activity(self.network.state_encoding, self.network.sizes),
                            fractions, loss.new_ones(1)])
        self._sums += values * y.shape[0]
        return loss

    def _refit_due(self) -> bool:
        trainer = self.trainer
        return (self.readout_refit is not None and trainer.is_last_batch and trainer.max_epochs is not None
                and self.current_epoch == trainer.max_epochs - 1)

    def _refit_readout(self) -> None:
        """Refit W_out on the fixed points of the epoch's training batches (the loader's first
        ``num_training_batches``), gathered from every process."""
        count = self.trainer.num_training_batches  # limit_train_batches and fast_dev_run hold here too
        loader = islice(self.trainer.train_dataloader, None if math.isinf(count) else int(count))
        batches = ((x.to(self.device), y.to(self.device)) for x, y in map(self.split_batch, loader))
        gather = (lambda t: self.all_gather(t).flatten(0, 1)) if self.trainer.world_size > 1 else None
        before = self.network.readout.weight.detach().clone()
        report = refit_readout(self.network, batches, self.loss, self.readout_refit, gather)
        self.readout_refit_report = {**report, "weight_before": before}
        self.log("train/readout_refit_loss", report["losses"][-1], on_step=True, on_epoch=False)

    def _train_names(self) -> list[str]:
        layers = range(1, self.network.num_layers + 1)
        names = ["train/loss_step", "train/acc_step", "train/sweeps", "train/not_converged",
                 *(f"train/activity/layer_{layer}" for layer in layers),
                 *(f"train/unstable_fraction/layer_{layer}" for layer in layers)]
        if self.network.readout_options.rule == "perceptron":
            names.append("train/readout_unstable_fraction")
        return names

    def _flush_train_logs(self) -> None:
        """Log the means of the statistics summed since the last logging step, at once."""
        count = self._sums[0, -1]
        if not bool(count > 0):
            return
        means = self._sums[0, :-1] / count
        names = self._train_names()
        self.log_dict(dict(zip(names, means[: len(names)])), on_step=True, on_epoch=False)
        self.log_dict({"loss": means[0], "acc": means[1]}, on_step=True, on_epoch=False, prog_bar=True,
                      logger=False)
        self._sums[0].zero_()

    def _reduce(self):
        """Mean across processes for data parallelism; nothing to do on one process."""
        return self._mean_over_processes if self.trainer.world_size > 1 else None

    def evaluation_step(self, batch: tuple[Tensor, Tensor], stage: str) -> Tensor:
        x, y = batch
        relaxation = self.network.relax(x)
        self._log_dynamics(stage, relaxation, y.shape[0])
        features = self.network.layer_states(relaxation.states, self.network.num_layers - 1)
        return self.log_classification(stage, self.network.readout(features), y)

    def on_train_epoch_start(self) -> None:
        scheduler = self.lr_schedulers()
        with warnings.catch_warnings():  # after a resume it steps before the new optimizer's first step, on purpose
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
            while scheduler is not None and scheduler.last_epoch < self.current_epoch:
                scheduler.step()  # once per epoch; after a resume, up to the restored epoch
        self._sums.zero_()

    @property
    def train_epoch_accuracy(self) -> Optional[float]:
        """The running training accuracy of the current epoch (what ``train/acc_epoch`` logs at its
        end, readable before that, e.g. from a callback's ``on_train_epoch_end``); None before its
        first batch."""
        count = float(self._sums[1, -1])
        return float(self._sums[1, 1]) / count if count else None

    def on_train_epoch_end(self) -> None:
        count = self._sums[1, -1]
        if bool(count > 0):
            loss, acc = (self._sums[1, :2] / count).unbind()
            self.log_dict({"train/loss_epoch": loss, "train/acc_epoch": acc}, on_step=False, on_epoch=True,
                          sync_dist=True)
        missed, seen = round(float(self._sums[1, 3])), round(float(count))
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
        for layer, value in enumerate(activity, start=1):
            self.log(f"{stage}/activity/layer_{layer}", value, batch_size=batch)

    def _log_coupling_norms(self) -> None:
        """Coupling norms; called only on steps the logger writes (each is a pass over J),
        as Lightning's own LearningRateMonitor decides."""
        net = self.network
        for layer, module in enumerate(net.layers, start=1):
            self.log(f"couplings/J_norm/layer_{layer}", torch.linalg.matrix_norm(module.J))
        for index, coupling in enumerate(net.couplings):
            if coupling.lr > 0:
                self.log(f"couplings/W_norm/coupling_{index}", coupling.W.norm())
        self.log("couplings/readout_norm", net.readout.weight.detach().norm())

    def _log_histograms(self, relaxation: Relaxation, x: Tensor, y: Tensor) -> None:
        if not isinstance(self.logger, TensorBoardLogger):
            return
        writer, step = self.logger.experiment, self.global_step
        net = self.network
        h = net.fields(relaxation.states, x, y)
        for layer, module in enumerate(net.layers):
            writer.add_histogram(f"couplings/J/layer_{layer + 1}", module.J, step)
            writer.add_histogram(f"fields/layer_{layer + 1}", net.layer_states(h, layer), step)
        for index, coupling in enumerate(net.couplings):
            if coupling.lr > 0:
                writer.add_histogram(f"couplings/W/coupling_{index}", coupling.W, step)
        writer.add_histogram("couplings/readout", net.readout.weight.detach(), step)

    def _check_finite(self, step: int) -> None:
        """Raise naming the first non-finite coupling or readout tensor (one sum per tensor and one
        host sync when all are finite)."""
        tensors = [(name, tensor) for name, tensor in (*self.network.named_buffers(), *self.network.named_parameters())
                   if tensor.is_floating_point()]
        with torch.no_grad():  # a NaN or ±inf entry makes its tensor's sum NaN or ±inf: one read per tensor
            if bool(torch.stack([tensor.sum() for _, tensor in tensors]).isfinite().all()):
                return
        for name, tensor in tensors:  # a non-finite sum may also be an overflow of finite entries
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                every = self.hparams.check_finite
                raise FloatingPointError(
                    f"non-finite values in {name} ({bad} of {tensor.numel()} entries) after the update of "
                    f"global step {step} (checked every {every} step{'s' if every > 1 else ''}; lower the "
                    f"learning rates or check_finite to find the step it started)"
                )

    def predict_step(self, batch, batch_idx: int) -> dict[str, Tensor]:
        """``prediction``, ``logits``, ``target`` (when the batch has labels) and ``features``: the
        last layer's label-free fixed point (B, N_L) as int8 (the readout's input)."""
        x, y = self.split_batch(batch)
        features = self.network.features(x)
        record = self.prediction_record(self.network.readout(features), y)
        record["features"] = features.to(torch.int8)
        return record
