"""Zero-temperature dynamics of random asymmetric networks (thesis §3.1, arXiv 2510.11984).

Update rule: an unstable neuron (s_i h_i ≤ 0) flips, a stable one (s_i h_i > 0) stays, i.e.
s_i ← sign(h_i) with a zero field counted as unstable (the engine's ``flip`` tie rule; Hopfield
networks keep s_i on a zero field, ``keep``). The states left unchanged by the dynamics are
then exactly the fixed points s_i h_i > 0 for all i.

Synchronous: all neurons update at once; one step = one parallel update.
Asynchronous: neurons update one at a time in a random order drawn afresh each sweep (shared
by the whole batch); one sweep = N single-neuron updates. Both run a whole batch of M networks
× B initial states at once and freeze each sample as soon as it reaches a fixed point.

These are thin wrappers over the package's one engine, :mod:`mlcm_torch.functional`: a
:class:`~mlcm_torch.physics.networks.Network` is the one-layer :attr:`~Network.graph` whose
sweeps and relaxation loop are :func:`~mlcm_torch.functional.dynamics.sweep_sync`,
:func:`~mlcm_torch.functional.dynamics.sequential_updates` and
:func:`~mlcm_torch.functional.relax`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from tqdm.auto import tqdm

from mlcm_torch.functional import kernel
from mlcm_torch.functional.dynamics import Relaxation, relax, sequential_updates, sweep_sync
from mlcm_torch.functional.graph import Graph
from mlcm_torch.physics.networks import Network, available_memory_bytes, check_states

DYNAMICS = ("sync", "async")
BACKENDS = ("auto", "dense", "event")
_SCHEDULES = {"sync": "layer_sequential_sync", "async": "layer_sequential_async"}
"""The engine schedule of each physics dynamics (one layer: sequential and independent agree)."""
BLOCK = 32
"""Neurons per block of the block-corrected asynchronous updates (exactly sequential)."""


class DynamicsResult(NamedTuple):
    """Final states (M, B, N); steps (M, B): sweeps/steps to the fixed point, −1 if not reached;
    converged (M, B) boolean."""

    states: torch.Tensor
    steps: torch.Tensor
    converged: torch.Tensor

    @classmethod
    def from_relaxation(cls, relaxation: Relaxation) -> "DynamicsResult":
        """Steps = engine sweeps − 1 (the engine counts the final sweep that changed nothing)
        where the sample converged, −1 elsewhere."""
        steps = torch.where(relaxation.converged, relaxation.sweeps - 1, -1)
        return cls(relaxation.states, steps, relaxation.converged)


def _check_max_steps(max_steps: int) -> int:
    if isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 0:
        raise ValueError(f"max_steps must be a non-negative integer, got {max_steps!r}")
    return int(max_steps)


def update_neuron(network: Network, states: torch.Tensor, i: int, active: torch.Tensor | None = None) -> torch.Tensor:
    """Asynchronous update of neuron i in place for the whole batch (M, B, N); returns the flip mask (M, B).

    h_i = Σ_(j≠i) J_ij s_j + J_D s_i; neuron i flips where s_i h_i ≤ 0 (and `active`, if given).
    `states` must already have the network's state dtype and device (see check_states).
    """
    if not 0 <= i < network.n:
        raise ValueError(f"neuron index i must lie in [0, {network.n}), got {i}")
    before = states[:, :, i].clone()
    sequential_updates(network.graph, states, 0, torch.tensor([i]), network.phase)
    flip = states[:, :, i] != before
    if active is not None:
        flip &= active
        states[:, :, i] = torch.where(flip, states[:, :, i], before)
    return flip


def synchronous_step(network: Network, states: torch.Tensor) -> torch.Tensor:
    """One parallel update: every unstable neuron flips. Returns the new (M, B, N) states."""
    return sweep_sync(network.graph, check_states(network, states), network.phase)


def asynchronous_sweep(
    network: Network, states: torch.Tensor, order: torch.Tensor, active: torch.Tensor | None = None, block: int = BLOCK
) -> torch.Tensor:
    """One asynchronous sweep in place: neurons update one at a time in `order`; returns flips (M, B).

    Exactly sequential, vectorised by the block-field correction of the engine's
    :func:`~mlcm_torch.functional.dynamics.sequential_updates`. Samples outside `active` are
    left as they were (samples are independent, so this equals never updating them).
    """
    before = states.clone()
    sequential_updates(network.graph, states, 0, order, network.phase, block=block)
    if active is not None:
        states.copy_(torch.where(active.unsqueeze(-1), states, before))
    return (states != before).any(-1)


def run_dynamics(
    network: Network,
    initial: torch.Tensor,
    *,
    dynamics: str = "sync",
    max_steps: int = 1000,
    generator: torch.Generator | None = None,
    progress: bool = False,
    backend: str = "auto",
) -> DynamicsResult:
    """Run synchronous or asynchronous zero-temperature dynamics from a batch of initial states.

    The engine's :func:`~mlcm_torch.functional.relax` with at most `max_steps` sweeps
    (``max_steps=0``: only the fixed-point test of the initial states), the last one confirmed
    by a fixed-point test. `generator` (CPU) draws the asynchronous update orders, one random
    permutation per sweep shared by the whole batch. `progress` shows one bar for the whole run,
    advanced by the sweeps it took.

    `backend` (:data:`BACKENDS`): ``dense`` recomputes the fields each sweep (blocks of
    :data:`BLOCK` neurons per product for the asynchronous sweep) on compacted batches: each
    step only touches the initial-state columns that still hold an active sample, and the
    networks are compacted (a copy of the live couplings) once at most half of them are still
    running; int8 couplings sum packed bits, exactly. ``event`` carries the fields and corrects
    them by the neurons that flipped (:mod:`~mlcm_torch.functional.events`): every decision is
    the sign of the field evaluated in float64, where the dense path of float couplings decides
    on float32 (float64) BLAS sums — the same result unless a field lies within that rounding of
    zero (e.g. exact ties of binary couplings stored in float32, which the event backend decides
    like int8 storage). ``auto``: ``event`` for float32 couplings on the CPU with the compiled
    kernel and the memory for its copies of the couplings (12 bytes per coupling), except
    Hopfield networks (``keep_ties``); ``dense`` otherwise.
    """
    if dynamics not in DYNAMICS:
        raise ValueError(f"dynamics must be one of {DYNAMICS}, got {dynamics!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    max_steps = _check_max_steps(max_steps)
    states = check_states(network, initial)
    if backend == "auto":
        backend = "event" if _event_pays(network) else "dense"
    with tqdm(total=max_steps, disable=not progress, desc=f"{dynamics} dynamics", leave=False) as bar:
        if backend == "event":
            relaxation = _relax_event(network, states, dynamics, max_steps, generator)
        else:
            relaxation = relax(network.graph, states, network.phase, max_steps, _SCHEDULES[dynamics], generator,
                               block=BLOCK, confirm_last=True, compact=True,
                               confirm_each=dynamics == "async")
        bar.update(min(max_steps, int(relaxation.sweeps.max())) if relaxation.sweeps.numel() else 0)
    return DynamicsResult.from_relaxation(relaxation)


def _event_pays(network: Network) -> bool:
    """Whether ``auto`` picks the event backend: float32 couplings on the CPU with the kernel,
    not a Hopfield network (``keep_ties``: its Hebbian fields are often exactly zero, where the
    float32 couplings ξᵀξ/N leave rounding that the backends resolve differently), when half
    the free memory holds the event backend's copies of the couplings (Jᵀ in float32 and J in
    float64 for the first fields: 12 bytes per coupling)."""
    if (network.couplings.dtype != torch.float32 or network.keep_ties or network.device.type != "cpu"
            or kernel.library() is None):
        return False
    return 2 * 12 * network.couplings.numel() <= available_memory_bytes("cpu")


def _relax_event(network: Network, states: torch.Tensor, dynamics: str, max_steps: int,
                 generator: torch.Generator | None) -> Relaxation:
    """The event backend's relaxation: the asynchronous sweep of the whole batch of networks at
    once (one order per sweep, drawn as the dense path draws them: none for a sweep a fixed-point
    test makes unnecessary); the synchronous one network by network (the carried float32 fields
    of the synchronous event sweep take one J)."""
    # J_D per network; for float couplings rounded to the states' dtype, as the dense path adds it
    j_d = torch.as_tensor(network.j_d, dtype=torch.float64).expand(network.n_networks)
    if not network.integer:
        j_d = j_d.to(network.state_dtype).to(torch.float64)
    network = network.with_self_coupling(j_d)
    if dynamics == "async":
        return relax(network.graph, states, network.phase, max_steps, _SCHEDULES[dynamics], generator,
                     backend="event", confirm_last=True, confirm_each=True)
    (layer,), phase, parts = network.graph.layers, network.phase, []
    for m in range(network.n_networks):
        graph = Graph((layer._replace(J=network.couplings[m], j_d=float(network.j_d[m])),))
        parts.append(relax(graph, states[m], phase, max_steps, _SCHEDULES[dynamics], backend="event",
                           confirm_last=True))
    return Relaxation(*(torch.stack(values) for values in zip(*parts)))
