"""Local fields (thesis eq. 6.1, generalised to any :class:`~.graph.Graph`; eq. 7.1 for {0, 1}
states; eq. 3.1 for the random networks of the physics) and the neuron's decision.

This is the one place where a field is computed. States are flat ``(*batch, total)``;
:func:`layer_fields` returns the fields of one layer (or of some of its neurons, for the
asynchronous schedules), :func:`fields` those of every layer, concatenated like the states.
For a ``{0, 1}`` layer the returned value is the argument of θ: the thresholds κ + γ of
:func:`zero_one_thresholds` are already subtracted.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mlcm_torch.functional.graph import Coupling, Graph, Layer, Phase
from mlcm_torch.functional.packed import sign_sum

_CHUNK_BYTES = 1 << 28
"""int8 couplings are converted to float32 in row chunks of at most this many bytes."""


PRODUCT_BLOCK = 100
"""Products of a few samples with a wide matrix on the CPU (:func:`blocked_product`) sum the
shared dimension in blocks of at least this many: each result is a sum of Q ≈ n/100 block sums,
whose rounding is bounded by γ_(n/Q + Q + 1) instead of γ_n for one product over all n (at
n = 1600: γ_117 against γ_1600), in any order of evaluation (γ_a + γ_b + γ_a γ_b ≤ γ_(a+b)).
The event backend's re-checks (:mod:`~mlcm_torch.functional.events`) and the exact margins of
the learning rule (:func:`~mlcm_torch.functional.plasticity.unstable_neurons`) re-evaluate in
float64 whatever lies within such a bound, so a tighter bound means fewer of them
(``mnist.yaml``, a one-off count of the kernel's re-checks: 15.7 per sweep with plain products,
8.5 with blocked J products)."""
PRODUCT_ROWS = 32
"""Only products of at most this many samples are blocked: there the plain product is bound by
reading the matrix and the blocked one (one batched GEMM over views of the blocks, then their
sum) costs about as much (16 × 1600 by 1600 × 1600: 1.0-1.2 ms against 0.8-1.0 ms, one thread),
while for larger batches its block sums (Q × rows × N) cost more than the re-checks they save
(×1.2 at 128 samples, ×2.8 at 1000; inference on 500-sample batches ran ~30 % slower)."""


def rounding_gamma(n: int, dtype: torch.dtype) -> float:
    """γ_n = n u / (1 − n u): relative error bound of a sum of n floating-point products (u the
    unit roundoff of ``dtype``)."""
    u = torch.finfo(dtype).eps / 2
    return n * u / (1 - n * u)


def product_blocks(rows: int, width: int, device: torch.device) -> int:
    """Q, the number of blocks :func:`blocked_product` sums a product of ``rows`` samples over
    a shared dimension ``width`` in (1: one plain product)."""
    if device.type != "cpu" or rows > PRODUCT_ROWS or width < 2 * PRODUCT_BLOCK:
        return 1
    return width // PRODUCT_BLOCK


def product_depth(rows: int, width: int, device: torch.device) -> int:
    """A bound on the number of roundings any term of :func:`blocked_product` meets, so that its
    error is within γ_depth Σ_j |a_j b_j|: ``width`` for one plain product, else
    ⌊width/Q⌋ + Q + 1 (block sums, their sum, and the remainder's product)."""
    blocks = product_blocks(rows, width, device)
    return width if blocks == 1 else width // blocks + blocks + 1


def blocked_product(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` for ``a`` (rows, n) and ``b`` (n, M), the n terms of each result summed in
    :func:`product_blocks` blocks of ⌊n/Q⌋ (one batched GEMM over views, then the sum of the Q
    block sums; the remainder n − Q⌊n/Q⌋ < Q in one more product); a plain product where
    Q = 1 or ``a`` is not 2-D. Any layout of ``b`` whose blocks are views (rows of ``b``
    contiguous, or ``b`` the transpose of a row-major matrix)."""
    width = a.shape[-1]
    blocks = product_blocks(a.shape[0], width, a.device) if a.dim() == 2 and b.dim() == 2 else 1
    if blocks == 1:
        return a @ b
    size = width // blocks
    full = size * blocks
    left = a[:, :full].reshape(a.shape[0], blocks, size).transpose(0, 1)
    right = b[:full].unflatten(0, (blocks, size))
    out = torch.bmm(left, right).sum(dim=0)
    if full < width:
        out += a[:, full:] @ b[full:]
    return out


def source_drive(coupling: Coupling, value: Tensor, size: int) -> Tensor:
    """λ W v (or λ v zero-padded to ``size`` for a one-to-one coupling) of a clamped source:
    the input ``x`` (B, d), or the label as class indices (B,) or target vectors (B, C). The
    product is a :func:`blocked_product` (its rounding within γ_depth of
    :func:`product_depth`)."""
    if coupling.W is None:
        return coupling.strength * F.pad(value, (0, size - value.shape[-1]))
    if coupling.pre == "label" and not value.is_floating_point():
        return coupling.strength * coupling.W.T[value]
    return coupling.strength * blocked_product(value.to(coupling.W.dtype), coupling.W.T)


def prepare_phase(graph: Graph, x: Tensor | None, y: Tensor | None, feedback: bool,
                  like: Phase | None = None) -> Phase:
    """The fixed part of one relaxation phase: the source drives (computed once) and the
    {0, 1} thresholds. ``feedback`` switches the feedback couplings (rightward neighbours,
    label) on; the label drive is computed only then, and only when ``y`` is given. ``like``:
    another phase of the same ``x`` and couplings, whose drives are reused (the same tensors)."""
    drives = []
    for k, coupling in enumerate(graph.couplings):
        value = {"input": x, "label": y}.get(coupling.pre) if isinstance(coupling.pre, str) else None
        active = value is not None and (feedback or not coupling.feedback)
        if active and like is not None and like.drives[k] is not None and coupling.pre == "input":
            drives.append(like.drives[k])
        else:
            drives.append(source_drive(coupling, value, graph.layers[coupling.post].size) if active else None)
    thresholds = tuple(
        zero_one_thresholds(graph, layer, feedback) if graph.layers[layer].encoding == "01" else None
        for layer in range(len(graph.layers))
    )
    return Phase(feedback and y is not None, tuple(drives), thresholds, x, y if feedback else None)


def _pre_is_01(graph: Graph, coupling: Coupling) -> bool:
    if coupling.pre == "label":
        return False
    if coupling.pre == "input":
        return graph.input_encoding == "01"
    return graph.layers[coupling.pre].encoding == "01"


def _pre_size(graph: Graph, coupling: Coupling) -> int:
    if coupling.pre == "input":
        return graph.in_features
    if coupling.pre == "label":
        return coupling.W.shape[1] if coupling.W is not None else 0
    return graph.layers[coupling.pre].size


def zero_one_thresholds(
    graph: Graph, layer: int, feedback: bool, neurons: slice | Tensor = slice(None), dtype: torch.dtype | None = None
) -> Tensor:
    """κ_i + γ of a {0, 1} layer (thesis eq. 7.1, §7.2), shape (N,) (or of ``neurons``), for the
    couplings active in the phase: κ_i = ½ (Σ_{j≠i} J_ij + J_D + Σ_c λ_c Σ_j W^c_ij) over the
    couplings whose presynaptic side is itself {0, 1} (layers and the input; the label enters
    unchanged). Each term is the shift that turns a field of ±1 states into one of
    z = (s + 1)/2, so with γ = 0 the {0, 1} dynamics equal the ±1 dynamics on s = 2z − 1.
    ``dtype``: compute in this dtype (default: the couplings')."""
    spec = graph.layers[layer]
    if dtype is None:
        dtype = spec.J.dtype if spec.J is not None and spec.J.is_floating_point() else torch.float32
    device = spec.J.device if spec.J is not None else None
    scalar = torch.zeros((), dtype=dtype, device=device)
    vectors = []
    for _, coupling in graph.incoming(layer, feedback):
        if not _pre_is_01(graph, coupling):
            continue
        pre_size = _pre_size(graph, coupling)
        if coupling.W is None and pre_size == spec.size:
            scalar = scalar + coupling.strength
        elif coupling.W is None:
            ones = torch.ones(pre_size, dtype=dtype, device=device)
            vectors.append(coupling.strength * F.pad(ones, (0, spec.size - pre_size))[neurons])
        else:
            vectors.append(coupling.strength * coupling.W[neurons].to(dtype).sum(dim=1))
    size = torch.arange(spec.size)[neurons].numel()
    kappa = (scalar + spec.j_d).expand(size)
    if spec.J is not None:
        row_sums = spec.J[neurons].to(dtype).sum(dim=-1)
        kappa = kappa + row_sums / spec.unit if spec.unit != 1.0 else kappa + row_sums
    for vector in vectors:
        kappa = kappa + vector
    return 0.5 * kappa + spec.gamma


def _self_coupling(j_d: float | Tensor, s: Tensor) -> Tensor:
    if isinstance(j_d, Tensor):
        j_d = j_d.to(device=s.device, dtype=s.dtype).reshape(*j_d.shape, *([1] * (s.dim() - j_d.dim())))
    return j_d * s


def coupling_sum(spec: Layer, s: Tensor, neurons: slice | Tensor = slice(None)) -> Tensor:
    """Σ_j J_ij s_j of ``neurons`` for a layer with states ``s`` (*batch, N): physical units
    for float couplings, coupling units (exact integers) for int8 signs.

    int8 signs with ±1 float32 states on the CPU are summed from bits
    (:func:`~mlcm_torch.functional.packed.sign_sum`), other int8 couplings converted in row
    chunks; both are exact (float32 accumulation of ±1 terms is exact below 2^24 neurons). All-zero states (the first sweep from ``init_state="zeros"``) give
    zeros without the product on the CPU (on a GPU the test would cost a host sync).
    """
    J = spec.J
    if J is None or (s.device.type == "cpu" and isinstance(neurons, slice) and not bool(s.any())):
        return s.new_zeros(s[..., neurons].shape)
    if J.dtype != torch.int8:
        h = torch.matmul(s, J[..., neurons, :].transpose(-1, -2))
        return h / spec.unit if spec.unit != 1.0 else h
    packed = sign_sum(J, s, neurons)
    if packed is not None:
        return packed
    rows = J[..., neurons, :]
    n_rows = rows.shape[-2]
    out = torch.empty((*s.shape[:-1], n_rows), dtype=s.dtype, device=s.device)
    step = max(1, _CHUNK_BYTES // (4 * rows.shape[-1]))
    for r0 in range(0, n_rows, step):
        chunk = rows[..., r0:r0 + step, :].to(s.dtype)
        out[..., r0:r0 + step] = torch.matmul(s, chunk.transpose(-1, -2))
    return out


def add_self_coupling(spec: Layer, h: Tensor, s: Tensor) -> Tensor:
    """h + J_D s for the states ``s`` of the neurons of ``h``. For int8 couplings ``h`` is in
    coupling units and the result is the physical field in float64, (h + J_D·unit·s) / unit,
    whose sign is the exact sign of the field (h is an exact integer)."""
    if spec.J is not None and spec.J.dtype == torch.int8:
        exact = h.to(torch.float64) + _self_coupling(spec.j_d, s.to(torch.float64)) * spec.unit
        return exact / spec.unit
    return h + _self_coupling(spec.j_d, s)


def layer_fields(
    graph: Graph,
    states: Tensor,
    layer: int,
    phase: Phase,
    neurons: slice | Tensor = slice(None),
    self_coupling: bool = True,
) -> Tensor:
    """Fields of ``neurons`` of ``layer`` (default: all), shape (*batch, n), in the order
    J s + J_D s + forward couplings + feedback couplings − θ (thesis eq. 6.1).

    ``self_coupling=False`` leaves J_D s out (see :func:`add_self_coupling`): the
    asynchronous sweep adds it at each neuron's decision.
    """
    spec = graph.layers[layer]
    s = states[..., graph.slice(layer)]
    h = coupling_sum(spec, s, neurons)
    if self_coupling:
        h = add_self_coupling(spec, h, s[..., neurons])
    for k, coupling in graph.incoming(layer, phase.feedback):
        if coupling.strength == 0:
            continue
        if isinstance(coupling.pre, str):
            drive = phase.drives[k]
            if drive is not None:
                h = h + drive[..., neurons]
            continue
        pre = states[..., graph.slice(coupling.pre)]
        if coupling.W is not None:
            h = h + coupling.strength * (pre @ coupling.W[neurons].T)
        else:
            if pre.shape[-1] != spec.size:
                pre = F.pad(pre, (0, spec.size - pre.shape[-1]))
            h = h + coupling.strength * pre[..., neurons]
    threshold = phase.thresholds[layer]
    if threshold is not None:
        h = h - threshold[neurons]
    return h


def fields(graph: Graph, states: Tensor, phase: Phase) -> Tensor:
    """Fields of every layer, (*batch, total) like ``states``."""
    parts = [layer_fields(graph, states, layer, phase) for layer in range(len(graph.layers))]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def activate(
    h: Tensor,
    encoding: str = "pm1",
    k_winners: int | None = None,
    *,
    tie: str = "plus",
    states: Tensor | None = None,
) -> Tensor:
    """The neuron's decision on fields ``h`` (..., N), as states of ``states``' dtype.

    ``pm1``: s = sign(h); ``01``: z = θ(h) (``h`` has κ + γ subtracted). The zero field
    follows ``tie`` (:data:`~.graph.Tie`; ``flip`` and ``keep`` need the current ``states``).
    With ``k_winners`` = k only the k largest fields of each layer are active.
    """
    if k_winners is None and encoding == "pm1" and tie != "plus":
        # ±1 states: "flip" keeps s_i iff s_i h_i > 0, "keep" flips s_i iff s_i h_i < 0.
        return torch.where(states * h > 0, states, -states) if tie == "flip" else torch.where(states * h < 0, -states, states)
    inactive = -1.0 if encoding == "pm1" else 0.0
    dtype = states.dtype if states is not None else h.dtype
    if k_winners is not None:
        top = h.topk(k_winners, dim=-1).indices
        active = torch.zeros_like(h, dtype=torch.bool).scatter_(-1, top, True)
    elif tie == "plus":
        active = h >= 0
    else:
        was_active = states > (0.0 if encoding == "pm1" else 0.5)
        if tie == "flip":
            sigma = torch.where(was_active, 1.0, -1.0).to(h.dtype)
            active = torch.where(sigma * h > 0, was_active, ~was_active)
        else:
            active = torch.where(h == 0, was_active, h > 0)
    return torch.where(active, 1.0, inactive).to(dtype)


def layer_activate(spec: Layer, h: Tensor, states: Tensor) -> Tensor:
    """:func:`activate` with the layer's encoding, tie rule and k-winners-take-all."""
    return activate(h, spec.encoding, spec.k_winners, tie=spec.tie, states=states)


def stable(graph: Graph, states: Tensor, phase: Phase) -> Tensor:
    """Boolean (*batch, total): neurons whose decision on their field leaves them unchanged."""
    parts = []
    for layer, spec in enumerate(graph.layers):
        s = states[..., graph.slice(layer)]
        parts.append(layer_activate(spec, layer_fields(graph, states, layer, phase), s) == s)
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def is_fixed_point(graph: Graph, states: Tensor, phase: Phase) -> Tensor:
    """Boolean (*batch,): every neuron stable — a sweep of any schedule leaves the state as is."""
    return stable(graph, states, phase).all(dim=-1)
