"""Zero-temperature dynamics: one sweep per schedule and the one bounded relaxation loop.

The four schedules of thesis §6.2.1:

``layer_sequential_sync`` (default)
    layers in order, each layer updated at once from the freshest neighbours.
``layer_independent_sync``
    every layer at once, from the previous state.
``layer_sequential_async``
    layers in order; inside a layer one neuron at a time, in a random order.
``layer_independent_async``
    one neuron at a time over all neurons of all layers, in a random order.

Asynchronous sweeps are exactly sequential and vectorised over the batch; the random order is
shared by the samples of a batch and drawn afresh each sweep from ``generator`` (on the CPU).
Consecutive neurons of one layer form blocks of at most ``block``: their fields come from one
matmul at the block start and are corrected after each update by the recurrent couplings of
the neurons that changed (with ``block=1`` every field is computed afresh).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor

from mlcm_torch.functional.events import (
    Carry,
    EventCouplings,
    async_event_sweep,
    event_couplings,
    event_sweep,
    exact_constants,
    exact_fixed,
    kernel_layers,
    kernel_relax,
    quiet_masks,
    start_exact,
)
from mlcm_torch.functional.events import constants as event_constants
from mlcm_torch.functional.fields import fields, is_fixed_point, layer_activate, layer_fields
from mlcm_torch.functional.graph import Graph, Layer, Phase
from mlcm_torch.functional import kernel
from mlcm_torch.functional.packed import network_batches, sign_async

NewState = Callable[[int, Tensor, Tensor], Tensor]
"""``new_state(k, s_i, h_i)``: the new state of the k-th neuron of an order, from its current
state and its field (both (*batch,))."""


class Relaxation(NamedTuple):
    """Result of a relaxation, per sample.

    ``states``: the last state reached, flat ``(*batch, total)`` (the MLCM chain shows it as
    ``(B, L, N)``). ``sweeps`` (*batch,): sweeps run on the sample, the last of them being the
    sweep that changed nothing when ``converged``. ``converged`` (*batch,) bool: True only when
    ``states`` is a fixed point of the dynamics; a sample that hit the sweep budget first is
    False and its state is not a fixed point.
    """

    states: Tensor
    sweeps: Tensor
    converged: Tensor

    def activity(self, encoding: str = "pm1", sizes: Sequence[int] | None = None) -> Tensor:
        """Per-layer activity δ^l (L,): the fraction of active neurons (+1 or 1) over the batch.
        ``states`` of shape (B, L, N) need no ``sizes``; flat states are split by ``sizes``."""
        active = (self.states > (0.0 if encoding == "pm1" else 0.5)).float()
        if sizes is None:
            return active.mean(dim=(0, 2))
        flat = active.reshape(*self.sweeps.shape, -1)
        if len(set(sizes)) == 1:  # equal layers: one reduction
            return flat.reshape(-1, len(sizes), sizes[0]).mean(dim=(0, 2))
        return torch.stack([part.mean() for part in flat.split(list(sizes), dim=-1)])

    def not_converged_fraction(self) -> Tensor:
        """Fraction of samples that did not reach a fixed point (scalar tensor)."""
        return (~self.converged).float().mean()


def sweep_sync(graph: Graph, states: Tensor, phase: Phase, sequential: bool = True) -> Tensor:
    """One synchronous sweep; returns the new states (the input is not modified).

    ``sequential``: layer-sequential (each layer sees the already-updated layers before it)
    or layer-independent (all layers from the previous state).
    """
    if len(graph.layers) == 1:
        theta = _threshold(graph, 0, phase, states, states.dim())
        if theta is not None:
            decide = _threshold_decider(theta, graph.layers[0].tie)
            return decide(0, states, layer_fields(graph, states, 0, phase, self_coupling=False))
        return layer_activate(graph.layers[0], layer_fields(graph, states, 0, phase), states)
    if not sequential:
        h = fields(graph, states, phase)
        parts = [
            layer_activate(spec, h[..., graph.slice(layer)], states[..., graph.slice(layer)])
            for layer, spec in enumerate(graph.layers)
        ]
        return torch.cat(parts, dim=-1)
    new = states.clone()
    for layer, spec in enumerate(graph.layers):
        part = graph.slice(layer)
        new[..., part] = layer_activate(spec, layer_fields(graph, new, layer, phase), new[..., part])
    return new


def _decide(spec: Layer) -> NewState:
    return lambda k, s, h: layer_activate(spec, h, s)


def sequential_updates(
    graph: Graph,
    states: Tensor,
    layer: int,
    order: Tensor,
    phase: Phase,
    new_state: NewState | None = None,
    block: int = 1,
) -> None:
    """Update neurons ``order`` of ``layer`` one at a time, in place: s_i ← new_state(k, s_i,
    h_i) for the k-th neuron of the order (default: the layer's deterministic decision), with
    h_i its field at that moment.

    The fields of a block of ``block`` neurons come from one matmul at the block start (J_D s_i
    added at the decision) and are corrected after each update, h_l' += J_(l' l) Δs_l: exactly
    sequential, O(batch·block) per update. With ``block=1`` each field is computed afresh.
    With the deterministic decision of a layer fed by its recurrent couplings only
    (:func:`_threshold`), on the CPU, the compiled kernel runs the loop: binary (int8 ±1)
    networks the whole order (:func:`~mlcm_torch.functional.packed.sign_async`: each field an
    exact integer from the bits), other couplings each block's per-neuron loop after the same
    block product (:func:`_block_kernel`: the same values, operation for operation).
    """
    spec = graph.layers[layer]
    layer_states = states[..., graph.slice(layer)]
    order = order.to(states.device)
    theta = _threshold(graph, layer, phase, layer_states, layer_states.dim() - 1) if new_state is None else None
    if (theta is not None and spec.J is not None and spec.J.dtype == torch.int8
            and sign_async(spec.J, layer_states, order, theta, spec.tie == "keep")):
        return
    fast = _threshold_decider(theta, spec.tie) if theta is not None else None
    decide = fast or new_state or _decide(spec)
    physical = (lambda h, s_i: h) if fast is not None else _self_coupling_adder(spec, layer_states)
    for b0 in range(0, order.numel(), block):
        idx = order[b0:b0 + block]
        if idx.numel() == 1 and fast is None:
            h = layer_fields(graph, states, layer, phase, idx)[..., 0]
            s_i = layer_states[..., idx[0]]
            layer_states[..., idx[0]] = decide(b0, s_i, h)
            continue
        h = layer_fields(graph, states, layer, phase, idx, self_coupling=False)
        columns = None
        if spec.J is not None and idx.numel() > 1:
            columns = spec.J[..., idx, :][..., :, idx].to(h.dtype)
            if spec.unit != 1.0 and spec.J.dtype != torch.int8:
                columns = columns / spec.unit
            columns = columns.transpose(-1, -2).unsqueeze(-2)  # [..., a, :, :] = (1, block) column a
        current = layer_states[..., idx]
        if fast is not None and _block_kernel(spec, h, columns, current, theta):
            layer_states[..., idx] = current
            continue
        for a in range(idx.numel()):
            s_a = current[..., a]
            new = decide(b0 + a, s_a, physical(h[..., a], s_a))
            delta = new - s_a
            s_a += delta
            if columns is not None:
                h.addcmul_(delta.unsqueeze(-1), columns[..., a, :, :])
        layer_states[..., idx] = current


def _threshold(graph: Graph, layer: int, phase: Phase, states: Tensor, dims: int) -> Tensor | None:
    """The threshold of the deterministic decision of a ±1 ``flip``/``keep`` layer fed by its
    recurrent couplings only (no incoming coupling, no threshold), on the field WITHOUT J_D s_i:
    s_i h_i > 0 ⟺ s_i h_i^off > −J_D (``keep``: ≥) with −J_D in the field's dtype, or for int8
    signs (h^off an exact integer in coupling units) floor(−J_D·unit) (``keep``: ceil(...)).
    Bit-identical decisions to :func:`layer_activate` on the physical field (the rounded sum
    h^off + J_D s_i has the exact sign of the exact sum). ``dims``: dimensions of the values
    it is applied to. None where it does not apply."""
    spec = graph.layers[layer]
    if (spec.encoding != "pm1" or spec.k_winners is not None or spec.tie == "plus"
            or phase.thresholds[layer] is not None or graph.incoming(layer, phase.feedback)):
        return None
    integer = spec.J is not None and spec.J.dtype == torch.int8
    j_d = spec.j_d
    if isinstance(j_d, Tensor):
        j_d = j_d.to(device=states.device, dtype=torch.float64 if integer else states.dtype)
        j_d = j_d.reshape(*j_d.shape, *([1] * (dims - j_d.dim())))
    else:
        j_d = torch.tensor(j_d, dtype=torch.float64 if integer else states.dtype, device=states.device)
    if integer:  # integer thresholds: exact in the fields' dtype (|h| <= N < 2^24)
        return (torch.floor if spec.tie == "flip" else torch.ceil)(-j_d * spec.unit).to(states.dtype)
    return -j_d


def _threshold_decider(theta: Tensor, tie: str) -> NewState:
    """The decision on the field without J_D s_i against the :func:`_threshold` ``theta``."""
    if tie == "flip":
        return lambda k, s_i, h: torch.where(s_i * h > theta, s_i, -s_i)
    return lambda k, s_i, h: torch.where(s_i * h >= theta, s_i, -s_i)


def _block_kernel(spec: Layer, h: Tensor, columns: Tensor | None, current: Tensor, theta: Tensor) -> bool:
    """The per-neuron loop of one block of :func:`sequential_updates` in the compiled kernel, in
    place on ``h`` and the block's states ``current`` (*batch, block); ``columns`` (*nets, a,
    1, l) as built there. False (nothing changed) where it does not apply: no kernel, not the
    CPU, float16, or network batches that do not match the states."""
    lib = kernel.library()
    if lib is None or columns is None or h.device.type != "cpu" or h.dtype not in (torch.float32, torch.float64):
        return False
    shape = network_batches(columns, 3, h)
    if shape is None:
        return False
    (nets, batch), block = shape, h.shape[-1]
    values = h.contiguous()
    cols = columns.squeeze(-2).to(h.dtype).contiguous()
    thresholds = theta.to(h.dtype).expand(h.shape[:-1]).contiguous()
    if not current.is_contiguous() or current.dtype != h.dtype:
        return False
    run = lib.mlcm_block_async_f32 if h.dtype == torch.float32 else lib.mlcm_block_async_f64
    run(values.data_ptr(), cols.data_ptr(), current.data_ptr(), nets, batch, block, thresholds.data_ptr(),
        int(spec.tie == "keep"))
    return True


def _self_coupling_adder(spec: Layer, s: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """h_i, s_i (*batch,) -> the physical field h_i + J_D s_i, as :func:`add_self_coupling` computes
    it, with J_D converted and shaped once for the per-neuron updates of a layer."""
    j_d = spec.j_d
    batch_dims = s.dim() - 1
    if spec.J is not None and spec.J.dtype == torch.int8:
        if isinstance(j_d, Tensor):
            j_d = j_d.to(device=s.device, dtype=torch.float64).reshape(*j_d.shape, *([1] * (batch_dims - j_d.dim())))
        j_d_unit, unit = j_d * spec.unit, spec.unit
        if not isinstance(j_d_unit, Tensor):
            j_d_unit = torch.tensor(j_d_unit, dtype=torch.float64, device=s.device)
        return lambda h, s_i: (h.to(torch.float64) + s_i.to(torch.float64) * j_d_unit) / unit
    if isinstance(j_d, Tensor):
        j_d = j_d.to(device=s.device, dtype=s.dtype).reshape(*j_d.shape, *([1] * (batch_dims - j_d.dim())))
    return lambda h, s_i: h + j_d * s_i


def async_order(graph: Graph, sequential: bool, generator: torch.Generator | None) -> list[tuple[int, Tensor]]:
    """The (layer, neurons) runs of one asynchronous sweep: a random permutation of every layer
    in turn (``sequential``), or one random order over all neurons cut into same-layer runs."""
    if sequential:
        return [(layer, torch.randperm(spec.size, generator=generator)) for layer, spec in enumerate(graph.layers)]
    order = torch.randperm(graph.total, generator=generator)
    offsets = torch.tensor(graph.offsets)
    layers = torch.bucketize(order, offsets, right=True) - 1
    runs, start = [], 0
    boundaries = (torch.nonzero(layers[1:] != layers[:-1]).flatten() + 1).tolist() + [order.numel()]
    for end in boundaries:
        layer = int(layers[start])
        runs.append((layer, order[start:end] - graph.offsets[layer]))
        start = end
    return runs


def sweep_async(
    graph: Graph,
    states: Tensor,
    phase: Phase,
    sequential: bool = True,
    generator: torch.Generator | None = None,
    block: int = 1,
) -> Tensor:
    """One asynchronous sweep: every neuron updated once, one at a time, in a random order."""
    new = states.clone()
    for layer, neurons in async_order(graph, sequential, generator):
        sequential_updates(graph, new, layer, neurons, phase, block=block)
    return new


def sweep(
    graph: Graph,
    states: Tensor,
    phase: Phase,
    schedule: str = "layer_sequential_sync",
    generator: torch.Generator | None = None,
    block: int = 1,
) -> Tensor:
    """One sweep of ``schedule`` (one of :data:`~.graph.SCHEDULES`); returns the new states."""
    sequential = schedule.startswith("layer_sequential")
    if schedule.endswith("_sync"):
        return sweep_sync(graph, states, phase, sequential)
    return sweep_async(graph, states, phase, sequential, generator, block)


def _select_networks(graph: Graph, rows: Tensor) -> Graph:
    """The networks ``rows`` of a graph whose layers batch networks along J's first dim."""
    layers = []
    for spec in graph.layers:
        j_d = spec.j_d[rows.to(spec.j_d.device)] if isinstance(spec.j_d, Tensor) else spec.j_d
        layers.append(spec._replace(J=spec.J[rows] if spec.J is not None else None, j_d=j_d))
    return graph._replace(layers=tuple(layers))


