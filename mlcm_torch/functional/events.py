"""Event-driven sweeps: local fields carried from sweep to sweep and corrected only by the
couplings of the neurons that changed, with exact decisions.

After the first sweep of a relaxation almost no neuron flips (on MNIST, 1600 neurons: about 60,
15, 5, 2, 1 flips per sample in the sweeps after the first), so recomputing all N² products
each sweep is wasted. Here the part of each layer's field that depends on the states,

    F^l = Σ_j J^l_ij s^l_j + Σ_(active couplings c from a layer) λ_c (W_c s^pre)_i,

is carried in the states' dtype and, after a layer changes by Δ, corrected by the couplings of
the changed neurons only, by the cheapest of three products (:func:`product_route`): the
columns changed somewhere in the batch, F^post += λ Δ[:, changed] Wᵀ[changed] (few columns,
or columns shared by the samples); each sample's own changed rows, a sparse CSR Δ times Wᵀ
(many columns, few per sample: the sweeps after the first, where the samples flip different
neurons); or one dense product (much changed). The decision adds the phase-constant part
(J_D s_i, the input and label drives, −θ). On the CPU, for float32 couplings, a compiled C
kernel (:mod:`~mlcm_torch.functional.kernel`, :func:`kernel_layers`) takes each layer's
decisions (re-checks included) and each sample's own corrections in one call each, with the
same decisions; consecutive phases hand their fields on (:class:`Carry`).

*Same result.* Next to F a proven bound on its rounding error is carried (standard bounds
γ_n = n u / (1 − n u) for sums of n products, u the unit roundoff, with |F_i| ≤ Σ_j |J_ij| +
Σ_c |λ_c| Σ_j |W_c,ij| for states in [−1, 1]). A neuron whose field lies within twice the bound
of zero is recomputed in float64 from the couplings, the states and the raw input and label.
So every decision is the sign of the field evaluated in float64 — the decision of the dense
path run in float64 — while the work is float32. With int8 couplings fields are exact integers
and nothing is re-checked. k-winners-take-all decides by ranks, not signs: it stays on the dense
path.

Asynchronous schedules (:func:`async_event_sweep`) carry float64 accumulators instead and skip,
in one vectorised scan, the stretch of the random order in which no sample changes.
"""

from __future__ import annotations

import ctypes
import warnings
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcm_torch.functional import kernel
from mlcm_torch.functional.fields import (
    add_self_coupling, blocked_product, coupling_sum, layer_activate, product_depth, source_drive, zero_one_thresholds,
)
from mlcm_torch.functional.fields import rounding_gamma as _gamma
from mlcm_torch.functional.graph import ENCODINGS, TIES, Graph, Layer, Phase

DENSE_FRACTION = 0.25
"""Above this fraction of changed presynaptic neurons (union over the batch) a gathered
correction is one dense product instead."""
CSR_DENSE_FRACTION = 0.15
"""Above this fraction of changed (sample, neuron) pairs a per-sample (CSR) correction is one
dense product instead."""
CSR_ROW_COST = 1.9
CSR_OVERHEAD_ROWS = 1200
"""Per-sample (CSR) products cost about ``CSR_ROW_COST`` gathered rows per changed (sample,
neuron) pair plus ``CSR_OVERHEAD_ROWS`` for building the sparse matrix; they are chosen over the
gathered columns when that is less than batch × columns. Measured on a 2-core AMD EPYC (AVX2)
at 16 × 1600 by ``benchmarks/bench_event_products.py``."""
KERNEL_DENSE_FRACTION = 0.2
"""With the compiled kernel, above this fraction of changed (sample, neuron) pairs a correction
is one dense product instead of the kernel's per-sample sums."""
CORRECTION_GROUP = 8
"""The kernel sums a sample's changed rows in float32 groups of this many (``GROUP`` in
event_kernel.c), the groups in double."""

SPARSE_DENSITY = 0.05
"""With ``event_couplings(..., sparse=True)``, a float layer whose J has at most this fraction
of non-zero entries keeps a CSR copy, and its dense products run on it (16 × 2000 with 1 %
non-zero on a 2-core AMD EPYC: 0.15 ms against 3.9 ms dense; the copy costs ~15 ms per coupling
version, so only relaxations that reuse it, such as inference, ask for it)."""

_F64 = torch.float64


class EventCouplings(NamedTuple):
    """What the event backend needs of the couplings, made once per change of the couplings.

    ``rows[l]``: Jᵀ of layer l, contiguous (a changed neuron's outgoing couplings are a row);
    None for int8 couplings (their columns are gathered exactly). ``coupling_rows[k]``: Wᵀ of a
    dense coupling between layers. ``scale[l]``: Σ_j |J_ij| / unit and ``reach[l]``: the bound
    M_i ≥ |F_i| for states in [−1, 1], both (*nets, N) float64. ``coupling_l1[k]``: Σ_j |W_ij|
    of every coupling with a matrix. ``sparse[l]``: J of layer l in CSR when it was asked for and
    J is sparse enough (:data:`SPARSE_DENSITY`), else None. ``recheck_rows[l]``: J of layer l
    postsynaptic-major (J_i· contiguous) when it was asked for and J is stored otherwise, else
    None: the compiled kernel's exact re-check of neuron i then reads one contiguous row
    instead of N cache lines.
    """

    rows: tuple[Tensor | None, ...]
    coupling_rows: tuple[Tensor | None, ...]
    scale: tuple[Tensor | None, ...]
    reach: tuple[Tensor, ...]
    coupling_l1: tuple[Tensor | None, ...]
    sparse: tuple[Tensor | None, ...] = ()
    recheck_rows: tuple[Tensor | None, ...] = ()


def _row_l1(W: Tensor) -> Tensor:
    """An upper bound on Σ_j |W_ij| (float64): the float32 sum of the n = N_pre absolute values
    (one pass, no float64 copy of W) divided by 1 − γ_n, which bounds its rounding error; exact
    for int8 couplings."""
    if W.dtype == torch.int8:
        return W.abs().sum(dim=-1, dtype=_F64)
    n = W.shape[-1]
    return W.abs().sum(dim=-1).to(_F64) * (1 + 2 * _gamma(n + 1, W.dtype))


