"""Random asymmetric networks of binary neurons (thesis eq. 3.1 and 3.3).

N neurons s_i = ±1 interact through i.i.d. couplings J_ij (binary ±1/√N, thesis §3.1, or
Gaussian N(0, 1/N), arXiv 2510.11984) with zero diagonal; the self-coupling J_ii = J_D is
kept out of the matrix and added analytically, so the field of neuron i is
h_i = Σ_(j≠i) J_ij s_j + J_D s_i and a state is a fixed point when s_i h_i > 0 for all i.

Binary couplings can be stored as int8 signs B_ij = ±1 with J = B/√N. Fields are then
computed as exact integers Σ_j B_ij s_j (float32 accumulation of ±1 terms is exact below
2^24 neurons), which is what lets N = 200,000 fit on one 80 GB GPU: N² bytes = 40 GB.

A :class:`Network` is a one-layer network of the package's engine (:mod:`mlcm_torch.functional`):
:attr:`Network.graph` is its :class:`~mlcm_torch.functional.Graph`, whose fields, stability
test and sweeps are the engine's.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from mlcm_torch.functional.fields import is_fixed_point as engine_is_fixed_point
from mlcm_torch.functional.fields import layer_fields, prepare_phase, stable
from mlcm_torch.functional.graph import Graph, Layer, Phase

COUPLING_KINDS = ("binary", "gaussian")
STORAGES = ("float32", "float64", "int8")
_BYTES = {"float32": 4, "float64": 8, "int8": 1}
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int8": torch.int8}
_CHUNK_BYTES = 1 << 28


@dataclass(frozen=True)
class Network:
    """A batch of M networks of N neurons sharing one shape.

    couplings: (M, N, N) tensor with zero diagonal. Physical couplings are couplings / unit.
    j_d: self-coupling J_D, a float or a (M,) tensor (one value per network).
    unit: √N for int8 sign storage (couplings are ±1 integers), 1.0 for float storage.
    keep_ties: False (default): a neuron is stable iff s_i h_i > 0 and a zero field flips it;
        True (Hopfield convention, thesis ch. 2): stable iff s_i h_i >= 0, so sign(0) keeps s_i.
    """

    couplings: torch.Tensor
    j_d: float | torch.Tensor
    unit: float = 1.0
    keep_ties: bool = False

    @property
    def n(self) -> int:
        return self.couplings.shape[-1]

    @property
    def n_networks(self) -> int:
        return self.couplings.shape[0]

    @property
    def integer(self) -> bool:
        return self.couplings.dtype == torch.int8

    @property
    def state_dtype(self) -> torch.dtype:
        return torch.float32 if self.integer else self.couplings.dtype

    @property
    def device(self) -> torch.device:
        return self.couplings.device

    @property
    def graph(self) -> Graph:
        """The engine graph: one layer with J = couplings, J_D, unit and the tie rule ("keep"
        with keep_ties, else "flip": a zero field flips the neuron).

        A per-network J_D is handed over on the couplings' device, in the dtype the engine adds
        it in (float64 for int8 signs, the state dtype otherwise), so it is converted once here
        rather than at every neuron update.
        """
        j_d = self.j_d
        if isinstance(j_d, torch.Tensor):
            j_d = j_d.to(device=self.device, dtype=torch.float64 if self.integer else self.state_dtype)
        layer = Layer(self.n, J=self.couplings, j_d=j_d, unit=self.unit, tie="keep" if self.keep_ties else "flip")
        return Graph((layer,))

    @property
    def phase(self) -> Phase:
        """The engine phase of a network without input or label: nothing clamped."""
        return prepare_phase(self.graph, None, None, feedback=False)

    def with_self_coupling(self, j_d: float | torch.Tensor) -> "Network":
        """The same couplings with another J_D (no copy of the matrix)."""
        return replace(self, j_d=_check_j_d(j_d, self.n_networks))


def _check_j_d(j_d: float | torch.Tensor, n_networks: int) -> float | torch.Tensor:
    if isinstance(j_d, torch.Tensor):
        if j_d.shape != (n_networks,):
            raise ValueError(f"j_d tensor must have shape ({n_networks},) (one per network), got {tuple(j_d.shape)}")
        if not torch.isfinite(j_d).all():
            raise ValueError("j_d must be finite")
        return j_d.detach().to("cpu", torch.float64)
    if not math.isfinite(float(j_d)):
        raise ValueError(f"j_d must be a finite number, got {j_d!r}")
    return float(j_d)


def _check_positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_sizes(sizes) -> list[int]:
    """A non-empty list of network sizes N >= 2, or ValueError."""
    sizes = list(sizes)
    if not sizes or any(isinstance(n, bool) or int(n) != n or n < 2 for n in sizes):
        raise ValueError(f"sizes must be a non-empty list of integers N >= 2, got {sizes!r}")
    return [int(n) for n in sizes]


def check_values(name: str, values) -> list[float]:
    """A non-empty list of finite numbers, or ValueError naming the argument."""
    values = [float(v) for v in values]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be a non-empty list of finite numbers, got {values!r}")
    return values


def network_from_couplings(
    couplings: torch.Tensor, j_d: float | torch.Tensor, unit: float = 1.0, keep_ties: bool = False
) -> Network:
    """Wrap a coupling matrix (N, N) or batch (M, N, N) with zero diagonal as a Network."""
    if not isinstance(couplings, torch.Tensor):
        couplings = torch.as_tensor(couplings, dtype=torch.float64)
    if couplings.dim() == 2:
        couplings = couplings.unsqueeze(0)
    if couplings.dim() != 3 or couplings.shape[-1] != couplings.shape[-2]:
        raise ValueError(f"couplings must have shape (N, N) or (M, N, N), got {tuple(couplings.shape)}")
    if couplings.dtype not in _DTYPES.values():
        raise ValueError(f"couplings dtype must be one of {STORAGES}, got {couplings.dtype}")
    if torch.any(torch.diagonal(couplings, dim1=-2, dim2=-1) != 0):
        raise ValueError("couplings must have a zero diagonal: the self-coupling J_D is passed separately as j_d")
    if couplings.dtype == torch.int8 and not torch.all(couplings.abs() <= 1):
        raise ValueError("int8 couplings must hold signs in {-1, 0, +1}")
    if not math.isfinite(unit) or unit <= 0:
        raise ValueError(f"unit must be a positive finite number, got {unit!r}")
    if keep_ties and couplings.dtype == torch.int8:
        raise ValueError("keep_ties needs float couplings; int8 networks use the strict rule s_i h_i > 0")
    return Network(couplings, _check_j_d(j_d, couplings.shape[0]), float(unit), bool(keep_ties))


def network_memory_bytes(n: int, n_networks: int = 1, storage: str = "float32", batch: int = 1) -> int:
    """Bytes needed to hold M couplings matrices plus the dynamics workspace for `batch` states.

    Couplings take M·N²·(1, 4 or 8) bytes; int8 fields are computed in float32 row chunks of at
    most 256 MiB; states, fields and masks take about 16 bytes per neuron and state.
    """
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    n = _check_positive_int("n", n)
    n_networks = _check_positive_int("n_networks", n_networks)
    batch = _check_positive_int("batch", batch)
    couplings = n_networks * n * n * _BYTES[storage]
    chunk = min(_CHUNK_BYTES, n * n * 4) if storage == "int8" else 0
    states = 16 * n_networks * batch * n
    return couplings + chunk + states


def available_memory_bytes(device: str | torch.device) -> int:
    """Free memory on `device`: cudaMemGetInfo for CUDA, MemAvailable from /proc/meminfo for the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def check_memory(required: int, device: str | torch.device, what: str, available: int | None = None) -> None:
    """Raise MemoryError, with the estimate, when `required` bytes do not fit on `device`."""
    free = available_memory_bytes(device) if available is None else int(available)
    if required > free:
        gib = 1024**3
        raise MemoryError(
            f"refusing to allocate {what}: it needs about {required / gib:.2f} GiB "
            f"but only {free / gib:.2f} GiB is free on {torch.device(device)}. "
            "Reduce N, the number of networks or states, or use int8 binary couplings on a larger GPU."
        )