def _networks_batched(graph: Graph, states: Tensor) -> bool:
    return states.dim() == 3 and any(spec.J is not None and spec.J.dim() == 3 for spec in graph.layers)


def relax(
    graph: Graph,
    states: Tensor,
    phase: Phase,
    max_sweeps: int,
    schedule: str = "layer_sequential_sync",
    generator: torch.Generator | None = None,
    *,
    block: int = 1,
    confirm_last: bool = False,
    compact: bool = False,
    backend: str = "dense",
    prepared: EventCouplings | None = None,
    check_every: int = 1,
    confirm_each: bool = False,
    carry: Carry | None = None,
) -> Relaxation:
    """Relax ``states`` until a whole sweep changes no neuron, per sample, or ``max_sweeps``.

    A sample whose sweep changed nothing sits at a fixed point; later sweeps leave it unchanged
    (the dynamics are deterministic given the order), so the loop stops once every sample has
    converged. ``confirm_last``: a sample still moving after the last sweep is tested once
    more and reported converged (with one more sweep counted) if it now sits at a fixed point.
    ``compact``: each sweep runs only on the samples still moving (and, for a batch of networks
    ``(M, B, total)``, on the networks that hold one, once at most half of them do); frozen
    samples are copied through. This saves work when samples converge at very different times,
    but BLAS results of a row may depend on how many rows are computed, so float fields of
    compacted sweeps can differ in the last bit from uncompacted ones (int8 fields are exact).
    ``backend``: ``dense`` recomputes every field each sweep; ``event`` carries the fields and
    corrects them by the neurons that changed, with exact decisions (synchronous schedules
    without k-winners-take-all; see :mod:`~mlcm_torch.functional.events`), using ``prepared``
    from :func:`~mlcm_torch.functional.events.event_couplings` (made here when not given).
    ``confirm_each`` (with ``compact``, or the event backend's asynchronous schedules): after
    every sweep (and before the first) the samples
    still moving are tested with :func:`is_fixed_point`; a fixed point is converged at once, the
    sweep that would change nothing counted but not run (one batched field product instead of a
    whole asynchronous sweep), and only such a test marks a sample converged.
    ``carry`` (event backend, synchronous schedules): a
    :class:`~mlcm_torch.functional.events.Carry` shared by consecutive phases, so a phase that
    starts from the states the previous one returned reuses its carried fields.
    ``check_every``: test for "all converged" (a host synchronisation on a GPU) every k sweeps
    only; later sweeps leave converged samples as they are and are not counted, so only the
    draws of the asynchronous order generator differ.
    """
    batch = states.shape[:-1]
    sweeps = torch.zeros(batch, dtype=torch.long, device=states.device)
    converged = torch.zeros(batch, dtype=torch.bool, device=states.device)
    if backend not in ("dense", "event"):
        raise ValueError(f"backend={backend!r} is not supported; expected one of ['dense', 'event']")
    if backend == "event" and not event_supported(graph, schedule):
        raise ValueError("backend='event' does not run k-winners-take-all layers (decided by rank)")
    if backend == "event" and not compact:
        states = _relax_event(graph, states, phase, max_sweeps, schedule, generator,
                              prepared or event_couplings(graph), sweeps, converged, check_every, carry,
                              confirm_each)
    elif compact:
        states = _relax_compacted(graph, states.clone(), phase, max_sweeps, schedule, generator, block,
                                  sweeps, converged, confirm_each)
    else:
        for t in range(max_sweeps):
            new = sweep(graph, states, phase, schedule, generator, block)
            changed = (new != states).any(dim=-1)
            sweeps += ~converged
            converged |= ~changed
            states = new
            if (t + 1) % check_every == 0 and bool(converged.all()):
                break
    if confirm_last and not bool(converged.all()):
        late = ~converged & is_fixed_point(graph, states, phase)
        sweeps += late
        converged |= late
    return Relaxation(states, sweeps, converged)


