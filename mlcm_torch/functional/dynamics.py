"""Zero-temperature dynamics of the MLCM: one sweep per schedule and the relaxation loop.

The four schedules of thesis §6.2.1:

``layer_sequential_sync`` (default)
    layers 1..L in order, each layer updated at once from the freshest neighbours.
``layer_independent_sync``
    every layer at once, from the previous state.
``layer_sequential_async``
    layers 1..L in order; inside a layer one neuron at a time, in a random order.
``layer_independent_async``
    one neuron at a time over all L·N neurons, in a random order.

Asynchronous sweeps loop over neurons and are vectorised over the batch; the random order
is shared by the samples of a batch and drawn afresh each sweep from ``generator``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from mlcm_torch.functional.fields import Couplings, Drive, activate, fields, layer_fields

SCHEDULES = (
    "layer_sequential_sync",
    "layer_independent_sync",
    "layer_sequential_async",
    "layer_independent_async",
)


class Relaxation(NamedTuple):
    """Result of a relaxation, per sample.

    ``states`` (B, L, N): the last state reached. ``sweeps`` (B,): sweeps run on the sample,
    the last of them being the sweep that changed nothing when ``converged``.
    ``converged`` (B,) bool: True only when a whole sweep left the state unchanged, i.e.
    ``states`` is a fixed point of the dynamics; a sample that hit ``max_sweeps`` first is
    False and its state is not a fixed point.
    """

    states: Tensor
    sweeps: Tensor
    converged: Tensor

    def activity(self, encoding: str = "pm1") -> Tensor:
        """Per-layer activity δ^l (L,): fraction of active neurons (+1 or 1), over the batch."""
        active = self.states > 0 if encoding == "pm1" else self.states > 0.5
        return active.float().mean(dim=(0, 2))

    def not_converged_fraction(self) -> Tensor:
        """Fraction of samples that did not reach a fixed point (scalar tensor)."""
        return (~self.converged).float().mean()


def sweep_sync(
    states: Tensor,
    couplings: Couplings,
    drive: Drive,
    encoding: str,
    sequential: bool = True,
    k_winners: int | None = None,
) -> Tensor:
    """One synchronous sweep; returns the new states (the input is not modified).

    ``sequential``: layer-sequential (each layer sees the already-updated layer before it)
    or layer-independent (all layers from the previous state).
    """
    if not sequential:
        return activate(fields(states, couplings, drive), encoding, k_winners)
    new = states.clone()
    for layer in range(states.shape[1]):
        new[:, layer] = activate(layer_fields(new, layer, couplings, drive), encoding, k_winners)
    return new


def sweep_async(
    states: Tensor,
    couplings: Couplings,
    drive: Drive,
    encoding: str,
    sequential: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One asynchronous sweep: every neuron updated once, one at a time, in a random order.

    ``sequential``: layers in order with a random order inside each layer; otherwise one
    random order over all L·N neurons. The order is drawn on the CPU from ``generator``.
    """
    num_layers, n = states.shape[1], states.shape[2]
    if sequential:
        order = [
            (layer, int(i))
            for layer in range(num_layers)
            for i in torch.randperm(n, generator=generator)
        ]
    else:
        order = [divmod(int(k), n) for k in torch.randperm(num_layers * n, generator=generator)]
    new = states.clone()
    for layer, i in order:
        h = layer_fields(new, layer, couplings, drive, slice(i, i + 1))
        new[:, layer, i : i + 1] = activate(h, encoding)
    return new


def sweep(
    states: Tensor,
    couplings: Couplings,
    drive: Drive,
    schedule: str,
    encoding: str,
    k_winners: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One sweep of ``schedule`` (one of :data:`SCHEDULES`)."""
    sequential = schedule.startswith("layer_sequential")
    if schedule.endswith("_sync"):
        return sweep_sync(states, couplings, drive, encoding, sequential, k_winners)
    return sweep_async(states, couplings, drive, encoding, sequential, generator)


def relax(
    states: Tensor,
    couplings: Couplings,
    drive: Drive,
    max_sweeps: int,
    schedule: str = "layer_sequential_sync",
    encoding: str = "pm1",
    k_winners: int | None = None,
    generator: torch.Generator | None = None,
) -> Relaxation:
    """Relax ``states`` until a whole sweep changes no neuron, per sample, or ``max_sweeps``.

    A sample whose sweep changed nothing sits at a fixed point; later sweeps leave it
    unchanged (the dynamics are deterministic given the order), so the loop stops once
    every sample has converged.
    """
    batch = states.shape[0]
    sweeps = torch.zeros(batch, dtype=torch.long, device=states.device)
    converged = torch.zeros(batch, dtype=torch.bool, device=states.device)
    for _ in range(max_sweeps):
        new = sweep(states, couplings, drive, schedule, encoding, k_winners, generator)
        changed = (new != states).flatten(1).any(dim=1)
        sweeps += ~converged
        converged |= ~changed
        states = new
        if bool(converged.all()):
            break
    return Relaxation(states, sweeps, converged)
