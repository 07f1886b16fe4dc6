"""Fields of binary couplings from bits: one bit per coupling sign and per state.

The physics' binary networks store their couplings as int8 signs B_ij = ±1 (zero diagonal,
J = B/√N). For ±1 states the coupling sum of neuron i is an exact integer,

    Σ_(j≠i) B_ij s_j = (n − 2 · popcount(B_i XOR s)) − s_i,

with the signs packed one bit per value (bit set: +1) and the diagonal packed as +1, whose
term s_i is then taken off. The compiled kernel (:mod:`~mlcm_torch.functional.kernel`) packs and
counts; the result is the same exact integer as the float32 product of the unpacked path
(:func:`~mlcm_torch.functional.fields.coupling_sum`), so nothing but the speed changes: 64
couplings per 8-byte word instead of converting each int8 coupling to float32 every sweep.

A coupling tensor is packed once and the bits are kept while it lives and is not modified in
place (its version counter), or re-packed. Where the fast path does not apply (no compiler,
not the CPU, states other than float32 ±1, entries other than ±1 off the diagonal or 0 on
it, or network batches that do not match the states), :func:`sign_sum` returns None and the
caller runs the unpacked product.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor

from mlcm_torch.functional import kernel

_WORD = 64
_cache: dict[int, tuple[weakref.ref, int, Tensor | None]] = {}


def _words(n: int) -> int:
    return (n + _WORD - 1) // _WORD


def _version(J: Tensor) -> int | None:
    try:
        return J._version
    except RuntimeError:  # inference tensors carry no version counter: pack, do not keep
        return None


def network_batches(matrix: Tensor, matrix_dims: int, values: Tensor) -> tuple[int, int] | None:
    """(networks, samples per network) of ``values`` (*batch, width) for a ``matrix`` whose last
    ``matrix_dims`` dimensions are one network's and which may batch networks in one leading
    dimension (then ``values`` must be (M, B, width)); None where they do not match."""
    extra = matrix.dim() - matrix_dims
    if extra == 0:
        return 1, values.numel() // values.shape[-1]
    if extra == 1 and values.dim() == 3 and values.shape[0] == matrix.shape[0]:
        return matrix.shape[0], values.shape[1]
    return None


def packed_couplings(J: Tensor) -> Tensor | None:
    """The bits of int8 signs ``J`` (*nets, n, n) as int64 words (*nets, n, words), or None when
    an entry is not ±1 off the diagonal or not 0 on it (or the kernel is unavailable)."""
    lib = kernel.library()
    if lib is None or J.dtype != torch.int8 or J.device.type != "cpu":
        return None
    key, version = id(J), _version(J)
    entry = _cache.get(key)
    if entry is not None and entry[0]() is J and version is not None and entry[1] == version:
        return entry[2]
    n = J.shape[-1]
    values = J.contiguous()
    bits = torch.empty((*J.shape[:-1], _words(n)), dtype=torch.int64)
    bad = lib.mlcm_pack_signs_int8(values.data_ptr(), values.numel() // n, n, bits.data_ptr(), _words(n))
    result = None if bad else bits
    if version is not None:
        _cache[key] = (weakref.ref(J, lambda _, key=key: _cache.pop(key, None)), version, result)
    return result


def sign_sum(J: Tensor, s: Tensor, neurons: slice | Tensor = slice(None)) -> Tensor | None:
    """Σ_(j≠i) B_ij s_j for ``neurons`` of int8 signs ``J`` ((n, n), or (M, n, n) with states
    (M, B, n)) and float32 ±1 states ``s`` (*batch, n), as exact integers in float32 of shape
    (*batch, len(neurons)); None where the packed path does not apply (see the module)."""
    n = J.shape[-1]
    shape = network_batches(J, 2, s)
    if s.dtype != torch.float32 or s.device.type != "cpu" or s.shape[-1] != n or shape is None:
        return None
    nets, batch = shape
    bits = packed_couplings(J)
    if bits is None:
        return None
    lib = kernel.library()
    values = s.contiguous()
    state_bits = torch.empty((nets * batch, _words(n)), dtype=torch.int64)
    if lib.mlcm_pack_signs_float(values.data_ptr(), nets * batch, n, n, state_bits.data_ptr(), _words(n)):
        return None
    index = torch.arange(n) if isinstance(neurons, slice) else neurons.to(device="cpu", dtype=torch.int64)
    if isinstance(neurons, slice):
        index = index[neurons]
    index = index.contiguous()
    if index.numel() and not (0 <= int(index.min()) and int(index.max()) < n):
        return None
    out = torch.empty((*s.shape[:-1], index.numel()), dtype=torch.float32)
    lib.mlcm_sign_fields(bits.data_ptr(), state_bits.data_ptr(), index.data_ptr(), index.numel(),
                         nets, batch, n, _words(n), out.data_ptr())
    return out


def sign_async(J: Tensor, states: Tensor, order: Tensor, theta: Tensor, keep: bool) -> bool:
    """One exactly sequential asynchronous sweep of ``order`` over the ±1 float32 ``states``
    (*batch, n) in place, with int8 signs ``J`` as in :func:`sign_sum`: neuron i stays where
    s_i · Σ_(j≠i) B_ij s_j > theta (``keep``: ≥), theta broadcast to the batch (the
    self-coupling threshold in coupling units). False, with ``states`` untouched, where the
    packed path does not apply (then the caller runs its own loop)."""
    n = J.shape[-1]
    shape = network_batches(J, 2, states)
    if states.dtype != torch.float32 or states.device.type != "cpu" or not states.is_contiguous() or shape is None:
        return False
    nets, batch = shape
    index = order.to(device="cpu", dtype=torch.int64).contiguous()
    if index.numel() and not (0 <= int(index.min()) and int(index.max()) < n):
        return False
    bits = packed_couplings(J)
    if bits is None or not bool(((states == 1) | (states == -1)).all()):
        return False
    thresholds = theta.to(device="cpu", dtype=torch.float64).expand(states.shape[:-1]).contiguous()
    work = torch.empty(_words(n), dtype=torch.int64)
    kernel.library().mlcm_sign_async(bits.data_ptr(), states.data_ptr(), nets, batch, n, _words(n),
                                     index.data_ptr(), index.numel(), thresholds.data_ptr(), int(keep),
                                     work.data_ptr())
    return True