def event_supported(graph: Graph, schedule: str) -> bool:
    """Whether the event backend runs ``schedule`` on ``graph`` (every schedule, without
    k-winners-take-all layers)."""
    return all(spec.k_winners is None for spec in graph.layers)


def _relax_event(
    graph: Graph, states: Tensor, phase: Phase, max_sweeps: int, schedule: str,
    generator: torch.Generator | None, prepared: EventCouplings, sweeps: Tensor, converged: Tensor,
    check_every: int = 1, carry: Carry | None = None, confirm_each: bool = False,
) -> Tensor:
    """The loop of :func:`relax` on carried fields; updates ``sweeps`` and ``converged`` in place.
    Synchronous schedules carry float32 fields with proven bounds; asynchronous ones float64."""
    sequential = schedule.startswith("layer_sequential")
    synchronous = schedule.endswith("_sync")
    if synchronous:
        carried = (carry or Carry()).start(graph, states, phase, prepared)
        fixed = event_constants(graph, phase, prepared, carried.states.dtype)
        entries = kernel_layers(graph, carried, fixed, phase, prepared, sequential)
        quiet = quiet_masks(graph, carried.states, entries)
    else:
        carried = start_exact(graph, states.to(torch.float64, copy=True), phase)
        fixed = exact_constants(graph, phase)
    looped = synchronous and check_every == 1 and kernel_relax(
        graph, carried, phase, prepared, entries, max_sweeps, sweeps, converged, quiet)
    confirming = confirm_each and not synchronous  # as _relax_compacted: a fixed point is counted, not swept
    for t in range(max_sweeps + 1 if confirming else 0 if looped else max_sweeps):
        if confirming:
            late = ~converged & exact_fixed(graph, carried, fixed)
            sweeps += late
            converged |= late
            if t == max_sweeps or bool(converged.all()):
                break
        if synchronous:
            changed = event_sweep(graph, carried, fixed, phase, prepared, sequential, kernel_entries=entries,
                                  quiet=quiet)
        else:
            order = async_order(graph, sequential, generator)
            changed = async_event_sweep(graph, carried, fixed, phase, prepared, order)
        sweeps += ~converged
        converged |= ~changed
        if (t + 1) % check_every == 0 and bool(converged.all()):
            break
    if carry is not None and synchronous:
        carry.keep(carried, phase, prepared)
    return carried.states.to(states.dtype)