def row_l1_after_update(bound: Tensor, post: Tensor, pre: Tensor, scale: float, beta: float) -> Tensor:
    """An upper bound on Σ_j |W'_ij| (float64) for the float32 update W' = β W + scale · postᵀ pre
    (one ``addmm_``, :func:`~mlcm_torch.functional.plasticity.apply_update`; a mask or a zeroed
    diagonal after it only lowers the sums), from ``bound`` ≥ Σ_j |W_ij|, without a pass over W:

        Σ_j |W'_ij| ≤ (1 + 2γ_(B+4)) (|β| bound_i + |scale| Σ_b |post_bi| Σ_j |pre_bj|),

    since each entry of W' is a sum of B + 1 products computed in float32 in some order, whose
    rounding γ_(B+2) bounds (Higham, Accuracy and Stability, §3.1); the margin to 2γ_(B+4) covers the
    float64 evaluation of this bound. ``post`` (B, N_post), ``pre`` (B, N_pre)."""
    gamma = _gamma(post.shape[0] + 4, torch.float32)
    added = post.abs().to(_F64).transpose(0, 1) @ pre.abs().to(_F64).sum(dim=1)
    return (abs(beta) * bound + abs(scale) * added.to(bound.device)) * (1 + 2 * gamma)


def _presynaptic_rows(W: Tensor) -> Tensor:
    """Wᵀ contiguous: a view of presynaptic-major storage, a copy otherwise."""
    rows = W.transpose(-1, -2)
    return rows if rows.is_contiguous() else rows.contiguous()


def _sparse_copy(J: Tensor | None) -> Tensor | None:
    """J in CSR when it is a float matrix on the CPU with at most :data:`SPARSE_DENSITY` non-zeros."""
    if J is None or J.dim() != 2 or not J.is_floating_point() or J.device.type != "cpu":
        return None
    if int(torch.count_nonzero(J)) > SPARSE_DENSITY * J.numel():
        return None
    return _csr(J)


def _postsynaptic_rows(J: Tensor | None) -> Tensor | None:
    """J postsynaptic-major, a copy, for a float matrix stored otherwise; None when J's rows are
    already contiguous (the kernel reads J itself) or J is int8, batched or absent."""
    if J is None or J.dim() != 2 or J.dtype == torch.int8 or J.stride(1) == 1:
        return None
    return J.contiguous()


def event_couplings(graph: Graph, sparse: bool = False, row_l1: Callable[[Tensor], Tensor] = _row_l1,
                    recheck_rows: bool = False) -> EventCouplings:
    """The :class:`EventCouplings` of ``graph``; ``sparse``: also the CSR copies of sparse
    recurrent couplings (``EventCouplings.sparse``); ``recheck_rows``: also postsynaptic-major
    copies of J (``EventCouplings.recheck_rows``; both worth their cost only for relaxations
    that reuse them, such as inference). ``row_l1`` gives an upper bound on the row
    L1 norms of a matrix (float64): by default one pass over it (:func:`_row_l1`); a network
    passes its bounds carried across local updates (:func:`row_l1_after_update`)."""
    coupling_l1 = tuple(row_l1(c.W) if c.W is not None else None for c in graph.couplings)
    rows, scale, reach = [], [], []
    for layer, spec in enumerate(graph.layers):
        if spec.J is None:
            rows.append(None)
            scale.append(None)
            total = torch.zeros(spec.size, dtype=_F64)
        else:
            rows.append(_presynaptic_rows(spec.J) if spec.J.dtype != torch.int8 else None)
            scale.append(row_l1(spec.J) / spec.unit)
            total = scale[-1].clone()
        for k, coupling in graph.incoming(layer, True):
            if isinstance(coupling.pre, str):
                continue
            width = abs(coupling.strength) * (coupling_l1[k] if coupling.W is not None else 1.0)
            total = total + (width.to(total.device) if isinstance(width, Tensor) else width)
        reach.append(total)
    coupling_rows = tuple(
        _presynaptic_rows(c.W) if c.W is not None and not isinstance(c.pre, str) else None for c in graph.couplings
    )
    copies = tuple(_sparse_copy(spec.J) if sparse else None for spec in graph.layers)
    post = tuple(_postsynaptic_rows(spec.J) if recheck_rows else None for spec in graph.layers)
    return EventCouplings(tuple(rows), coupling_rows, tuple(scale), tuple(reach), coupling_l1, copies, post)


class EventState(NamedTuple):
    """What an event-driven relaxation carries: the states, the fields F^l and their error
    bounds (None for exact int8 layers)."""

    states: Tensor
    fields: list[Tensor]
    errors: list[Tensor | None]


def _exact(spec_dtype: torch.dtype) -> bool:
    return spec_dtype == torch.int8


def start(graph: Graph, states: Tensor, phase: Phase, couplings: EventCouplings,
          layers: list[int] | None = None) -> EventState:
    """Dense F^l of every layer (or of ``layers``; the others None) for ``states`` and its
    error bound."""
    fields, errors = [], []
    for layer, spec in enumerate(graph.layers):
        if layers is not None and layer not in layers:
            fields.append(None)
            errors.append(None)
            continue
        s = states[..., graph.slice(layer)]
        exact = spec.J is not None and _exact(spec.J.dtype)
        if spec.J is None or not bool(s.any()):
            value, error = s.new_zeros(s.shape), s.new_zeros(s.shape[-1:], dtype=_F64)
        else:
            value = coupling_sum(spec, s)
            error = _gamma(spec.size + 1, s.dtype) * couplings.scale[layer]
        for k, coupling in graph.incoming(layer, phase.feedback):
            if isinstance(coupling.pre, str) or coupling.strength == 0:
                continue
            pre = states[..., graph.slice(coupling.pre)]
            if coupling.W is not None:
                value = value + coupling.strength * (pre @ coupling.W.T)
                bound = abs(coupling.strength) * _gamma(pre.shape[-1] + 1, s.dtype) * couplings.coupling_l1[k]
                error = error + bound.to(error.device)
            else:
                value = value + coupling.strength * F.pad(pre, (0, spec.size - pre.shape[-1]))
            error = error + torch.finfo(s.dtype).eps / 2 * couplings.reach[layer]
        fields.append(value)
        errors.append(None if exact else error)
    return EventState(states, fields, errors)


def _layer_inputs(graph: Graph, layer: int, phase: Phase) -> list[int]:
    return [k for k, c in graph.incoming(layer, phase.feedback) if not isinstance(c.pre, str) and c.strength != 0]


