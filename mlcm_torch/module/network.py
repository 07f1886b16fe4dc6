"""A network of binary neurons built from layers and couplings, relaxed by the one engine of
:mod:`mlcm_torch.functional` and trained by local rules (no autograd: couplings are buffers)."""

from __future__ import annotations

import math
import weakref
from dataclasses import replace
from typing import Callable, Optional, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mlcm_torch.functional.dynamics import Relaxation, relax
from mlcm_torch.functional.dynamics import event_supported
from mlcm_torch.functional import kernel
from mlcm_torch.functional.events import Carry, EventCouplings, event_couplings
from mlcm_torch.functional.fields import activate, fields, prepare_phase, rounding_gamma, source_drive
from mlcm_torch.functional.graph import Encoding, Graph, Phase
from mlcm_torch.functional.plasticity import (
    apply_update,
    margin_couplings,
    perceptron_rule,
    readout_perceptron_rule,
)
from mlcm_torch.module import checks
from mlcm_torch.module.bounds import RowL1Bounds
from mlcm_torch.module.config import Configurable
from mlcm_torch.module.couplings import Coupling, InputCoupling
from mlcm_torch.module.layers import RecurrentLayer
from mlcm_torch.module.options import Dynamics, LrScaling, Readout

Reduce = Callable[[Tensor], Tensor]

CUDA_CHECK_EVERY = 4
"""On a GPU the relaxation tests for "all converged" (a host synchronisation) every 4 sweeps."""


