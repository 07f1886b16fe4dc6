"""Number of fixed points vs self-coupling (thesis eq. 3.2, ch. 3).

A state s is a fixed point of J (zero diagonal) with self-coupling J_D when
s_i (Σ_j J_ij s_j + J_D s_i) > 0 for all i, i.e. when its stability margin
m(s) = min_i s_i Σ_j J_ij s_j exceeds −J_D. Exact enumeration computes m(s) once for all
2^N states (m(−s) = m(s), so half of them suffice) and counts every J_D at once.

For i.i.d. couplings of variance 1/N the rows are independent, so for each state the N
stability events are independent and E[#fixed points] = (2 p)^N with
p = P(Σ_(j≠i) J_ij s_j > −J_D); as N → ∞, p → Φ(J_D) and the annealed entropy per neuron is
ln(1 + erf(J_D/√2)) (thesis eq. 3.2).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats
from tqdm.auto import tqdm

from mlcm_torch.physics.networks import COUPLING_KINDS, check_sizes, check_values, random_couplings

MAX_ENUMERATION_N = 24


def annealed_entropy(j_d: float) -> float:
    """ln(1 + erf(J_D/√2)): (1/N) ln E[#fixed points] for N → ∞ (thesis eq. 3.2)."""
    j_d = float(j_d)
    if not math.isfinite(j_d):
        raise ValueError(f"j_d must be a finite number, got {j_d!r}")
    return math.log1p(math.erf(j_d / math.sqrt(2.0)))


def expected_entropy(n: int, j_d: float, kind: str = "gaussian") -> float:
    """(1/N) ln E[#fixed points] exactly at finite N, for the N−1 i.i.d. couplings of a row.

    gaussian J_ij ~ N(0, 1/N): p = Φ(J_D √(N/(N−1))); binary J_ij = ±1/√N: p = P(X > −J_D√N)
    with X a sum of N−1 independent ±1. Returns ln(2p), or −inf when p = 0.
    """
    if isinstance(n, bool) or int(n) != n or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if kind not in COUPLING_KINDS:
        raise ValueError(f"kind must be one of {COUPLING_KINDS}, got {kind!r}")
    j_d = float(j_d)
    if not math.isfinite(j_d):
        raise ValueError(f"j_d must be a finite number, got {j_d!r}")
    if kind == "gaussian":
        p = stats.norm.cdf(j_d * math.sqrt(n / (n - 1)))
    else:
        c = (n - 1 + j_d * math.sqrt(n)) / 2.0
        p = stats.binom.cdf(math.ceil(c) - 1, n - 1, 0.5)
    return math.log(2.0 * p) if p > 0 else -math.inf


def _as_couplings(j: torch.Tensor | np.ndarray) -> torch.Tensor:
    j = torch.as_tensor(j)
    if j.dim() == 2:
        j = j.unsqueeze(0)
    if j.dim() != 3 or j.shape[-1] != j.shape[-2]:
        raise ValueError(f"J must have shape (N, N) or (M, N, N), got {tuple(j.shape)}")
    n = j.shape[-1]
    if not 1 <= n <= MAX_ENUMERATION_N:
        raise ValueError(f"exact enumeration needs 1 <= N <= {MAX_ENUMERATION_N}, got N={n}")
    j = j.to(torch.float64)
    if not torch.isfinite(j).all():
        raise ValueError("J must be finite")
    if torch.any(torch.diagonal(j, dim1=-2, dim2=-1) != 0):
        raise ValueError("J must have a zero diagonal: the self-coupling is passed separately as j_d")
    return j


def _integer_scale(j: torch.Tensor) -> float | None:
    """c when every off-diagonal |J_ij| equals c (binary couplings): then J/c is exact ±1."""
    n = j.shape[-1]
    if n < 2:
        return None
    off = j.abs()[:, ~torch.eye(n, dtype=torch.bool, device=j.device)]
    c = float(off.max())
    return c if c > 0 and bool(torch.all(off == c)) else None


def fixed_point_counts(
    j: torch.Tensor | np.ndarray, j_d_values, *, batch: int | None = None, progress: bool = False
) -> torch.Tensor:
    """Exact number of fixed points for every network and J_D, shape (M, K), int64.

    J: (N, N) or (M, N, N) with zero diagonal, N ≤ 24. All 2^N states are enumerated in batches
    on J's device. For binary couplings (all |J_ij| equal) the margins are computed in exact
    integer units. Returns a CPU tensor.
    """
    j = _as_couplings(j)
    dev = j.device
    j_d = torch.as_tensor(j_d_values, dtype=torch.float64, device=dev).reshape(-1)
    if j_d.numel() == 0 or not torch.isfinite(j_d).all():
        raise ValueError("j_d_values must be a non-empty list of finite numbers")
    m, n = j.shape[0], j.shape[-1]
    c = _integer_scale(j)
    thresholds = torch.floor(-j_d / c) if c is not None else -j_d
    units = j / c if c is not None else j
    order = torch.argsort(thresholds)
    sorted_thresholds = thresholds[order].contiguous()
    k = j_d.numel()
    if batch is None:
        batch = max(1024, (1 << 23) // (m * n))
    half = 1 << (n - 1)
    bit_values = 1 << torch.arange(n - 1, dtype=torch.int64, device=dev)
    hist = torch.zeros(m * (k + 1), dtype=torch.int64, device=dev)
    offsets = (torch.arange(m, dtype=torch.int64, device=dev) * (k + 1)).unsqueeze(1)
    for start in tqdm(range(0, half, batch), disable=not progress, desc=f"enumerate 2^{n}", leave=False):
        codes = torch.arange(start, min(half, start + batch), dtype=torch.int64, device=dev)
        bits = (codes.unsqueeze(1) & bit_values) != 0
        s = torch.ones((codes.numel(), n), dtype=torch.float64, device=dev)
        s[:, : n - 1] = bits.to(torch.float64) * 2 - 1
        margins = (s * torch.matmul(s, units.transpose(-1, -2))).amin(-1)
        idx = torch.searchsorted(sorted_thresholds, margins.contiguous(), right=False)
        hist += torch.bincount((idx + offsets).reshape(-1), minlength=m * (k + 1))
    hist = hist.view(m, k + 1)
    above = hist.flip(-1).cumsum(-1).flip(-1)[:, 1:]
    counts = torch.empty_like(above)
    counts[:, order] = 2 * above
    return counts.cpu()


def count_fixed_points(j: torch.Tensor | np.ndarray, j_d: float) -> int:
    """Exact number of s ∈ {±1}^N with s_i (Σ_j J_ij s_j + j_d s_i) > 0 for all i (N ≤ 24)."""
    j_d = float(j_d)
    if not math.isfinite(j_d):
        raise ValueError(f"j_d must be a finite number, got {j_d!r}")
    j = _as_couplings(j)
    if j.shape[0] != 1:
        raise ValueError(f"count_fixed_points takes one (N, N) matrix, got {j.shape[0]} networks; "
                         "use fixed_point_counts")
    return int(fixed_point_counts(j, [j_d])[0, 0])


def fixed_point_entropy(
    sizes: list[int],
    j_d_values: list[float],
    *,
    n_networks: int = 20,
    kind: str = "gaussian",
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> dict:
    """Fixed-point entropy vs J_D by exact enumeration, against thesis eq. 3.2.

    For each N: counts over `n_networks` random networks; reports (1/N) ln(mean count) with its
    standard error, the quenched (1/N) mean ln(count) where every count is positive, the exact
    finite-N expectation and the N → ∞ closed form ln(1 + erf(J_D/√2)).
    """
    sizes = check_sizes(sizes)
    j_d_values = check_values("j_d_values", j_d_values)
    generator = torch.Generator(device=device).manual_seed(seed)
    rows = []
    for n in tqdm(sizes, disable=not progress, desc="fixed points"):
        j, _ = random_couplings(n, n_networks=n_networks, kind=kind, storage="float64", generator=generator,
                                device=device)
        counts = fixed_point_counts(j, j_d_values, progress=progress).to(torch.float64)
        mean = counts.mean(0)
        sem = counts.std(0, unbiased=True) / math.sqrt(n_networks) if n_networks > 1 else torch.zeros_like(mean)
        annealed = [math.log(v) / n if v > 0 else None for v in mean.tolist()]
        annealed_err = [(e / v) / n if v > 0 else None for e, v in zip(sem.tolist(), mean.tolist())]
        positive = (counts > 0).all(0)
        quenched = (counts.clamp_min(1).log().mean(0) / n).tolist()
        rows.append({
            "n": n,
            "mean_count": mean.tolist(),
            "entropy_annealed": annealed,
            "entropy_annealed_err": annealed_err,
            "entropy_quenched": [q if p else None for q, p in zip(quenched, positive.tolist())],
            "entropy_expected_finite_n": [expected_entropy(n, x, kind) for x in j_d_values],
        })
    return {
        "j_d": list(map(float, j_d_values)),
        "closed_form": [annealed_entropy(x) for x in j_d_values],
        "sizes": rows,
    }
