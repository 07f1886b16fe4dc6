"""The engine's description of a network: layers of binary neurons and the couplings between
them, as plain tensors (no modules, no autograd).

A :class:`Graph` is what every network of the package hands to the dynamics: the MLCM chain
(thesis eq. 6.1), the one-layer network of arXiv 2510.11984, sparse and parallel variants, and
the random networks of the physics (thesis eq. 3.1). States of all layers live in one flat
tensor ``(*batch, total)``; layer ``l`` is the slice ``offsets[l] : offsets[l] + size``.

Terms of the field of layer ``l`` (thesis eq. 6.1 generalised), in this order::

    h^l = J^l s^l / unit + J_D s^l + Σ_(couplings into l, forward) + Σ_(couplings into l, feedback) − θ^l

A coupling is one-to-one (λ s^pre, zero-padded when the presynaptic layer is narrower) or
dense (λ W s^pre); its presynaptic side is a layer, the input ``x`` or the label/target ``y``.
*Feedback* couplings (the thesis' rightward neighbours, the label) act only in the clamped
phase; the others in every phase. The perceptron margin of the learning rule (eq. 6.3) counts
the couplings marked ``margin`` (leftward and input ones), never J_D.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Union, get_args

from torch import Tensor

Encoding = Literal["pm1", "01"]
"""``pm1``: states ±1. ``01``: states {0, 1} with thresholds κ + γ (thesis eq. 7.1)."""

Tie = Literal["plus", "flip", "keep"]
"""The neuron's decision on a zero field: ``plus`` sign(0) = +1 (the MLCM); ``flip`` a neuron
is stable only when s_i h_i > 0, so a zero field flips it (the physics of thesis ch. 3);
``keep`` a zero field keeps s_i (the Hopfield convention)."""

Schedule = Literal[
    "layer_sequential_sync",
    "layer_independent_sync",
    "layer_sequential_async",
    "layer_independent_async",
]
"""The four schedules of thesis §6.2.1 (see :mod:`mlcm_torch.functional.dynamics`)."""

SCHEDULES: tuple[str, ...] = get_args(Schedule)
ENCODINGS: tuple[str, ...] = get_args(Encoding)
TIES: tuple[str, ...] = get_args(Tie)

Source = Literal["input", "label"]
Pre = Union[int, Source]


class Layer(NamedTuple):
    """One layer of ``size`` binary neurons.

    ``J``: recurrent couplings ``(*nets, N, N)`` with zero diagonal, rows postsynaptic, or
    ``None``; a leading ``nets`` dimension batches independent networks (the physics runs M
    networks at once, states ``(M, B, total)``). int8 couplings hold signs and give exact
    integer fields. ``j_d``: self-coupling J_D, a float or a ``(*nets,)`` tensor. ``unit``:
    physical couplings are ``J / unit`` (√N for int8 signs). ``gamma``: sparsity threshold γ
    of the {0, 1} encoding. ``k_winners``: k-winners-take-all (synchronous schedules).
    """

    size: int
    J: Tensor | None = None
    j_d: float | Tensor = 0.0
    unit: float = 1.0
    encoding: Encoding = "pm1"
    tie: Tie = "plus"
    gamma: float = 0.0
    k_winners: int | None = None


class Coupling(NamedTuple):
    """A coupling into layer ``post`` from ``pre`` (a layer index, ``"input"`` or ``"label"``).

    ``W is None``: one-to-one, λ s^pre_i (zero-padded when the presynaptic side is narrower).
    Otherwise λ W s^pre with ``W`` of shape ``(N_post, N_pre)``. ``feedback``: active only in
    the clamped phase. ``margin``: part of the perceptron margin of the postsynaptic neurons
    (thesis eq. 6.3 counts the leftward and input couplings, never the rightward ones or the
    label).
    """

    post: int
    pre: Pre
    strength: float
    W: Tensor | None = None
    feedback: bool = False
    margin: bool = True


class Graph(NamedTuple):
    """Layers and couplings. ``couplings`` are kept in declaration order; within each layer
    the forward terms are added before the feedback terms (see the module docstring)."""

    layers: tuple[Layer, ...]
    couplings: tuple[Coupling, ...] = ()
    in_features: int = 0
    input_encoding: Encoding = "pm1"

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(layer.size for layer in self.layers)

    @property
    def offsets(self) -> tuple[int, ...]:
        out, total = [], 0
        for size in self.sizes:
            out.append(total)
            total += size
        return tuple(out)

    @property
    def total(self) -> int:
        return sum(self.sizes)

    def slice(self, layer: int) -> slice:
        start = self.offsets[layer]
        return slice(start, start + self.layers[layer].size)

    def incoming(self, layer: int, feedback: bool) -> list[tuple[int, Coupling]]:
        """(index, coupling) of the couplings into ``layer`` active in a phase: the forward
        ones, then (with ``feedback``) the feedback ones, each in declaration order."""
        forward = [(k, c) for k, c in enumerate(self.couplings) if c.post == layer and not c.feedback]
        if not feedback:
            return forward
        return forward + [(k, c) for k, c in enumerate(self.couplings) if c.post == layer and c.feedback]

    def incoming_from(self, layer: int, feedback: bool) -> list[tuple[int, Coupling]]:
        """(index, coupling) of the couplings from ``layer`` active in a phase."""
        return [(k, c) for k, c in enumerate(self.couplings) if c.pre == layer and (feedback or not c.feedback)]


class Phase(NamedTuple):
    """What one relaxation phase holds fixed: whether feedback couplings act, the external
    drives λ W x / λ W_back y per coupling (``None`` for couplings between layers), the
    {0, 1} thresholds κ + γ per layer (``None`` for ±1 layers), and the raw sources x and y
    (y only when the label acts) from which the drives were computed."""

    feedback: bool
    drives: tuple[Tensor | None, ...]
    thresholds: tuple[Tensor | None, ...]
    x: Tensor | None = None
    y: Tensor | None = None