class Network(Configurable, nn.Module):
    """Layers of binary neurons and the couplings between them and from the clamped input x and
    label y; relaxes to fixed points (thesis §6.2) and learns by local perceptron rules (thesis
    eq. 6.3), with a linear readout W_out s^L of the last layer.

    States are flat ``(B, total)``: layer l is ``states[:, offsets[l] : offsets[l] + N_l]``
    (:meth:`layer_states`). Build a network in Python or as a config entry (``class_path``).

    Args:
        in_features: input width d (binary inputs, ±1 or {0, 1} per ``state_encoding``).
        num_classes: C, the number of classes, or the width of the target vectors.
        layers: the recurrent layers, in order (the last one is read out).
        couplings: couplings between layers and from the input / label.
        dynamics: schedule, protocol and sweep budgets.
        readout: the readout's learning rule and options.
        state_encoding: ``pm1`` (±1) or ``01`` ({0, 1}, thesis eq. 7.1) for every layer and x.
        lr_scaling: ``thesis`` (Δ = η/B Σ_b) or ``paper`` (Δ = η/√(fan-in · B) Σ_b and weight
            decay with η/√fan-in, the normalisation of the arXiv 2510.11984 code).
        seed: seeds the couplings (drawn layers first, then couplings in order, then the
            readout) and the asynchronous update order.
        check_inputs: validate x and y on every call (one host sync each).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        layers: Sequence[RecurrentLayer],
        couplings: Sequence[Coupling] = (),
        *,
        dynamics: Dynamics = Dynamics(),
        readout: Readout = Readout(),
        state_encoding: Encoding = "pm1",
        lr_scaling: LrScaling = "thesis",
        seed: Optional[int] = None,
        check_inputs: bool = True,
    ) -> None:
        super().__init__()
        self._in_features = checks.integer_at_least("in_features", in_features, 1)
        self._num_classes = checks.integer_at_least("num_classes", num_classes, 1)
        self._state_encoding = checks.one_of("state_encoding", state_encoding, Encoding)
        self._lr_scaling = checks.one_of("lr_scaling", lr_scaling, LrScaling)
        if not layers:
            raise ValueError("layers is empty; a network needs at least one RecurrentLayer")
        self.layers = nn.ModuleList(layers)
        self.couplings = nn.ModuleList(couplings)
        self.dynamics = dynamics
        self.readout_options = readout
        self.check_inputs = bool(check_inputs)

        self.generator = torch.Generator()
        self.generator.manual_seed(seed if seed is not None else int(torch.randint(2**62, ())))
        for layer in self.layers:
            layer.build(self.generator)
        for coupling in self.couplings:
            post, pre = coupling.resolve(len(self.layers))
            pre_size = {"input": in_features, "label": num_classes}.get(pre) if isinstance(pre, str) \
                else self.layers[pre].size
            coupling.build(self.layers[post].size, pre_size, self.generator)
        hidden = self.layers[-1].size
        self.readout = nn.Linear(hidden, num_classes, bias=False)
        with torch.no_grad():
            self.readout.weight.copy_(torch.randn(num_classes, hidden, generator=self.generator) / math.sqrt(hidden))

    def _validate_structure(self, dynamics: Dynamics) -> None:
        """The checks that involve layers, couplings and dynamics together."""
        for layer in self.layers:
            if not isinstance(layer, RecurrentLayer):
                raise ValueError(f"layers must hold RecurrentLayer modules, got {type(layer).__name__}")
            if layer.gamma and self._state_encoding != "01":
                raise ValueError("sparsity_threshold (γ) applies to state_encoding='01' only")
            if layer.k_winners is not None and not dynamics.schedule.endswith("_sync"):
                raise ValueError(f"k_winners needs a synchronous schedule, got {dynamics.schedule!r}")
            if layer.tie != "plus" and dynamics.init_state == "zeros":
                raise ValueError(f"tie={layer.tie!r} decides from the current ±1 state; zero initial "
                                 f"states have none: use init_state='input'")
        for coupling in self.couplings:
            if not isinstance(coupling, Coupling):
                raise ValueError(f"couplings must hold Coupling modules, got {type(coupling).__name__}")
        if dynamics.init_state == "input":
            if not any(isinstance(c, InputCoupling) and c.resolve(len(self.layers))[0] == 0 for c in self.couplings):
                raise ValueError("init_state='input' needs an InputCoupling into the first layer")
            if len({layer.size for layer in self.layers}) != 1:
                raise ValueError("init_state='input' starts every layer at the first layer's input "
                                 "pattern: the layers need one size")

    # ------------------------------------------------------------------ options and shape
    @property
    def dynamics(self) -> Dynamics:
        return self._dynamics

    @dynamics.setter
    def dynamics(self, value: Dynamics) -> None:
        if not isinstance(value, Dynamics):
            raise ValueError(f"dynamics must be a Dynamics, got {type(value).__name__}")
        self._validate_structure(value)
        self.__dict__["_dynamics"] = value

    @property
    def readout_options(self) -> Readout:
        return self._readout_options

    @readout_options.setter
    def readout_options(self, value: Readout) -> None:
        if not isinstance(value, Readout):
            raise ValueError(f"readout must be a Readout, got {type(value).__name__}")
        self.__dict__["_readout_options"] = value

    in_features = property(lambda self: self._in_features, doc="d")
    num_classes = property(lambda self: self._num_classes, doc="C")
    state_encoding = property(lambda self: self._state_encoding)
    lr_scaling = property(lambda self: self._lr_scaling)
    sizes = property(lambda self: tuple(layer.size for layer in self.layers), doc="N_l per layer")
    num_layers = property(lambda self: len(self.layers), doc="L")

    @property
    def state_shape(self) -> tuple[int, ...]:
        """Shape of one sample's state in what :meth:`relax` returns: (total,)."""
        return (sum(self.sizes),)

    def graph(self) -> Graph:
        """The engine's view of the network (references to the buffers, no copies)."""
        encoding = self._state_encoding
        return Graph(
            tuple(layer.spec(encoding) for layer in self.layers),
            tuple(coupling.spec() for coupling in self.couplings),
            self._in_features,
            encoding,
        )

    def layer_states(self, states: Tensor, layer: int) -> Tensor:
        """States (B, N_l) of ``layer`` in flat states (B, total)."""
        return states.reshape(states.shape[0], -1)[:, self.graph().slice(layer)]

    # ------------------------------------------------------------------ dynamics
    def _check(self, x: Tensor, y: Tensor | None) -> None:
        if self.check_inputs:
            checks.binary_input(x, self._in_features, self._state_encoding)
            if y is not None:
                checks.class_labels(y, x.shape[0], self._num_classes)

    def _pm1(self, t: Tensor) -> Tensor:
        return t if self._state_encoding == "pm1" else 2.0 * t - 1.0

    def _view(self, states: Tensor) -> Tensor:
        return states.view(states.shape[0], *self.state_shape)

    def _final_feedback(self, y: Tensor | None) -> bool:
        """Whether the last relaxation phase for (x, y) runs with the feedback couplings on."""
        return y is not None and self._dynamics.protocol == "thesis"

    def initial_states(self, x: Tensor) -> Tensor:
        """Initial flat states (B, total): zeros, or every layer at the activation of the first
        layer's input drive (computed on the ±1 image of x, so both encodings start alike)."""
        states = x.new_zeros(x.shape[0], sum(self.sizes))
        if self._dynamics.init_state == "input":
            graph = self.graph()
            drive = sum(source_drive(c, self._pm1(x), graph.layers[0].size)
                        for c in graph.couplings if c.pre == "input" and c.post == 0)
            pattern = activate(drive, self._state_encoding)
            states.view(x.shape[0], len(self.layers), -1)[:] = pattern[:, None]
        return states

    def fields(self, states: Tensor, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Fields of ``states`` (thesis eq. 6.1; for ``01`` with κ + γ subtracted), shaped like
        ``states``, with the feedback of the last phase :meth:`relax` runs for (x, y): on with
        ``y`` and the thesis protocol; otherwise (inference, or the free phase of steering)
        off. A converged state s satisfies ``s == activation(fields(s, x, y))``."""
        self._check(x, y)
        checks.relaxed_states(states, x.shape[0], self.state_shape)
        feedback = self._final_feedback(y)
        x = x.to(self.layers[0].J.dtype)
        phase = prepare_phase(self.graph(), x, y if feedback else None, feedback)
        return self._view(fields(self.graph(), states.reshape(x.shape[0], -1), phase))

    def sweep_backend(self, device: torch.device, training: bool = False) -> str:
        """The sweep implementation used on ``device``: ``dynamics.backend``, with ``auto``
        resolved: event-driven on the CPU — for training relaxations (``training``) only where
        the compiled kernel runs them (synchronous schedules, float32 couplings; in PyTorch
        operations alone it is about as fast as dense there, the couplings changing every
        step) — and dense on GPUs."""
        backend, schedule = self._dynamics.backend, self._dynamics.schedule
        if backend != "auto":
            return backend
        if not event_supported(self.graph(), schedule) or device.type != "cpu":
            return "dense"
        compiled = kernel.library() is not None and schedule.endswith("_sync")
        if training and not (compiled and self.layers[0].J.dtype == torch.float32):
            return "dense"
        return "event"

    def _row_l1_bounds(self) -> RowL1Bounds:
        """The row L1 bounds of the couplings, carried across local updates (made on first use,
        not saved: a copy of the network starts with none)."""
        bounds = self.__dict__.get("_row_l1_bound_cache")
        if bounds is None:
            bounds = self.__dict__["_row_l1_bound_cache"] = RowL1Bounds()
        return bounds

    @staticmethod
    def _coupling_versions(graph: Graph) -> tuple:
        """(id, version) of every coupling tensor: changes whenever one is replaced or updated."""
        return tuple((id(t), t._version) for t in (*(spec.J for spec in graph.layers), *(c.W for c in graph.couplings))
                     if t is not None)

    def _event_couplings(self, graph: Graph, training: bool = False) -> EventCouplings:
        """What the event backend precomputes of the couplings, rebuilt only when a coupling
        changed (tensor version counters), so inference reuses it across batches; for inference
        also the CSR copies of sparse recurrent couplings and postsynaptic-major copies of J for
        the exact re-checks (not worth their cost when the couplings change every step)."""
        key = (not training, *self._coupling_versions(graph))
        cached = self.__dict__.get("_event_cache")
        if cached is None or cached[0] != key:
            cached = (key, event_couplings(graph, sparse=not training, row_l1=self._row_l1_bounds(),
                                           recheck_rows=not training))
            self.__dict__["_event_cache"] = cached
        return cached[1]

    def _run(self, graph: Graph, states: Tensor, phase: Phase, max_sweeps: int, training: bool = False,
             carry: Carry | None = None) -> Relaxation:
        backend = self.sweep_backend(states.device, training)
        prepared = self._event_couplings(graph, training) if backend == "event" else None
        check_every = 1 if states.device.type == "cpu" else CUDA_CHECK_EVERY
        return relax(graph, states, phase, max_sweeps, self._dynamics.schedule, self.generator,
                     backend=backend, prepared=prepared, check_every=check_every, carry=carry)

    @staticmethod
    def _input_key(graph: Graph) -> tuple:
        return tuple((id(c.W), c.W._version if c.W is not None else None, c.strength)
                     for c in graph.couplings if c.pre == "input")

    def _kept_drives(self, graph: Graph, x: Tensor) -> tuple[Tensor | None, ...] | None:
        """The source drives of the last relaxation's phases when it ran on this very ``x``
        (the same tensor, unchanged) with the same input couplings, else None: the local update
        after a relaxation reuses its input drives instead of recomputing the same product."""
        kept = self.__dict__.get("_drive_cache")
        if kept is None or kept[0]() is not x or kept[1] != x._version or kept[2] != self._input_key(graph):
            return None
        return kept[3]

    def _kept_fields(self, graph: Graph, states: Tensor) -> tuple[list[Tensor | None], list[Tensor | None]] | None:
        """The fields F^l and their error bounds that the last training relaxation's last phase
        carried (event backend) when it ended in these very ``states`` with the couplings
        unchanged since, for the ±1 layers whose F^l holds the margin's terms from layers (every
        margin coupling from a layer active in that phase) and otherwise only one-to-one
        couplings from layers (the thesis protocol's feedback λ_R s^(l+1)): those are subtracted
        in float64 (each term λ s_j exact, each subtraction within one rounding, added to the
        bound). None when no layer qualifies."""
        cached = self.__dict__.get("_field_cache")
        kept = cached[0].state if cached is not None else None
        if (kept is None or cached[1] != self._coupling_versions(graph) or kept.states.shape != states.shape
                or not torch.equal(kept.states, states)):
            return None
        fields, errors = [], []
        for layer, spec in enumerate(graph.layers):
            active = {k for k, c in graph.incoming(layer, cached[0].phase.feedback) if not isinstance(c.pre, str)
                      and c.strength != 0}
            margin = {k for k, c in margin_couplings(graph, layer) if not isinstance(c.pre, str)}
            extra = [graph.couplings[k] for k in sorted(active - margin)]
            usable = (spec.encoding == "pm1" and spec.J is not None and kept.errors[layer] is not None
                      and kept.fields[layer] is not None and margin <= active and all(c.W is None for c in extra))
            field, error = (kept.fields[layer], kept.errors[layer]) if usable else (None, None)
            if usable and extra:
                reach = field.abs().to(torch.float64) + sum(abs(c.strength) for c in extra)  # |F| + Σ|λ|
                field = field.to(torch.float64)
                for coupling in extra:
                    pre = states[..., graph.slice(coupling.pre)].to(torch.float64)
                    field = field - coupling.strength * F.pad(pre, (0, spec.size - pre.shape[-1]))
                error = error + rounding_gamma(len(extra), torch.float64) * reach
            fields.append(field)
            errors.append(error)
        return (fields, errors) if any(f is not None for f in fields) else None

    @torch.no_grad()
    def relax_phases(self, x: Tensor, y: Tensor | None = None) -> dict[str, Relaxation]:
        """Every phase :meth:`relax` runs, in order, as flat-state relaxations: ``free`` alone
        for inference; ``clamped`` for the thesis protocol; ``warmup`` (if any), ``clamped``
        and ``free`` for steering. Each phase starts from the previous one's final state."""
        self._check(x, y)
        x = x.to(self.layers[0].J.dtype)
        graph, dynamics = self.graph(), self._dynamics
        states = self.initial_states(x)
        self.__dict__["_field_cache"] = None
        free = prepare_phase(graph, x, None, False)
        self.__dict__["_drive_cache"] = None if x.is_inference() else (
            weakref.ref(x), x._version, self._input_key(graph), free.drives)  # inference tensors have no version
        if y is None:
            return {"free": self._run(graph, states, free, dynamics.inference_budget)}
        clamped = prepare_phase(graph, x, y, True, like=free)
        phases, carry = {}, Carry()  # the event backend carries its fields from phase to phase and to the margins
        steering = dynamics.protocol != "thesis"
        if steering and dynamics.warmup_sweeps:
            phases["warmup"] = self._run(graph, states, free, dynamics.warmup_sweeps, True, carry)
            states = phases["warmup"].states
        phases["clamped"] = self._run(graph, states, clamped, dynamics.max_sweeps, True, carry)
        if steering:
            phases["free"] = self._run(graph, phases["clamped"].states, free, dynamics.free_budget, True, carry)
        self.__dict__["_field_cache"] = (carry, self._coupling_versions(graph))
        return phases

    @torch.no_grad()
    def relax(self, x: Tensor, y: Tensor | None = None) -> Relaxation:
        """Relax to a fixed point under input ``x`` (B, d) and, for training, labels ``y``
        ((B,) class indices or (B, C) target vectors).

        ``y=None`` is inference: no label and no feedback couplings (thesis Alg. 2). The
        result holds the final state and ``converged`` of the last phase and the sweeps of all
        phases added up (see :meth:`relax_phases`).
        """
        phases = list(self.relax_phases(x, y).values())
        last = phases[-1]
        sweeps = phases[0].sweeps
        for phase in phases[1:]:
            sweeps = sweeps + phase.sweeps
        return Relaxation(self._view(last.states), sweeps, last.converged)

    # ------------------------------------------------------------------ learning
    def _scale(self, lr: float, fan_in: float, batch: int) -> tuple[float, float]:
        """(delta scale, decay learning rate) under ``lr_scaling``."""
        if self._lr_scaling == "thesis":
            return lr / batch, lr
        return lr / math.sqrt(fan_in * batch), lr / math.sqrt(fan_in)

    @torch.no_grad()
    def local_update(
        self, relaxation: Relaxation, x: Tensor, y: Tensor, reduce: Reduce | None = None,
        lr_scale: float = 1.0, readout_lr_scale: float = 1.0,
    ) -> dict[str, Tensor]:
        """Apply the perceptron rule (thesis eq. 6.3 / Alg. 3) at the relaxed states.

        Every learnable tensor (J of a layer with ``lr`` > 0, a coupling with ``lr`` > 0, the
        perceptron readout) learns by the rule of its postsynaptic neurons and its own learning
        rate and weight decay; sparse masks stay. ``reduce`` maps every delta before it is
        applied, e.g. a mean across data-parallel processes. A {0, 1} network learns on the
        ±1 images 2z − 1. ``lr_scale`` multiplies the learning rates of J and of the couplings,
        ``readout_lr_scale`` that of the perceptron readout (delta and weight decay alike; a
        schedule's factor). Returns ``unstable_fraction`` (L,) and, for the perceptron readout,
        ``readout_unstable_fraction`` and ``readout_logits`` (B, C): W_out s^L before its update.
        """
        self._check(x, y)
        batch = x.shape[0]
        checks.relaxed_states(relaxation.states, batch, self.state_shape)
        flat = relaxation.states.reshape(batch, -1)
        states, x_pm = self._pm1(flat), self._pm1(x.to(flat.dtype))
        graph = self.graph()
        bounds = self._row_l1_bounds()
        rule = perceptron_rule(
            graph, states, x_pm, [layer.robustness for layer in self.layers],
            [layer.lr > 0 for layer in self.layers], [c.lr > 0 for c in self.couplings],
            self._kept_drives(graph, x_pm), bounds, self._kept_fields(graph, flat),
        )
        self.__dict__["_field_cache"] = None
        for module, delta in (*zip(self.layers, rule.layers), *zip(self.couplings, rule.couplings)):
            if delta is None:
                continue
            weight = module.J if isinstance(module, RecurrentLayer) else module.W
            scale, decay_lr = self._scale(module.lr * lr_scale, module.fan_in, batch)
            version = weight._version
            apply_update(weight, delta, scale, decay_lr, module.weight_decay, module.mask, reduce)
            if reduce is None:  # a reduced delta is not postᵀ pre: the next pass recomputes the bound
                bounds.advance(weight, version, delta.post, delta.pre, scale, 1.0 - decay_lr * module.weight_decay)
        stats = {"unstable_fraction": torch.stack([u.float().mean() for u in rule.unstable])}
        options = self._readout_options
        if options.rule == "perceptron":
            out_scale, out_decay_lr = self._scale(options.lr * readout_lr_scale, self.layers[-1].size, batch)
            features = self.layer_states(flat, len(self.layers) - 1)
            logits = features @ self.readout.weight.detach().T
            delta_out, unstable = readout_perceptron_rule(
                features, y, self.readout.weight, options.margin, options.targets, logits,
            )
            apply_update(self.readout.weight, delta_out, out_scale, out_decay_lr, options.weight_decay, None, reduce)
            stats["readout_unstable_fraction"] = unstable.float().mean()
            stats["readout_logits"] = logits
        return stats

    # ------------------------------------------------------------------ inference
    def features(self, x: Tensor) -> Tensor:
        """Fixed point of the last layer (B, N_L) reached without the label."""
        return self.layer_states(self.relax(x).states, len(self.layers) - 1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits W_out s^L (B, C) of the inference relaxation."""
        return self.readout(self.features(x))

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        state.pop("_drive_cache", None)  # a weak reference to the last input: a copy starts without it
        state.pop("_field_cache", None)
        return state

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class MLCMFeatures(nn.Module):
    """Wraps a network as a feature extractor: x (B, d) → s^L (B, N_L), e.g.
    ``nn.Sequential(MLCMFeatures(model), nn.Linear(model.sizes[-1], 10))``."""

    def __init__(self, model: Network) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.features(x)