def resume(graph: Graph, carried: EventState, old: Phase, new: Phase, couplings: EventCouplings) -> EventState:
    """The carried fields of a relaxation under ``old`` made those of phase ``new`` at the same
    states and couplings: F holds no source drive, so only layers whose couplings from other
    layers differ between the phases (the feedback switched off or on) are recomputed; the
    others keep F and its error bound. The states are copied."""
    states = carried.states.clone()
    changed = [layer for layer in range(len(graph.layers))
               if _layer_inputs(graph, layer, old) != _layer_inputs(graph, layer, new)]
    fields, errors = list(carried.fields), list(carried.errors)
    if changed:
        fresh = start(graph, states, new, couplings, changed)
        for layer in changed:
            fields[layer], errors[layer] = fresh.fields[layer], fresh.errors[layer]
    return EventState(states, fields, errors)


class Carry:
    """Hands the carried fields of one event relaxation to the next phase of the same states
    and couplings (:func:`~mlcm_torch.functional.dynamics.relax` ``carry``): the next phase
    starts by :func:`resume` instead of a dense product. Used only when the next phase starts
    from states equal to those the last one ended in (a copy is kept to compare), with the
    same couplings."""

    def __init__(self) -> None:
        self.state: EventState | None = None
        self.phase: Phase | None = None
        self.couplings: EventCouplings | None = None

    def keep(self, state: EventState, phase: Phase, couplings: EventCouplings) -> None:
        self.state = state._replace(states=state.states.clone())
        self.phase, self.couplings = phase, couplings

    def start(self, graph: Graph, states: Tensor, phase: Phase, couplings: EventCouplings) -> EventState:
        """The carried state for relaxing ``states`` under ``phase``: resumed when it continues
        the kept relaxation, else :func:`start` on a copy of ``states``."""
        kept = self.state
        if (kept is not None and couplings is self.couplings and states.shape == kept.states.shape
                and torch.equal(states, kept.states)):
            return resume(graph, kept, self.phase, phase, couplings)
        return start(graph, states.clone(), phase, couplings)


def constants(graph: Graph, phase: Phase, couplings: EventCouplings,
              dtype: torch.dtype = torch.float32) -> list[tuple[Tensor | float, Tensor | float]]:
    """Per layer: the phase-constant part c of the field (source drives − θ), and the
    phase-constant part of the re-check bound for fields carried in ``dtype``, per neuron (the
    largest over the batch): the rounding error of c plus 2u(M + |J_D|) (u of ``dtype``, M the
    layer's ``reach``), which bounds the
    rounding of h = F + J_D s + c beyond the carried error of F (:func:`event_sweep`, and the
    kernel's ``bound_constant``)."""
    u = torch.finfo(dtype).eps / 2
    out = []
    for layer, spec in enumerate(graph.layers):
        value: Tensor | float = 0.0
        error: Tensor | float = 0.0
        for k, coupling in graph.incoming(layer, phase.feedback):
            drive = phase.drives[k]
            if not isinstance(coupling.pre, str) or drive is None or coupling.strength == 0:
                continue
            value = drive if isinstance(value, float) else value + drive  # 0.0 + drive is drive (no copy)
            if coupling.W is not None:
                width = coupling.W.shape[1]
                depth = product_depth(drive.shape[0], width, drive.device) if drive.dim() == 2 else width
                error = error + abs(coupling.strength) * _gamma(depth + 1, drive.dtype) * couplings.coupling_l1[k]
            magnitude = drive.abs()
            if magnitude.dim() >= 2:  # per neuron, the largest over the batch: a bound for every sample
                magnitude = magnitude.reshape(-1, magnitude.shape[-1]).amax(dim=0)
            error = error + torch.finfo(drive.dtype).eps / 2 * magnitude.to(_F64)
        threshold = phase.thresholds[layer]
        if threshold is not None:
            value = value - threshold
            reach = (threshold.abs().to(_F64) + abs(spec.gamma) + abs(float(spec.j_d) if not isinstance(spec.j_d, Tensor) else 0.0))
            error = error + _gamma(spec.size + len(graph.couplings) + 4, threshold.dtype) * (
                reach + (couplings.scale[layer] if spec.J is not None else 0.0))
        j_d = spec.j_d.abs().max().item() if isinstance(spec.j_d, Tensor) else abs(spec.j_d)
        out.append((value, error + 2 * u * (couplings.reach[layer] + j_d)))
    return out


def _exact_fields(graph: Graph, states: Tensor, phase: Phase, layer: int, idx: Tensor) -> Tensor:
    """Fields (*batch, k) of neurons ``idx`` of ``layer`` in float64, from the couplings, the
    states and the raw sources of the phase (the dense path's equation, in float64)."""
    spec = graph.layers[layer]
    s = states[..., graph.slice(layer)].to(_F64)
    h = torch.zeros((*s.shape[:-1], idx.numel()), dtype=_F64, device=s.device)
    if spec.J is not None:
        h = torch.matmul(s, spec.J[..., idx, :].to(_F64).transpose(-1, -2)) / spec.unit
    j_d = spec.j_d
    if isinstance(j_d, Tensor):
        j_d = j_d.to(device=s.device, dtype=_F64).reshape(*j_d.shape, *([1] * (s.dim() - j_d.dim())))
    h = h + j_d * s[..., idx]
    sources = {"input": phase.x, "label": phase.y}
    for _, coupling in graph.incoming(layer, phase.feedback):
        if coupling.strength == 0:
            continue
        if isinstance(coupling.pre, str):
            value = sources[coupling.pre]
            if value is None:
                continue
            if coupling.W is None:
                term = F.pad(value.to(_F64), (0, spec.size - value.shape[-1]))[..., idx]
            elif coupling.pre == "label" and not value.is_floating_point():
                term = coupling.W[idx].to(_F64).T[value]
            else:
                term = value.to(_F64) @ coupling.W[idx].to(_F64).T
        else:
            pre = states[..., graph.slice(coupling.pre)].to(_F64)
            if coupling.W is not None:
                term = pre @ coupling.W[idx].to(_F64).T
            else:
                term = F.pad(pre, (0, spec.size - pre.shape[-1]))[..., idx]
        h = h + coupling.strength * term
    if phase.thresholds[layer] is not None:
        h = h - zero_one_thresholds(graph, layer, phase.feedback, neurons=idx, dtype=_F64)
    return h