def default_storage(kind: str) -> str:
    """int8 (exact integer fields) for binary couplings, float32 for Gaussian ones."""
    if kind not in COUPLING_KINDS:
        raise ValueError(f"kind must be one of {COUPLING_KINDS}, got {kind!r}")
    return "int8" if kind == "binary" else "float32"


def random_couplings(
    n: int,
    *,
    n_networks: int = 1,
    kind: str = "binary",
    storage: str | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    batch: int = 1,
    available_memory: int | None = None,
) -> tuple[torch.Tensor, float]:
    """Draw M coupling matrices (thesis eq. 3.1) and return (couplings, unit).

    kind "binary": J_ij = ±1/√N with equal probability; kind "gaussian": J_ij ~ N(0, 1/N).
    storage "int8" (binary only, the default for binary) stores the signs and returns unit = √N,
    so that fields are exact integers; the default for gaussian is float32.
    The diagonal is zero. Memory is checked before anything is allocated.
    """
    n = _check_positive_int("n", n)
    n_networks = _check_positive_int("n_networks", n_networks)
    if kind not in COUPLING_KINDS:
        raise ValueError(f"kind must be one of {COUPLING_KINDS}, got {kind!r}")
    storage = default_storage(kind) if storage is None else storage
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    if storage == "int8" and kind != "binary":
        raise ValueError("int8 storage holds ±1 signs: it needs kind='binary', not 'gaussian'")
    required = network_memory_bytes(n, n_networks, storage, batch)
    check_memory(required, device, f"{n_networks} network(s) of N={n} ({storage} couplings)", available_memory)
    out = torch.empty((n_networks, n, n), dtype=_DTYPES[storage], device=device)
    rows = max(1, _CHUNK_BYTES // (4 * n))
    for m in range(n_networks):
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            if kind == "binary":
                block = torch.randint(0, 2, (r1 - r0, n), generator=generator, device=device, dtype=torch.int8)
                out[m, r0:r1] = block.mul_(2).sub_(1)
            else:
                block = torch.randn((r1 - r0, n), generator=generator, device=device, dtype=torch.float64)
                out[m, r0:r1] = block
    torch.diagonal(out, dim1=-2, dim2=-1).zero_()
    if storage == "int8":
        return out, math.sqrt(n)
    out.mul_(1.0 / math.sqrt(n))
    return out, 1.0


def sparse_reinforcement(
    n: int,
    d: float,
    a: float,
    *,
    n_networks: int = 1,
    dtype: torch.dtype = torch.float32,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Sparse positive reinforcement A (thesis §3.2), a dense (M, N, N) tensor with zero diagonal.

    Each off-diagonal entry is set to a/√N independently with probability p = N^d / (N(N−1))
    (capped at 1), so that O(N^d) entries are reinforced; a is measured in units of the typical
    coupling 1/√N.
    """
    n = _check_positive_int("n", n)
    if not 1.0 <= d <= 2.0:
        raise ValueError(f"reinforcement exponent d must lie in [1, 2], got {d!r}")
    if not (math.isfinite(a) and a >= 0):
        raise ValueError(f"reinforcement strength a must be finite and >= 0, got {a!r}")
    p = min(1.0, n**d / max(1, n * (n - 1)))
    mask = torch.rand((n_networks, n, n), generator=generator, device=device) < p
    torch.diagonal(mask, dim1=-2, dim2=-1).zero_()
    return mask.to(dtype) * (a / math.sqrt(n))


def random_network(
    n: int,
    j_d: float | torch.Tensor,
    *,
    n_networks: int = 1,
    kind: str = "binary",
    storage: str | None = None,
    reinforcement: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    batch: int = 1,
    available_memory: int | None = None,
) -> Network:
    """M random networks (thesis eq. 3.1, 3.3), optionally with sparse reinforcement (d, a) added to J."""
    couplings, unit = random_couplings(
        n, n_networks=n_networks, kind=kind, storage=storage, generator=generator,
        device=device, batch=batch, available_memory=available_memory,
    )
    if reinforcement is not None:
        if couplings.dtype == torch.int8:
            raise ValueError("sparse reinforcement is added to the couplings: use float32 or float64 storage, not int8")
        d, a = reinforcement
        couplings += sparse_reinforcement(
            n, d, a, n_networks=n_networks, dtype=couplings.dtype, generator=generator, device=device
        )
    return Network(couplings, _check_j_d(j_d, n_networks), unit)


def random_states(
    n_networks: int, batch: int, n: int, *, generator: torch.Generator | None = None,
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Uniformly random ±1 states, shape (M, B, N)."""
    bits = torch.randint(0, 2, (n_networks, batch, n), generator=generator, device=device, dtype=torch.int8)
    return bits.to(dtype).mul_(2).sub_(1)


def check_states(network: Network, states: torch.Tensor) -> torch.Tensor:
    """Validate a (M, B, N) or (B, N) batch of ±1 states for `network`; return it as (M, B, N)."""
    if not isinstance(states, torch.Tensor):
        raise ValueError(f"states must be a torch.Tensor, got {type(states).__name__}")
    if states.dim() == 2 and network.n_networks == 1:
        states = states.unsqueeze(0)
    if states.dim() != 3 or states.shape[0] != network.n_networks or states.shape[-1] != network.n:
        raise ValueError(
            f"states must have shape ({network.n_networks}, B, {network.n}) for this network, got {tuple(states.shape)}"
        )
    if not torch.all(states.abs() == 1):
        raise ValueError("states must contain only -1 and +1")
    return states.to(device=network.device, dtype=network.state_dtype)


def stable_neurons(network: Network, states: torch.Tensor) -> torch.Tensor:
    """Boolean (M, B, N): s_i h_i > 0 (>= 0 with keep_ties) with h_i = Σ_(j≠i) J_ij s_j + J_D s_i."""
    return stable(network.graph, states, network.phase)


def is_fixed_point(network: Network, states: torch.Tensor) -> torch.Tensor:
    """Boolean (M, B): every neuron stable (thesis eq. 3.3 fixed-point condition)."""
    return engine_is_fixed_point(network.graph, check_states(network, states), network.phase)


def local_fields(network: Network, states: torch.Tensor) -> torch.Tensor:
    """Physical fields h_i = Σ_(j≠i) J_ij s_j + J_D s_i in float64, shape (M, B, N).

    The engine's off-diagonal fields (exact integers for int8 signs) taken to float64 before
    J_D s_i is added, so the result carries float64 precision whatever the storage.
    """
    states = check_states(network, states)
    h = layer_fields(network.graph, states, 0, network.phase, self_coupling=False).to(torch.float64)
    if network.integer:
        h = h / network.unit
    j_d = network.j_d
    if isinstance(j_d, torch.Tensor):
        j_d = j_d.to(network.device).view(-1, 1, 1)
    return h + j_d * states.to(torch.float64)
