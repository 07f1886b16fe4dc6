"""The Multi-Layer Chain Model as an ``nn.Module`` whose couplings are buffers (no autograd)."""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mlcm_torch.functional.dynamics import SCHEDULES, Relaxation, relax
from mlcm_torch.functional.fields import Couplings, Drive, activate, fields, zero_one_thresholds
from mlcm_torch.functional.plasticity import (
    decay_and_add,
    perceptron_delta,
    readout_perceptron_delta,
)
from mlcm_torch.module import checks

Reduce = Callable[[Tensor], Tensor]


class MLCM(nn.Module):
    """Multi-Layer Chain Model: L layers of N binary neurons relaxing to a fixed point.

    Fields follow thesis eq. 6.1 (see :mod:`mlcm_torch.functional.fields`), the dynamics
    thesis §6.2.1, the plasticity thesis eq. 6.3 / Alg. 3. Couplings are buffers:
    ``J`` (L, N, N) with zero diagonal, i.i.d. N(0, 1/N) at init; ``W_back`` (N, C) fixed
    random N(0, 1) feedback of the label; ``W_in`` (N, d), N(0, 1/d), only with
    ``input_coupling="dense"``. The readout ``readout`` is a bias-free ``nn.Linear(N, C)``.

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
            ``"steering"``), and of inference unless ``inference_sweeps`` is set.
        schedule: one of ``layer_sequential_sync`` (default), ``layer_independent_sync``,
            ``layer_sequential_async``, ``layer_independent_async``.
        state_encoding: ``"pm1"`` (±1) or ``"01"`` ({0, 1}, thesis eq. 7.1).
        seed: seeds the initial couplings and the asynchronous update order.
        input_coupling: ``"identity"`` (x zero-padded to N, thesis) or ``"dense"``
            (learnable W_in, arXiv 2510.11984).
        lr_in: learning rate of W_in (dense input only).
        protocol: ``"thesis"`` (one relaxation with the label, update at its fixed point) or
            ``"steering"`` (arXiv 2510.11984: ``max_sweeps`` with the label, then the label
            and every rightward field switched off for up to ``free_sweeps`` more).
        free_sweeps: second-phase budget of ``"steering"`` (default: ``max_sweeps``).
        warmup_sweeps: ``"steering"`` only: label-free sweeps before the label phase (the
            arXiv 2510.11984 code runs one), counted in the returned sweeps.
        inference_sweeps: sweep budget of the label-free relaxation ``relax(x)`` (default:
            ``max_sweeps``).
        init_state: ``"zeros"`` (first sweep from the input) or ``"input"`` (every layer
            starts at the activation of its input drive λ_IN x̃).
        sparsity_threshold: γ ≥ 0 of the {0, 1} encoding (thesis eq. 7.1).
        k_winners: k-winners-take-all per layer (synchronous schedules only).
        lr_scaling: ``"thesis"`` (Δ = η/B Σ_b) or ``"paper"`` (Δ = η/√(fan-in · B) Σ_b, the
            normalisation of the arXiv 2510.11984 code, fan-in N for J and the readout, d for
            W_in; weight decay then uses η/√fan-in).
        readout: ``"cross_entropy"`` (trained by autograd with a torch optimizer, lr
            ``readout_lr``) or ``"perceptron"`` (one-vs-all with margin, in
            :meth:`local_update`).
        readout_lr: learning rate of the readout.
        readout_margin: margin of the perceptron readout.
        readout_targets: (true class, other classes) targets of the perceptron readout;
            ±1 by default. The arXiv 2510.11984 code effectively uses (2.5, −0.79): its
            label units are rescaled in place before the update.
        check_inputs: validate x and y on every call (one host sync each).
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
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden", hidden),
                            ("num_layers", num_layers), ("num_classes", num_classes),
                            ("max_sweeps", max_sweeps)):
            checks.at_least(name, value, 1)
        for name, value in (("lr", lr), ("lr_in", lr_in), ("weight_decay", weight_decay),
                            ("readout_lr", readout_lr), ("sparsity_threshold", sparsity_threshold)):
            checks.at_least(name, value, 0.0)
        self.schedule = checks.one_of("schedule", schedule, SCHEDULES)
        self.state_encoding = checks.one_of("state_encoding", state_encoding, ("pm1", "01"))
        self.input_coupling = checks.one_of("input_coupling", input_coupling, ("identity", "dense"))
        self.protocol = checks.one_of("protocol", protocol, ("thesis", "steering"))
        self.init_state = checks.one_of("init_state", init_state, ("zeros", "input"))
        self.lr_scaling = checks.one_of("lr_scaling", lr_scaling, ("thesis", "paper"))
        self.readout_rule = checks.one_of("readout", readout, ("cross_entropy", "perceptron"))
        if input_coupling == "identity" and in_features > hidden:
            raise ValueError(
                f"in_features={in_features} > hidden={hidden}: the identity input needs d <= N; "
                f"use input_coupling='dense'"
            )
        if input_coupling == "identity" and lr_in:
            raise ValueError(f"lr_in={lr_in} needs input_coupling='dense' (nothing to learn)")
        if free_sweeps is not None:
            if protocol != "steering":
                raise ValueError("free_sweeps is only used with protocol='steering'")
            checks.at_least("free_sweeps", free_sweeps, 1)
        if warmup_sweeps and protocol != "steering":
            raise ValueError("warmup_sweeps is only used with protocol='steering'")
        checks.at_least("warmup_sweeps", warmup_sweeps, 0)
        if inference_sweeps is not None:
            checks.at_least("inference_sweeps", inference_sweeps, 1)
        if sparsity_threshold and state_encoding != "01":
            raise ValueError("sparsity_threshold (γ) applies to state_encoding='01' only")
        if k_winners is not None:
            if not 1 <= k_winners <= hidden:
                raise ValueError(f"k_winners={k_winners} must be in [1, hidden={hidden}]")
            if not schedule.endswith("_sync"):
                raise ValueError(f"k_winners needs a synchronous schedule, got {schedule!r}")
        if readout != "perceptron" and (readout_margin or tuple(readout_targets) != (1.0, -1.0)):
            raise ValueError("readout_margin and readout_targets are only used with readout='perceptron'")
        if len(readout_targets) != 2 or not readout_targets[0] > 0 > readout_targets[1]:
            raise ValueError(
                f"readout_targets={readout_targets!r}; expected (positive, negative) floats"
            )

        self.in_features, self.hidden = in_features, hidden
        self.num_layers, self.num_classes = num_layers, num_classes
        self.j_d, self.lambda_in, self.lambda_out = float(j_d), float(lambda_in), float(lambda_out)
        self.lambda_left = checks.per_layer("lambda_left", lambda_left, num_layers - 1)
        self.lambda_right = checks.per_layer("lambda_right", lambda_right, num_layers - 1)
        self.lr, self.lr_in, self.weight_decay = float(lr), float(lr_in), float(weight_decay)
        self.robustness, self.max_sweeps = float(robustness), int(max_sweeps)
        self.free_sweeps = int(free_sweeps or max_sweeps)
        self.warmup_sweeps = int(warmup_sweeps)
        self.inference_sweeps = int(inference_sweeps or max_sweeps)
        self.sparsity_threshold, self.k_winners = float(sparsity_threshold), k_winners
        self.readout_lr, self.readout_margin = float(readout_lr), float(readout_margin)
        self.readout_targets = (float(readout_targets[0]), float(readout_targets[1]))
        self.check_inputs = check_inputs

        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else int(torch.randint(2**62, ())))
        J = torch.randn(num_layers, hidden, hidden, generator=self.generator) / math.sqrt(hidden)
        J.diagonal(dim1=1, dim2=2).zero_()
        self.register_buffer("J", J)
        self.register_buffer("W_back", torch.randn(hidden, num_classes, generator=self.generator))
        if input_coupling == "dense":
            W_in = torch.randn(hidden, in_features, generator=self.generator)
            self.register_buffer("W_in", W_in / math.sqrt(in_features))
        else:
            self.W_in = None
        self.readout = nn.Linear(hidden, num_classes, bias=False)
        with torch.no_grad():
            W_out = torch.randn(num_classes, hidden, generator=self.generator) / math.sqrt(hidden)
            self.readout.weight.copy_(W_out)

    # ----------------------------------------------------------------------------- drives
    def input_field(self, x: Tensor) -> Tensor:
        """λ_IN x̃ (B, N): x zero-padded to N (identity) or projected by W_in (dense)."""
        if self.W_in is None:
            return self.lambda_in * F.pad(x, (0, self.hidden - self.in_features))
        return self.lambda_in * (x @ self.W_in.T)

    def label_field(self, y: Tensor) -> Tensor:
        """λ_OUT W_back y (B, N) for class indices y."""
        return self.lambda_out * self.W_back.T[y]

    def _couplings(self, feedback: bool) -> Couplings:
        left = (0.0,) + self.lambda_left
        right = (self.lambda_right if feedback else (0.0,) * (self.num_layers - 1)) + (0.0,)
        return Couplings(self.J, self.j_d, left, right)

    def _drive(self, input_field: Tensor, y: Tensor | None, couplings: Couplings) -> Drive:
        label = self.label_field(y) if y is not None else None
        threshold = None
        if self.state_encoding == "01":
            if self.W_in is None:
                ones = input_field.new_ones(self.in_features)
                row_sums = F.pad(ones, (0, self.hidden - self.in_features))
            else:
                row_sums = self.W_in.sum(dim=1)
            threshold = zero_one_thresholds(
                self.J, self.j_d, couplings.lambda_left, couplings.lambda_right,
                self.lambda_in * row_sums, self.sparsity_threshold,
            )
        return Drive(input_field, label, threshold)

    def _final_feedback(self, y: Tensor | None) -> bool:
        """Whether the last relaxation phase for (x, y) runs with the label feedback on."""
        return y is not None and self.protocol == "thesis"

    def _check(self, x: Tensor, y: Tensor | None) -> None:
        if self.check_inputs:
            checks.binary_input(x, self.in_features, self.state_encoding)
            if y is not None:
                checks.class_labels(y, x.shape[0], self.num_classes)

    # ----------------------------------------------------------------------------- dynamics
    def fields(self, states: Tensor, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Fields (B, L, N) of ``states`` (thesis eq. 6.1; for ``"01"`` with κ + γ subtracted).

        Uses the feedback of the last relaxation phase :meth:`relax` runs for (x, y): with
        ``y`` and the thesis protocol, label and rightward fields on; otherwise (inference,
        or the free phase of the steering protocol) off. A converged state s satisfies
        ``s == activation(fields(s, x, y))``.
        """
        self._check(x, y)
        checks.relaxed_states(states, x.shape[0], self.num_layers, self.hidden)
        feedback = self._final_feedback(y)
        couplings = self._couplings(feedback)
        drive = self._drive(self.input_field(x.to(self.J.dtype)), y if feedback else None, couplings)
        return fields(states, couplings, drive)

    def _run(
        self, states: Tensor, input_field: Tensor, y: Tensor | None, max_sweeps: int
    ) -> Relaxation:
        couplings = self._couplings(y is not None)
        return relax(
            states, couplings, self._drive(input_field, y, couplings), max_sweeps, self.schedule,
            self.state_encoding, self.k_winners, self.generator,
        )

    def initial_states(self, x: Tensor) -> Tensor:
        """Initial state (B, L, N): zeros, or every layer at the activation of λ_IN x̃
        (computed on the ±1 image of x, so both encodings start from the same pattern)."""
        states = x.new_zeros(x.shape[0], self.num_layers, self.hidden)
        if self.init_state == "input":
            states[:] = activate(self.input_field(self._pm1(x)), self.state_encoding)[:, None]
        return states

    @torch.no_grad()
    def relax(self, x: Tensor, y: Tensor | None = None) -> Relaxation:
        """Relax to a fixed point under input ``x`` (B, d) and, for training, labels ``y`` (B,).

        ``y=None`` is inference: no label and no rightward fields (thesis Alg. 2). With
        ``protocol="steering"`` and labels, the feedback phase is followed by a free phase
        from its final state; the returned sweeps add up both phases and ``converged``
        refers to the free phase.
        """
        self._check(x, y)
        x = x.to(self.J.dtype)
        states, input_field = self.initial_states(x), self.input_field(x)
        if y is None:
            return self._run(states, input_field, None, self.inference_sweeps)
        if self.protocol == "thesis":
            return self._run(states, input_field, y, self.max_sweeps)
        sweeps = torch.zeros_like(y)
        if self.warmup_sweeps:
            warmup = self._run(states, input_field, None, self.warmup_sweeps)
            states, sweeps = warmup.states, warmup.sweeps
        clamped = self._run(states, input_field, y, self.max_sweeps)
        free = self._run(clamped.states, input_field, None, self.free_sweeps)
        return free._replace(sweeps=sweeps + clamped.sweeps + free.sweeps)

    # ----------------------------------------------------------------------------- learning
    def _scale(self, lr: float, fan_in: int, batch: int) -> tuple[float, float]:
        """(per-sample delta scale, decay learning rate) under ``lr_scaling``."""
        if self.lr_scaling == "thesis":
            return lr / batch, lr
        return lr / math.sqrt(fan_in * batch), lr / math.sqrt(fan_in)

    def _pm1(self, t: Tensor) -> Tensor:
        return t if self.state_encoding == "pm1" else 2.0 * t - 1.0

    @torch.no_grad()
    def local_update(
        self, relaxation: Relaxation, x: Tensor, y: Tensor, reduce: Reduce | None = None
    ) -> dict[str, Tensor]:
        """Apply the perceptron rule (thesis eq. 6.3 / Alg. 3) at the relaxed states.

        Updates ``J`` (and ``W_in`` when dense; the readout too when ``readout="perceptron"``)
        in place. ``reduce`` maps every delta before it is applied, e.g. a mean across
        data-parallel processes. For ``"01"`` the rule acts on the ±1 images 2z − 1 of the
        states and inputs. Returns statistics: ``unstable_fraction`` (L,) per layer and, for
        the perceptron readout, ``readout_unstable_fraction``.
        """
        self._check(x, y)
        batch = x.shape[0]
        checks.relaxed_states(relaxation.states, batch, self.num_layers, self.hidden)
        states, x_pm = self._pm1(relaxation.states), self._pm1(x.to(self.J.dtype))
        scale, decay_lr = self._scale(self.lr, self.hidden, batch)
        scale_in, _ = self._scale(self.lr_in, self.in_features, batch)
        delta = perceptron_delta(
            states, self._couplings(False), self.input_field(x_pm), self.robustness, scale,
            x_pm if self.W_in is not None else None, scale_in,
        )
        reduce = reduce or (lambda t: t)
        stats = {"unstable_fraction": delta.unstable.float().mean(dim=(0, 2))}
        decay_and_add(self.J, reduce(delta.delta_J), decay_lr, self.weight_decay)
        if delta.delta_W_in is not None:
            self.W_in.add_(reduce(delta.delta_W_in))
        if self.readout_rule == "perceptron":
            out_scale, out_decay_lr = self._scale(self.readout_lr, self.hidden, batch)
            delta_out, unstable = readout_perceptron_delta(
                relaxation.states[:, -1], y, self.readout.weight, out_scale, self.readout_margin,
                self.readout_targets,
            )
            decay_and_add(self.readout.weight, reduce(delta_out), out_decay_lr, self.weight_decay)
            stats["readout_unstable_fraction"] = unstable.float().mean()
        return stats

    # ----------------------------------------------------------------------------- inference
    def features(self, x: Tensor) -> Tensor:
        """Last-layer fixed point s^L (B, N) reached without the label."""
        return self.relax(x).states[:, -1]

    def forward(self, x: Tensor) -> Tensor:
        """Logits W_out s^L (B, C) of the inference relaxation."""
        return self.readout(self.features(x))

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class MLCMFeatures(nn.Module):
    """Wraps an :class:`MLCM` as a feature extractor: x (B, d) → s^L (B, N).

    E.g. ``nn.Sequential(MLCMFeatures(model), nn.Linear(model.hidden, 10))``.
    """

    def __init__(self, model: MLCM) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.features(x)
