"""Row L1 bounds of a network's couplings, carried across local updates, so that the event
backend's error bounds (:func:`~mlcm_torch.functional.events.event_couplings`) cost no pass over
the couplings after every training step."""

from __future__ import annotations

import weakref
from typing import NamedTuple

from torch import Tensor

from mlcm_torch.functional.events import _row_l1, row_l1_after_update

REFRESH_SLACK = 1.0
"""A carried bound is dropped (and recomputed by one pass over the matrix) once the slack it may
have gathered, a worst case, reaches this fraction of it, so that it stays within twice an exact
pass (``mnist.yaml``, 300 steps: 1.0–1.9 times, mean ≈ 1.2; a pass over W_in every ~30 steps,
over J every ~150): a looser bound only re-checks more neurons in double precision, never
changes a decision."""


class _Entry(NamedTuple):
    tensor: weakref.ref
    version: int
    bound: Tensor
    slack: Tensor


class RowL1Bounds:
    """Upper bounds on Σ_j |W_ij| of the coupling matrices, valid for one version of each.

    Called with a matrix (as ``event_couplings(..., row_l1=bounds)``), it returns the bound kept
    for the matrix's current version, or makes one by a pass over it. :meth:`advance` carries a
    kept bound across an ``addmm_`` update (:func:`~mlcm_torch.functional.events.row_l1_after_update`)
    and records the new version; any other change of the matrix (an optimizer step, a checkpoint
    load) changes its version, and the next call makes a fresh bound. The slack a carried bound
    may have gathered, per row (s ← |β| s + 2 (new − |β| old): a row's sum can fall by as much as
    the update may add), is tracked, and the bound dropped beyond :data:`REFRESH_SLACK`.
    """

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}

    def __reduce__(self):
        return RowL1Bounds, ()  # copies and pickles start empty (weak references do not pickle)

    def _valid(self, W: Tensor) -> _Entry | None:
        entry = self._entries.get(id(W))
        if entry is not None and entry.tensor() is W and entry.version == W._version:
            return entry
        return None

    def __call__(self, W: Tensor) -> Tensor:
        entry = self._valid(W)
        if entry is None:
            self._entries = {key: e for key, e in self._entries.items() if e.tensor() is not None}
            bound = _row_l1(W)
            entry = _Entry(weakref.ref(W), W._version, bound, bound.new_zeros(bound.shape))
            self._entries[id(W)] = entry
        return entry.bound

    def kept(self, W: Tensor) -> bool:
        """Whether a bound for W's current version is kept (so :meth:`advance` can carry it)."""
        return self._valid(W) is not None

    def advance(self, W: Tensor, version: int, post: Tensor, pre: Tensor, scale: float, beta: float) -> None:
        """W, at ``version`` before, was updated in place to W' = β W + scale · postᵀ pre (then
        masked); carry the bound kept for ``version`` to W's new version, or drop it (none kept, or
        too loose)."""
        entry = self._entries.get(id(W))
        if entry is None or entry.tensor() is not W or entry.version != version or not W.is_floating_point():
            self._entries.pop(id(W), None)
            return
        bound = row_l1_after_update(entry.bound, post, pre, scale, beta)
        slack = abs(beta) * entry.slack + 2 * (bound - abs(beta) * entry.bound)
        if bool((slack > REFRESH_SLACK * bound).any()):
            self._entries.pop(id(W))
            return
        self._entries[id(W)] = _Entry(entry.tensor, W._version, bound, slack)