def product_route(rows: int, columns: int, pairs: int, width: int, dense_fraction: float = DENSE_FRACTION) -> str:
    """How a correction by ``pairs`` changed (sample, neuron) pairs, spread over ``columns``
    distinct neurons of a ``width``-neuron layer for ``rows`` samples, is computed: ``union``
    (the changed columns for every sample), ``csr`` (each sample's own changed rows) or
    ``dense``, by the measured costs of :data:`CSR_ROW_COST` and :data:`CSR_OVERHEAD_ROWS`."""
    if rows * columns > CSR_ROW_COST * pairs + CSR_OVERHEAD_ROWS:
        return "dense" if pairs > CSR_DENSE_FRACTION * rows * width else "csr"
    return "dense" if columns > dense_fraction * width else "union"


def _csr(delta: Tensor) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's one-time "sparse CSR support is in beta" notice
        return delta.to_sparse_csr()


def _dense_product(delta: Tensor, rows: Tensor, sparse: Tensor | None) -> tuple[Tensor, int]:
    """(Σ_j M_ij delta_bj for every sample b, a bound on the roundings of its sums): ``delta @
    rows`` from the CSR copy of M where there is one (any order: the bound is the width), else a
    :func:`~mlcm_torch.functional.fields.blocked_product` (:func:`~mlcm_torch.functional.fields.product_depth`)."""
    width = delta.shape[-1]
    if sparse is not None and delta.dim() == 2:  # (M deltaᵀ)ᵀ made contiguous: adding it to F is then a plain pass
        return torch.sparse.mm(sparse, delta.transpose(0, 1)).transpose(0, 1).contiguous(), width
    if delta.dim() != 2 or rows.dim() != 2:
        return torch.matmul(delta, rows), width
    return blocked_product(delta, rows), product_depth(delta.shape[0], width, delta.device)


def _product(delta: Tensor, rows: Tensor | None, matrix: Tensor, dense_fraction: float,
             sparse: Tensor | None = None) -> tuple[Tensor, int] | None:
    """(Σ_j M_ij delta_j over the changed j, a bound on the number of terms of each sum), shape
    (*batch, N_post); None when nothing changed. ``rows`` = Mᵀ contiguous (float), or None to
    gather int8 columns of M; ``sparse``: M in CSR, for the dense route. Per-sample (CSR)
    products run for one network on the CPU."""
    width = delta.shape[-1]
    nonzero = delta.ne(0).reshape(-1, width)
    cols = torch.nonzero(nonzero.any(dim=0)).squeeze(-1)
    k = cols.numel()
    if k == 0:
        return None
    if rows is not None and delta.dim() == 2 and rows.dim() == 2 and delta.device.type == "cpu":
        counts = nonzero.sum(dim=1)
        route = product_route(delta.shape[0], k, int(counts.sum()), width, dense_fraction)
        if route == "csr":
            return torch.sparse.mm(_csr(delta), rows), int(counts.max())
    else:
        route = "dense" if k > dense_fraction * width else "union"
    if route == "dense":
        if rows is None:
            return coupling_sum(Layer(matrix.shape[-1], matrix), delta), width
        return _dense_product(delta, rows, sparse)
    if rows is None:
        block = matrix[..., :, cols].to(delta.dtype)
        return torch.matmul(delta[..., cols], block.transpose(-1, -2)), k
    return torch.matmul(delta[..., cols], rows[..., cols, :]), k


class KernelLayer(NamedTuple):
    """What the compiled kernel needs of one layer in one phase (:func:`kernel_layers`): the
    phase-constant field ``constant`` (B, N) float32 and its bound part ``bound_constant`` (N,)
    float64 (per neuron, the largest over the samples), the field's terms for exact re-checks
    (pointing into ``keep``), the thresholds θ in float64, and the buffers the kernel writes: Δ
    (allocated zero; the kernel keeps it zero except at the changes it listed last), the changed
    neurons per sample and their counts, the list of the (sample, neuron) pairs re-checked, and
    two work rows (the double sums and a float32 group)."""

    constant: Tensor
    bound_constant: Tensor
    terms: ctypes.Array
    n_terms: int
    theta: Tensor | None
    keep: tuple
    delta: Tensor
    changed: Tensor
    counts: Tensor
    pairs: Tensor
    work: Tensor
    group: Tensor


