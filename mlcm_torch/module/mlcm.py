"""The Multi-Layer Chain Model of the thesis (and the one-layer network of arXiv 2510.11984) as a
preset of :class:`~mlcm_torch.module.network.Network`."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import Literal, Optional, Sequence, Union

import torch
from torch import Tensor

from mlcm_torch.functional.graph import Encoding, Schedule
from mlcm_torch.module import checks
from mlcm_torch.module.couplings import InputCoupling, LabelCoupling, OneToOne, Phases
from mlcm_torch.module.layers import RecurrentLayer
from mlcm_torch.module.network import Network
from mlcm_torch.module.options import Backend, Dynamics, InitState, LrScaling, Protocol, Readout, ReadoutRule


class MLCM(Network):
    """Multi-Layer Chain Model: L layers of N binary neurons relaxing to a fixed point.

    Fields follow thesis eq. 6.1, the dynamics thesis §6.2.1, the plasticity thesis eq. 6.3 /
    Alg. 3. The chain is layers + couplings (see :class:`Network`): layer l has J^l (N×N, zero
    diagonal, N(0, 1/N)) and J_D; a one-to-one λ_L^l from layer l−1 (always on) and λ_R^l from
    layer l+1 (on with the label only, unless ``rightward_phases="always"``); the input enters
    layer 1 as λ_IN x̃; the label enters layer L as λ_OUT W_back y (W_back N×C fixed N(0, 1)).

    Args:
        in_features: input width d (binary inputs, ±1 or {0, 1} per ``state_encoding``).
        hidden: neurons per layer N (≥ d with the identity input).
        num_layers: L.
        num_classes: C.
        j_d: self-coupling J_D (never learned).
        lambda_in: input strength λ_IN.
        lambda_left: λ_L^2..λ_L^L, L − 1 entries (a float is broadcast).
        lambda_right: λ_R^1..λ_R^(L−1), L − 1 entries (a float is broadcast).
        lambda_out: label feedback strength λ_OUT.
        lr: learning rate η of J.
        weight_decay: ξ; J ← J (1 − η ξ) + ΔJ (and the perceptron readout alike).
        robustness: ρ; a neuron learns when its margin is ≤ ρ.
        max_sweeps: sweep budget of the relaxation with the label (of its label phase for
            ``steering``), and of inference unless ``inference_sweeps`` is set.
        schedule: update schedule (thesis §6.2.1).
        state_encoding: ``pm1`` (±1) or ``01`` ({0, 1}, thesis eq. 7.1).
        seed: seeds the initial couplings and the asynchronous update order.
        input_coupling: ``identity`` (x zero-padded to N, thesis) or ``dense`` (learnable
            W_in, arXiv 2510.11984).
        lr_in: learning rate of W_in (dense input only; W_in has no weight decay).
        protocol: ``thesis`` (one relaxation with the label) or ``steering`` (arXiv
            2510.11984: label phase, then a free phase).
        free_sweeps: free-phase budget of ``steering`` (default: ``max_sweeps``).
        warmup_sweeps: ``steering`` only: label-free sweeps before the label phase.
        inference_sweeps: budget of the label-free relaxation (default: ``max_sweeps``).
        init_state: ``zeros`` or ``input`` (every layer starts at the activation of λ_IN x̃).
        sparsity_threshold: γ ≥ 0 of the {0, 1} encoding (thesis eq. 7.1).
        k_winners: k-winners-take-all per layer (synchronous schedules only).
        lr_scaling: ``thesis`` (Δ = η/B Σ_b) or ``paper`` (η/√(fan-in · B), arXiv code).
        readout: ``cross_entropy`` or ``perceptron`` (one-vs-all with margin).
        readout_lr: learning rate of the readout.
        readout_margin: margin of the perceptron readout.
        readout_targets: (true class, other classes) targets of the perceptron readout.
        check_inputs: validate x and y on every call (one host sync each).
        j_sparsity: fraction of zero off-diagonal J entries (a fixed random mask).
        input_sparsity: fraction of zero W_in entries (dense input only).
        rightward_phases: when λ_R acts: ``clamped`` (with the label only, thesis Alg. 2) or
            ``always`` (chains held by one-to-one couplings in both directions).
        backend: sweep implementation, ``dense``, ``event`` or ``auto`` (see :class:`Dynamics`).
    """

    def __init__(
        self,
        in_features: int,
        hidden: int,
        num_layers: int,
        num_classes: int,
        *,
        j_d: float = 0.1,
        lambda_in: float = 6.0,
        lambda_left: Union[float, Sequence[float]] = 4.0,
        lambda_right: Union[float, Sequence[float]] = 2.0,
        lambda_out: float = 12.0,
        lr: float = 0.01,
        weight_decay: float = 0.0,
        robustness: float = 0.0,
        max_sweeps: int = 20,
        schedule: Schedule = "layer_sequential_sync",
        state_encoding: Encoding = "pm1",
        seed: Optional[int] = None,
        input_coupling: Literal["identity", "dense"] = "identity",
        lr_in: float = 0.0,
        protocol: Protocol = "thesis",
        free_sweeps: Optional[int] = None,
        warmup_sweeps: int = 0,
        inference_sweeps: Optional[int] = None,
        init_state: InitState = "zeros",
        sparsity_threshold: float = 0.0,
        k_winners: Optional[int] = None,
        lr_scaling: LrScaling = "thesis",
        readout: ReadoutRule = "cross_entropy",
        readout_lr: float = 0.1,
        readout_margin: float = 0.0,
        readout_targets: tuple[float, float] = (1.0, -1.0),
        check_inputs: bool = True,
        j_sparsity: float = 0.0,
        input_sparsity: float = 0.0,
        rightward_phases: Phases = "clamped",
        backend: Backend = "auto",
    ) -> None:
        checks.integer_at_least("num_layers", num_layers, 1)
        checks.integer_at_least("hidden", hidden, 1)
        lefts = checks.per_layer("lambda_left", lambda_left, num_layers - 1)
        rights = checks.per_layer("lambda_right", lambda_right, num_layers - 1)
        if input_coupling == "identity" and lr_in:
            raise ValueError(f"lr_in={lr_in} needs input_coupling='dense' (nothing to learn)")
        if input_coupling == "identity" and input_sparsity:
            raise ValueError(f"input_sparsity={input_sparsity} needs input_coupling='dense'")
        layers = [
            RecurrentLayer(hidden, j_d=j_d, sparsity=j_sparsity, gamma=sparsity_threshold, k_winners=k_winners,
                           lr=lr, weight_decay=weight_decay, robustness=robustness)
            for _ in range(num_layers)
        ]
        couplings = [
            LabelCoupling(num_layers - 1, lambda_out),
            InputCoupling(0, lambda_in, kind=checks.one_of("input_coupling", input_coupling, ("identity", "dense")),
                          sparsity=input_sparsity, lr=lr_in),
            *(OneToOne(layer, layer - 1, lefts[layer - 1]) for layer in range(1, num_layers)),
            *(OneToOne(layer, layer + 1, rights[layer], rightward_phases) for layer in range(num_layers - 1)),
        ]
        super().__init__(
            in_features, num_classes, layers, couplings,
            dynamics=Dynamics(schedule, protocol, max_sweeps, free_sweeps, warmup_sweeps, inference_sweeps,
                              init_state, backend),
            readout=Readout(readout, readout_lr, readout_margin, tuple(readout_targets), weight_decay),
            state_encoding=state_encoding, lr_scaling=lr_scaling, seed=seed, check_inputs=check_inputs,
        )
        self._lambda = (float(lambda_in), lefts, rights, float(lambda_out))

    # ------------------------------------------------------------------ the chain's view
    @property
    def state_shape(self) -> tuple[int, ...]:
        """(L, N): :meth:`relax` returns states (B, L, N)."""
        return (len(self.layers), self.layers[0].size)

    hidden = property(lambda self: self.layers[0].size, doc="N")
    j_d = property(lambda self: self.layers[0].j_d, doc="J_D")
    lr = property(lambda self: self.layers[0].lr, doc="η of J")
    weight_decay = property(lambda self: self.layers[0].weight_decay, doc="ξ")
    robustness = property(lambda self: self.layers[0].robustness, doc="ρ")
    sparsity_threshold = property(lambda self: self.layers[0].gamma, doc="γ")
    k_winners = property(lambda self: self.layers[0].k_winners)
    lambda_in = property(lambda self: self._lambda[0], doc="λ_IN")
    lambda_left = property(lambda self: self._lambda[1], doc="λ_L^2..λ_L^L")
    lambda_right = property(lambda self: self._lambda[2], doc="λ_R^1..λ_R^(L−1)")
    lambda_out = property(lambda self: self._lambda[3], doc="λ_OUT")
    input_coupling = property(lambda self: self.couplings[1].kind)
    lr_in = property(lambda self: self.couplings[1].lr, doc="η of W_in")
    readout_rule = property(lambda self: self.readout_options.rule)
    readout_lr = property(lambda self: self.readout_options.lr)
    readout_margin = property(lambda self: self.readout_options.margin)
    readout_targets = property(lambda self: self.readout_options.targets)
    W_back = property(lambda self: self.couplings[0].W, doc="label feedback W_back (N, C), a buffer")
    W_in = property(lambda self: self.couplings[1].W, doc="input couplings W_in (N, d) or None, a buffer")

    @property
    def J(self) -> Tensor:
        """The internal couplings of every layer stacked, (L, N, N): a copy; each layer's own
        buffer is ``model.layers[l].J``."""
        return torch.stack([layer.J for layer in self.layers])

    @property
    def free_sweeps(self) -> int:
        return self.dynamics.free_budget

    @property
    def inference_sweeps(self) -> int:
        return self.dynamics.inference_budget


def _dynamics_property(name: str) -> property:
    def get(self: MLCM):
        return getattr(self.dynamics, name)

    def set_(self: MLCM, value) -> None:
        self.dynamics = replace(self.dynamics, **{name: value})

    return property(get, set_, doc=f"``dynamics.{name}``; assignment is validated")


for _field in dataclass_fields(Dynamics):
    if _field.name not in ("free_sweeps", "inference_sweeps"):
        setattr(MLCM, _field.name, _dynamics_property(_field.name))
