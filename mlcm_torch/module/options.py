"""Validated option groups of a network: frozen dataclasses checked in ``__post_init__``, so an
invalid value is rejected where it is set (construction, ``dataclasses.replace``, the CLI)
with a ValueError naming the value and what is allowed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

from mlcm_torch.functional.graph import Schedule
from mlcm_torch.module import checks

Protocol = Literal["thesis", "steering"]
InitState = Literal["zeros", "input"]
LrScaling = Literal["thesis", "paper"]
ReadoutRule = Literal["cross_entropy", "perceptron"]
Backend = Literal["dense", "event", "auto"]


@dataclass(frozen=True)
class Dynamics:
    """How a network relaxes (thesis §6.2.1, Alg. 2; arXiv 2510.11984).

    Args:
        schedule: update schedule of a sweep (thesis §6.2.1).
        protocol: ``thesis``: one relaxation with the label, the update at its fixed point.
            ``steering`` (arXiv 2510.11984): ``max_sweeps`` with the label, then the label and
            every feedback coupling off for up to ``free_sweeps`` more; the update uses the
            final state.
        max_sweeps: sweep budget of the relaxation with the label (its label phase for
            ``steering``), and of inference unless ``inference_sweeps`` is set.
        free_sweeps: budget of the free phase of ``steering`` (default: ``max_sweeps``).
        warmup_sweeps: ``steering`` only: label-free sweeps before the label phase (the arXiv
            2510.11984 code runs one).
        inference_sweeps: budget of the label-free relaxation ``relax(x)`` (default:
            ``max_sweeps``).
        init_state: ``zeros`` (the first sweep starts from zero states) or ``input`` (every
            layer starts at the activation of the input drive of the first layer).
        backend: ``dense`` recomputes every field each sweep (in the couplings' dtype);
            ``event`` carries the fields and corrects them by the neurons that changed, with
            the decisions of the dense path evaluated in float64
            (:mod:`mlcm_torch.functional.events`; not for k-winners-take-all); ``auto``
            picks ``event`` on the CPU — for training relaxations only where the compiled
            event kernel runs them (synchronous schedules, float32 couplings, a C compiler) —
            and ``dense`` on GPUs.
    """

    schedule: Schedule = "layer_sequential_sync"
    protocol: Protocol = "thesis"
    max_sweeps: int = 20
    free_sweeps: Optional[int] = None
    warmup_sweeps: int = 0
    inference_sweeps: Optional[int] = None
    init_state: InitState = "zeros"
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        checks.one_of("backend", self.backend, Backend)
        checks.one_of("schedule", self.schedule, Schedule)
        checks.one_of("protocol", self.protocol, Protocol)
        checks.one_of("init_state", self.init_state, InitState)
        checks.integer_at_least("max_sweeps", self.max_sweeps, 1)
        checks.integer_at_least("warmup_sweeps", self.warmup_sweeps, 0)
        if self.free_sweeps is not None:
            if self.protocol != "steering":
                raise ValueError("free_sweeps is only used with protocol='steering'")
            checks.integer_at_least("free_sweeps", self.free_sweeps, 1)
        if self.warmup_sweeps and self.protocol != "steering":
            raise ValueError("warmup_sweeps is only used with protocol='steering'")
        if self.inference_sweeps is not None:
            checks.integer_at_least("inference_sweeps", self.inference_sweeps, 1)

    @property
    def free_budget(self) -> int:
        return self.free_sweeps or self.max_sweeps

    @property
    def inference_budget(self) -> int:
        return self.inference_sweeps or self.max_sweeps


@dataclass(frozen=True)
class Readout:
    """The linear readout W_out s^L (a bias-free ``nn.Linear``) and how it learns.

    Args:
        rule: ``cross_entropy`` (autograd and a torch optimizer, in the LightningModule) or
            ``perceptron`` (one-vs-all with margin, arXiv 2510.11984, in ``local_update``).
        lr: learning rate of the readout.
        margin: margin of the perceptron readout.
        targets: (true class, other classes) targets of the perceptron readout for class
            labels; ±1 by default (the arXiv 2510.11984 code effectively uses (2.5, −0.79)).
            Target vectors are used as given.
        weight_decay: ξ of the perceptron readout, W ← W (1 − η ξ) + ΔW.
    """

    rule: ReadoutRule = "cross_entropy"
    lr: float = 0.1
    margin: float = 0.0
    targets: tuple[float, float] = (1.0, -1.0)
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        checks.one_of("readout", self.rule, ReadoutRule)
        checks.finite_at_least("readout_lr", self.lr, 0.0)
        checks.finite_at_least("weight_decay", self.weight_decay, 0.0)
        if not math.isfinite(self.margin):
            raise ValueError(f"readout_margin={self.margin!r} must be a finite number")
        if self.rule != "perceptron" and (self.margin or tuple(self.targets) != (1.0, -1.0)):
            raise ValueError("readout_margin and readout_targets are only used with readout='perceptron'")
        targets = tuple(self.targets)
        if len(targets) != 2 or not all(math.isfinite(t) for t in targets) or not targets[0] > 0 > targets[1]:
            raise ValueError(f"readout_targets={self.targets!r}; expected (positive, negative) finite floats")
        object.__setattr__(self, "targets", (float(targets[0]), float(targets[1])))