def _correct(
    fields: Tensor, delta: Tensor, rows: Tensor | None, matrix: Tensor, strength: float, divisor: float,
    dense_fraction: float, lists: tuple[KernelLayer, int, int] | None, sparse: Tensor | None = None,
) -> float | None:
    """fields += strength · (M delta) / divisor over the changed presynaptic neurons, in place;
    returns ρ, the relative bound on the rounding of the sums before they are added to F (each
    within ρ Σ_j |M_ij delta_j|; None: nothing changed): γ_(n+1) in the fields' dtype for sums
    of n terms in it, γ_(G−1) + γ^(64)_(⌈k/G⌉+2) for the kernel's sums of k terms (float32 groups
    of G = :data:`CORRECTION_GROUP`, summed in double). ``lists``: the
    kernel's changed lists of ``delta``, their total and the largest count of a sample, for a
    per-sample sum in C; ``sparse``: M in CSR, for dense products."""
    if lists is not None and rows is not None and rows.dim() == 2:
        layer, total, most = lists
        if total == 0:
            return None
        if total <= KERNEL_DENSE_FRACTION * delta.numel():
            kernel.library().mlcm_correct(
                delta.shape[0], delta.shape[1], rows.shape[1], delta.data_ptr(), layer.changed.data_ptr(),
                layer.counts.data_ptr(), rows.data_ptr(), divisor, strength, fields.data_ptr(), fields.shape[-1],
                layer.work.data_ptr(), layer.group.data_ptr())
            return _gamma(CORRECTION_GROUP - 1, torch.float32) + _gamma(-(-most // CORRECTION_GROUP) + 2, _F64)
        change, terms = _dense_product(delta, rows, sparse)
    else:
        result = _product(delta, rows, matrix, dense_fraction, sparse)
        if result is None:
            return None
        change, terms = result
    if divisor != 1.0:
        change = change / divisor
    fields += change if strength == 1.0 else strength * change
    return _gamma(terms + 1, delta.dtype)


def _correct_own(
    graph: Graph, couplings: EventCouplings, carried: EventState, layer: int, delta: Tensor, dense_fraction: float,
    lists: tuple[KernelLayer, int, int] | None = None,
) -> None:
    """Correct F of ``layer`` by its own J (and its error bound), the first step of :func:`_propagate`."""
    spec = graph.layers[layer]
    if spec.J is None:
        return
    errors = carried.errors
    divisor = spec.unit if spec.J.dtype != torch.int8 else 1.0
    sparse = couplings.sparse[layer] if couplings.sparse else None
    rho = _correct(carried.fields[layer], delta, couplings.rows[layer], spec.J, 1.0, divisor, dense_fraction, lists,
                   sparse)
    if rho is not None and errors[layer] is not None:
        u = torch.finfo(delta.dtype).eps / 2
        errors[layer] = errors[layer] + 2 * rho * couplings.scale[layer] + u * couplings.reach[layer]


def _propagate(
    graph: Graph, couplings: EventCouplings, carried: EventState, layer: int, delta: Tensor, phase: Phase,
    dense_fraction: float, lists: tuple[KernelLayer, int, int] | None = None,
) -> None:
    """Correct F (and its error bound) of every layer that receives from ``layer``."""
    fields, errors = carried.fields, carried.errors
    u = torch.finfo(delta.dtype).eps / 2
    _correct_own(graph, couplings, carried, layer, delta, dense_fraction, lists)
    for k, coupling in graph.incoming_from(layer, phase.feedback):
        if coupling.strength == 0:
            continue
        post = coupling.post
        if coupling.W is None:
            width = min(delta.shape[-1], graph.layers[post].size)  # one-to-one: neuron i feeds neuron i
            fields[post][..., :width] += coupling.strength * delta[..., :width]
        else:
            rho = _correct(fields[post], delta, couplings.coupling_rows[k], coupling.W, coupling.strength, 1.0,
                           dense_fraction, lists)
            if rho is None:
                continue
            if errors[post] is not None:
                errors[post] = errors[post] + 2 * abs(coupling.strength) * rho * couplings.coupling_l1[k]
        if errors[post] is not None:
            errors[post] = errors[post] + u * couplings.reach[post]


def kernel_layers(
    graph: Graph, carried: EventState, fixed: list[tuple[Tensor | float, Tensor | float]], phase: Phase,
    couplings: EventCouplings, sequential: bool,
) -> list[KernelLayer | None] | None:
    """Per layer, what :func:`event_sweep` hands the compiled kernel in this phase, or None for a
    layer it leaves to PyTorch operations (int8 or float64 couplings, per-network J_D, batches of
    networks, GPUs); None for all without the kernel, or for a layer-independent sweep of
    several layers (the kernel writes each layer's states as it goes)."""
    states = carried.states
    if (kernel.library() is None or states.device.type != "cpu" or states.dtype != torch.float32
            or states.dim() != 2 or not states.is_contiguous() or (not sequential and len(graph.layers) > 1)):
        return None
    batch = states.shape[0]
    out = []
    for layer, spec in enumerate(graph.layers):
        field = carried.fields[layer]
        error = carried.errors[layer]
        usable = (error is not None and error.shape == (spec.size,) and error.dtype == _F64
                  and not isinstance(spec.j_d, Tensor) and spec.k_winners is None
                  and field.dtype == torch.float32 and field.is_contiguous() and field.shape == (batch, spec.size)
                  and (spec.J is None or (spec.J.dtype == torch.float32 and spec.J.dim() == 2)))
        terms, keep = [], []
        if usable and spec.J is not None:
            # J_ij at matrix[i * row_stride + j * col_stride]: the same values in any layout
            post = couplings.recheck_rows[layer] if couplings.recheck_rows else None
            matrix = spec.J if spec.J.stride(1) == 1 else post if post is not None else couplings.rows[layer].T
            keep.append(matrix)
            terms.append(kernel.Term(matrix.data_ptr(), matrix.stride(0), matrix.stride(1), spec.size,
                                     states[:, graph.slice(layer)].data_ptr(), states.stride(0), 1.0, spec.unit))
        for _, coupling in graph.incoming(layer, phase.feedback) if usable else ():
            if coupling.strength == 0:
                continue
            if isinstance(coupling.pre, str):
                source = phase.x if coupling.pre == "input" else phase.y
                if source is None:
                    continue
                if not source.is_floating_point() and coupling.W is not None:
                    source = F.one_hot(source, coupling.W.shape[1])
                source = source.to(torch.float32).contiguous()
                keep.append(source)
                pointer, stride, width = source.data_ptr(), source.stride(0), source.shape[-1]
            else:
                pointer = states[:, graph.slice(coupling.pre)].data_ptr()
                stride, width = states.stride(0), graph.layers[coupling.pre].size
            W = coupling.W
            if W is not None and (W.dtype != torch.float32 or W.dim() != 2):
                usable = False
                break
            if W is not None:
                keep.append(W)
            terms.append(kernel.Term(W.data_ptr() if W is not None else None, W.stride(0) if W is not None else 0,
                                     W.stride(1) if W is not None else 0, width, pointer, stride,
                                     float(coupling.strength), 1.0))
        if not usable:
            out.append(None)
            continue
        value, value_bound = fixed[layer]
        constant = torch.empty(batch, spec.size, dtype=torch.float32).copy_(
            value if isinstance(value, Tensor) else torch.tensor(value))
        bound_constant = torch.zeros(spec.size, dtype=_F64)
        bound_constant += value_bound
        theta = None
        if phase.thresholds[layer] is not None:
            theta = zero_one_thresholds(graph, layer, phase.feedback, dtype=_F64).contiguous()
        out.append(KernelLayer(
            constant, bound_constant, (kernel.Term * max(len(terms), 1))(*terms), len(terms), theta, tuple(keep),
            torch.zeros(batch, spec.size, dtype=torch.float32), torch.empty(batch, spec.size, dtype=torch.int32),
            torch.zeros(batch, dtype=torch.int64), torch.empty(batch * spec.size, dtype=torch.int32),
            torch.zeros(max(graph.sizes), dtype=_F64), torch.zeros(max(graph.sizes), dtype=torch.float32)))
    return out if any(entry is not None for entry in out) else None


BOUND_SCALE = 2 / (1 - 4 * (torch.finfo(torch.float32).eps / 2))
"""A carried float32 field within this multiple of its error bound (plus the constants') of zero
is re-checked: twice the bound, with the rounding of the comparison itself (event_sweep's test)."""


def _kernel_layer(graph: Graph, carried: EventState, layer: int, entry: KernelLayer, error: Tensor,
                  skip: Tensor | None) -> kernel.ChainLayer:
    """The kernel's ``ChainLayer`` of ``layer`` with what its decisions need (``error``: the
    carried bound, contiguous float64; ``skip``: the samples left out, or None); the loop's
    fields (J's rows, the couplings out) are filled by :func:`_chain_layer`."""
    spec, states = graph.layers[layer], carried.states
    return kernel.ChainLayer(
        size=spec.size, fields=carried.fields[layer].data_ptr(), constant=entry.constant.data_ptr(),
        bound_constant=entry.bound_constant.data_ptr(), error=error.data_ptr(),
        states=states[:, graph.slice(layer)].data_ptr(), j_d=float(spec.j_d), encoding=ENCODINGS.index(spec.encoding),
        tie=TIES.index(spec.tie), terms=ctypes.addressof(entry.terms), n_terms=entry.n_terms,
        self_after=1 if spec.J is not None else 0, theta=entry.theta.data_ptr() if entry.theta is not None else None,
        delta=entry.delta.data_ptr(), changed=entry.changed.data_ptr(), counts=entry.counts.data_ptr(),
        pairs=entry.pairs.data_ptr(), quiet=skip.data_ptr() if skip is not None else None)


def _kernel_decide(graph: Graph, carried: EventState, layer: int, entry: KernelLayer, skip: Tensor | None) -> int:
    """The kernel's decisions of ``layer`` (states, Δ and changed lists written in place), the
    samples of ``skip`` ((B,) bool, contiguous: the ``quiet`` ones of :func:`event_sweep`; or
    None) left out;
    returns the number of changed (sample, neuron) pairs."""
    error = carried.errors[layer].contiguous()
    states = carried.states
    return kernel.library().mlcm_decide(ctypes.byref(_kernel_layer(graph, carried, layer, entry, error, skip)),
                                        states.shape[0], states.stride(0), BOUND_SCALE, ctypes.byref(ctypes.c_int64()))


def _chain_outputs(graph: Graph, couplings: EventCouplings, layer: int, phase: Phase) -> list[tuple[int, float, int]] | None:
    """(post layer, strength, width) of the one-to-one couplings out of ``layer`` in ``phase``, or
    None where the kernel's loop does not take the layer: no float J with contiguous rows (Jᵀ),
    a coupling out of it with a matrix, or more than ``CHAIN_OUT`` couplings out."""
    spec, rows = graph.layers[layer], couplings.rows[layer]
    active = [c for _, c in graph.incoming_from(layer, phase.feedback) if c.strength != 0]
    if (spec.J is None or rows is None or rows.dim() != 2 or not rows.is_contiguous()
            or len(active) > kernel.CHAIN_OUT or any(c.W is not None for c in active)):
        return None
    return [(c.post, float(c.strength), min(spec.size, graph.layers[c.post].size)) for c in active]


def _chain_layer(graph: Graph, carried: EventState, layer: int, entry: KernelLayer, couplings: EventCouplings,
                 outputs: list[tuple[int, float, int]], quiet: Tensor) -> kernel.ChainLayer:
    """The complete ``ChainLayer`` of ``layer`` for ``mlcm_relax_chain``; its carried bound is
    made a contiguous copy (``carried.errors[layer]``), which the loop raises in place."""
    error = carried.errors[layer].clone(memory_format=torch.contiguous_format)
    carried.errors[layer] = error
    spec = graph.layers[layer]
    chain = _kernel_layer(graph, carried, layer, entry, error, quiet)
    chain.rows, chain.divisor = couplings.rows[layer].data_ptr(), spec.unit
    chain.scale, chain.reach = couplings.scale[layer].data_ptr(), couplings.reach[layer].data_ptr()
    chain.work, chain.group = entry.work.data_ptr(), entry.group.data_ptr()
    chain.dense_pairs, chain.n_out = int(KERNEL_DENSE_FRACTION * entry.delta.numel()), len(outputs)
    for o, (post, strength, width) in enumerate(outputs):
        chain.out_post[o], chain.out_strength[o], chain.out_width[o] = post, strength, width
    return chain


def kernel_relax(
    graph: Graph, carried: EventState, phase: Phase, couplings: EventCouplings,
    entries: list[KernelLayer | None] | None, max_sweeps: int, sweeps: Tensor, converged: Tensor,
    quiet: list[Tensor] | None, dense_fraction: float = DENSE_FRACTION,
) -> bool:
    """The layer-sequential sweeps of :func:`event_sweep` in the compiled kernel's loop
    (``mlcm_relax_chain``: the same decisions, corrections, bounds and ``quiet`` masks, without a
    return to Python per layer and sweep), updating ``sweeps`` and ``converged`` as
    :func:`~mlcm_torch.functional.dynamics.relax` does; a layer that changed too much for the
    kernel's per-sample sums comes back for the dense product by its J (:func:`_correct_own`)
    and the loop goes on. Returns False, having done nothing, where it does not apply: a layer
    the kernel does not decide, a coupling between layers with a matrix, or counters that are
    not contiguous CPU tensors."""
    if entries is None or quiet is None or any(entry is None for entry in entries) or max_sweeps <= 0:
        return False
    if (sweeps.dtype != torch.int64 or converged.dtype != torch.bool or sweeps.device.type != "cpu"
            or not (sweeps.is_contiguous() and converged.is_contiguous())):
        return False
    outputs = [_chain_outputs(graph, couplings, layer, phase) for layer in range(len(graph.layers))]
    if any(out is None for out in outputs):
        return False
    scale = [couplings.scale[layer].contiguous() for layer in range(len(graph.layers))]
    reach = [couplings.reach[layer].contiguous() for layer in range(len(graph.layers))]
    couplings = couplings._replace(scale=tuple(scale), reach=tuple(reach))
    chain = [_chain_layer(graph, carried, layer, entry, couplings, out, quiet[layer])
             for layer, (entry, out) in enumerate(zip(entries, outputs))]
    layers = (kernel.ChainLayer * len(chain))(*chain)
    position = torch.zeros(2, dtype=torch.int64)
    moved = torch.zeros(carried.states.shape[0], dtype=torch.bool)
    pending, pending_layer, rechecked = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64()
    states = carried.states
    while not kernel.library().mlcm_relax_chain(
            layers, len(chain), states.shape[0], states.stride(0), BOUND_SCALE, max_sweeps, position.data_ptr(),
            moved.data_ptr(), sweeps.data_ptr(), converged.data_ptr(), ctypes.byref(pending),
            ctypes.byref(pending_layer), ctypes.byref(rechecked)):
        layer = pending_layer.value
        entry = entries[layer]
        _correct_own(graph, couplings, carried, layer, entry.delta, dense_fraction,
                     (entry, pending.value, int(entry.counts.max())))
        error = carried.errors[layer].contiguous()
        carried.errors[layer] = error
        layers[layer].error = error.data_ptr()
    return True


def event_sweep(
    graph: Graph,
    carried: EventState,
    fixed: list[tuple[Tensor | float, Tensor | float]],
    phase: Phase,
    couplings: EventCouplings,
    sequential: bool = True,
    dense_fraction: float = DENSE_FRACTION,
    kernel_entries: list[KernelLayer | None] | None = None,
    quiet: list[Tensor] | None = None,
) -> Tensor:
    """One synchronous sweep on carried fields, in place; returns the per-sample change mask.
    ``kernel_entries`` (:func:`kernel_layers`): the layers the compiled kernel decides.
    ``quiet`` (with ``kernel_entries``; :func:`quiet_masks`, kept from sweep to sweep of one
    phase): per layer, the samples whose layer changed nothing when last decided and whose
    states and fields of that layer are unchanged since; the kernel skips them, since their
    decisions (exact, a function of the states) would change nothing again. Updated here."""
    states = carried.states
    changed = torch.zeros(states.shape[:-1], dtype=torch.bool, device=states.device)
    pending = []
    for layer, spec in enumerate(graph.layers):
        entry = kernel_entries[layer] if kernel_entries is not None else None
        if entry is not None:
            still = quiet[layer] if quiet is not None else None
            total = _kernel_decide(graph, carried, layer, entry, still)
            if still is not None:
                torch.eq(entry.counts, 0, out=still)  # this layer's quiet samples from now on
            if total:
                changed |= entry.counts > 0
                _unquiet(graph, layer, phase, quiet, still)
                lists = (entry, total, int(entry.counts.max()))
                _propagate(graph, couplings, carried, layer, entry.delta, phase, dense_fraction, lists)
            continue
        part = graph.slice(layer)
        s = states[..., part]
        value, value_bound = fixed[layer]
        h = add_self_coupling(spec, carried.fields[layer], s) + value
        new = layer_activate(spec, h, s)
        error = carried.errors[layer]
        if error is not None:
            # |h| carries ≤ error + value_bound + 2u|h| of rounding (constants); twice that as margin
            u = torch.finfo(h.dtype).eps / 2
            bound = (2 * (error + value_bound) / (1 - 4 * u)).to(h.dtype)
            unsure = h.abs() <= bound
            if bool(unsure.any()):
                cols = torch.nonzero(unsure.reshape(-1, unsure.shape[-1]).any(dim=0)).squeeze(-1)
                exact = _exact_fields(graph, states, phase, layer, cols)
                new[..., cols] = layer_activate(spec, exact, s[..., cols])
        delta = new - s
        moved = delta.ne(0).any(dim=-1)
        changed |= moved
        _unquiet(graph, layer, phase, quiet, ~moved, itself=True)
        if sequential:
            states[..., part] = new
            _propagate(graph, couplings, carried, layer, delta, phase, dense_fraction)
        else:
            pending.append((layer, part, new, delta))
    for layer, part, new, delta in pending:
        states[..., part] = new
        _propagate(graph, couplings, carried, layer, delta, phase, dense_fraction)
    return changed


def quiet_masks(graph: Graph, states: Tensor, entries: list[KernelLayer | None] | None) -> list[Tensor] | None:
    """The all-False ``quiet`` masks of :func:`event_sweep`, one (B,) bool per layer, for a
    relaxation whose layers the kernel decides (None otherwise: nothing to skip)."""
    if entries is None or all(entry is None for entry in entries):
        return None
    return [torch.zeros(states.shape[0], dtype=torch.bool) for _ in graph.layers]


def _unquiet(graph: Graph, layer: int, phase: Phase, quiet: list[Tensor] | None, still: Tensor,
             itself: bool = False) -> None:
    """Clear ``quiet`` of the layers whose fields ``layer`` moves (and of ``layer`` itself) for
    the samples not ``still``."""
    if quiet is None:
        return
    for _, coupling in graph.incoming_from(layer, phase.feedback):
        if coupling.strength != 0:
            quiet[coupling.post] &= still
    if itself:
        quiet[layer] &= still


def start_exact(graph: Graph, states: Tensor, phase: Phase) -> EventState:
    """Dense F^l in float64 (the asynchronous event sweep carries float64 accumulators)."""
    fields = []
    for layer, spec in enumerate(graph.layers):
        s = states[..., graph.slice(layer)]
        if spec.J is None or not bool(s.any()):
            value = s.new_zeros(s.shape)
        elif spec.J.dtype == torch.int8:
            value = coupling_sum(spec, s.float()).to(_F64)
        else:
            value = torch.matmul(s, spec.J.to(_F64).transpose(-1, -2)) / spec.unit
        for _, coupling in graph.incoming(layer, phase.feedback):
            if isinstance(coupling.pre, str) or coupling.strength == 0:
                continue
            pre = states[..., graph.slice(coupling.pre)]
            if coupling.W is not None:
                value = value + coupling.strength * (pre @ coupling.W.to(_F64).T)
            else:
                value = value + coupling.strength * F.pad(pre, (0, spec.size - pre.shape[-1]))
        fields.append(value)
    return EventState(states, fields, [None] * len(fields))


def _column(matrix: Tensor, rows: Tensor | None, i: int) -> Tensor:
    """Column i of M (its couplings from presynaptic neuron i) in float64, (*nets, N_post)."""
    return (rows[..., i, :] if rows is not None else matrix[..., :, i]).to(_F64)


def async_event_sweep(
    graph: Graph,
    carried: EventState,
    fixed: list[Tensor | float],
    phase: Phase,
    couplings: EventCouplings,
    order: list[tuple[int, Tensor]],
) -> Tensor:
    """One asynchronous sweep in ``order`` on float64 carried fields, in place; returns the
    per-sample change mask.

    Exactly sequential: the decisions of all remaining neurons of a run are evaluated at once
    from the current fields; the first position where some sample changes is applied and its
    couplings correct the fields; the scan resumes after it. Positions before it change in no
    sample, so skipping them is exact.
    """
    states, fields = carried.states, carried.fields
    changed = torch.zeros(states.shape[:-1], dtype=torch.bool, device=states.device)
    for layer, neurons in order:
        spec = graph.layers[layer]
        offset = graph.offsets[layer]
        neurons = neurons.to(states.device)
        if _async_kernel(graph, carried, fixed, phase, couplings, neurons, changed):
            continue
        position = 0
        while position < neurons.numel():
            idx = neurons[position:]
            s = states[..., offset + idx]
            constant = fixed[layer] if not isinstance(fixed[layer], Tensor) else fixed[layer][..., idx]
            new = layer_activate(spec, add_self_coupling(spec, fields[layer][..., idx], s) + constant, s)
            flips = (new != s).reshape(-1, idx.numel()).any(dim=0)
            if not bool(flips.any()):
                break
            first = int(torch.argmax(flips.to(torch.uint8)))
            i = int(idx[first])
            delta = new[..., first] - s[..., first]
            states[..., offset + i] = new[..., first]
            changed |= delta != 0
            if spec.J is not None:
                column = _column(spec.J, couplings.rows[layer], i)
                scale = 1.0 if spec.J.dtype == torch.int8 else 1.0 / spec.unit
                fields[layer] += (delta * scale).unsqueeze(-1) * column.unsqueeze(-2)
            for k, coupling in graph.incoming_from(layer, phase.feedback):
                if coupling.strength == 0:
                    continue
                if coupling.W is None:
                    if i < graph.layers[coupling.post].size:
                        fields[coupling.post][..., i] += coupling.strength * delta
                else:
                    column = _column(coupling.W, couplings.coupling_rows[k], i)
                    fields[coupling.post] += coupling.strength * delta.unsqueeze(-1) * column.unsqueeze(-2)
            position += first + 1
    return changed


def exact_fixed(graph: Graph, carried: EventState, fixed: list[Tensor | float]) -> Tensor:
    """(*batch,) bool: every neuron's decision on its carried float64 field (those of
    :func:`async_event_sweep`) keeps its state, i.e. a sweep would change nothing."""
    states = carried.states
    out = torch.ones(states.shape[:-1], dtype=torch.bool, device=states.device)
    for layer, spec in enumerate(graph.layers):
        s = states[..., graph.slice(layer)]
        h = add_self_coupling(spec, carried.fields[layer], s) + fixed[layer]
        out &= (layer_activate(spec, h, s) == s).all(dim=-1)
    return out


def _async_kernel(
    graph: Graph, carried: EventState, fixed: list[Tensor | float], phase: Phase, couplings: EventCouplings,
    neurons: Tensor, changed: Tensor,
) -> bool:
    """The sweep of :func:`async_event_sweep` over ``neurons`` in the compiled kernel
    (``mlcm_async_event_*``: the same decisions and the same float64 corrections, operation for
    operation), for a one-layer ±1 network with float couplings (*nets, N, N) and a constant
    part that is one number, on the CPU; ``changed`` is updated in place. False (nothing done)
    where it does not apply."""
    lib = kernel.library()
    spec = graph.layers[0]
    states, fields = carried.states, carried.fields[0]
    rows = couplings.rows[0]
    if (lib is None or len(graph.layers) != 1 or states.device.type != "cpu" or rows is None
            or spec.encoding != "pm1" or spec.k_winners is not None or spec.tie not in ("flip", "keep")
            or not isinstance(fixed[0], float) or rows.dtype not in (torch.float32, _F64)
            or graph.incoming_from(0, phase.feedback)
            or not (states.is_contiguous() and fields.is_contiguous() and rows.is_contiguous())):
        return False
    n = spec.size
    nets = 1 if rows.dim() == 2 else rows.shape[0]
    if rows.dim() > 3 or (nets > 1 and (states.dim() != 3 or states.shape[0] != nets)):
        return False
    j_d = spec.j_d if isinstance(spec.j_d, Tensor) else torch.tensor(float(spec.j_d), dtype=_F64)
    j_d = j_d.to(device="cpu", dtype=states.dtype)
    if j_d.dim() == 0:
        j_d = j_d.expand(nets)
    if j_d.shape != (nets,):
        return False
    j_d = j_d.contiguous()
    order = neurons.to(torch.int64).contiguous()
    flags = torch.zeros(changed.shape, dtype=torch.uint8)
    run = lib.mlcm_async_event_f32 if rows.dtype == torch.float32 else lib.mlcm_async_event_f64
    run(fields.data_ptr(), states.data_ptr(), rows.data_ptr(), nets, states.numel() // (nets * n), n,
        order.data_ptr(), order.numel(), j_d.data_ptr(), fixed[0], 1.0 / spec.unit, int(spec.tie == "keep"),
        flags.data_ptr())
    changed |= flags.bool()
    return True


def exact_constants(graph: Graph, phase: Phase) -> list[Tensor | float]:
    """The phase-constant part of each layer's field (source drives − θ) in float64, from the
    raw sources of the phase."""
    sources = {"input": phase.x, "label": phase.y}
    out = []
    for layer, spec in enumerate(graph.layers):
        value: Tensor | float = 0.0
        for _, coupling in graph.incoming(layer, phase.feedback):
            source = sources.get(coupling.pre) if isinstance(coupling.pre, str) else None
            if source is None or coupling.strength == 0:
                continue
            exact = coupling._replace(W=coupling.W.to(_F64) if coupling.W is not None else None)
            value = value + source_drive(exact, source if not source.is_floating_point() else source.to(_F64), spec.size)
        if phase.thresholds[layer] is not None:
            value = value - zero_one_thresholds(graph, layer, phase.feedback, dtype=_F64)
        out.append(value)
    return out