def _relax_compacted(
    graph: Graph, states: Tensor, phase: Phase, max_sweeps: int, schedule: str,
    generator: torch.Generator | None, block: int, sweeps: Tensor, converged: Tensor, confirm_each: bool = False,
) -> Tensor:
    """The loop of :func:`relax` on the moving samples only; updates ``sweeps`` and
    ``converged`` in place and returns the states."""
    batched = _networks_batched(graph, states)
    if not batched:
        states, sweeps, converged = states.unsqueeze(0), sweeps.unsqueeze(0), converged.unsqueeze(0)
    rows = torch.arange(states.shape[0], device=states.device)
    sub = graph
    if confirm_each and max_sweeps > 0:
        fixed = is_fixed_point(graph, states if batched else states[0], phase)
        fixed = fixed if batched else fixed.unsqueeze(0)
        sweeps += fixed
        converged |= fixed
    for _ in range(max_sweeps):
        moving = ~converged
        if not bool(moving.any()):
            break
        if batched and 2 * int(moving.any(1).sum()) <= rows.numel():
            rows = torch.nonzero(moving.any(1)).squeeze(-1)
            sub = _select_networks(graph, rows)
        cols = torch.nonzero(moving[rows].any(0)).squeeze(-1)
        where = (rows.unsqueeze(-1), cols.unsqueeze(0))
        s, act = states[where], moving[where]
        sub_phase = phase if batched else phase._replace(
            drives=tuple(d[cols] if d is not None else None for d in phase.drives))
        s_new = sweep(sub, s if batched else s[0], sub_phase, schedule, generator, block)
        if not batched:
            s_new = s_new.unsqueeze(0)
        s_new = torch.where(act.unsqueeze(-1), s_new, s)
        changed = (s_new != s).any(dim=-1)
        states[where] = s_new
        if confirm_each:
            fixed = is_fixed_point(sub, s_new if batched else s_new[0], sub_phase)
            done = act & (fixed if batched else fixed.unsqueeze(0))
            counted = act.long() + done
        else:
            done, counted = act & ~changed, act
        sweeps[where] += counted
        converged[where] |= done
    return states if batched else states[0]
