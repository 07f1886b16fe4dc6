"""The compiled CPU loops of the engine (``event_kernel.c``), loaded with ctypes: the event
backend's decisions and corrections, and the bit-packed fields of binary couplings
(:mod:`~mlcm_torch.functional.packed`).

The C source is compiled once per machine with the system C compiler (``$CC``, else ``cc``)
into ``$MLCM_TORCH_CACHE`` (default ``~/.cache/mlcm_torch``), keyed by the source, the flags
and the CPU. Without a compiler, or with ``MLCM_TORCH_KERNEL=0``, :func:`library` is None and the
engine runs the same computations in PyTorch operations: the kernel changes the speed, never
a decision (``tests/test_backends.py`` and ``tests/test_packed.py`` run both).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import subprocess
import tempfile
import warnings
from pathlib import Path

SOURCE = Path(__file__).with_name("event_kernel.c")
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-shared", "-fPIC", "-std=c99")
"""``-ffp-contract=off``: no fused multiply-adds, so each product and sum rounds as written."""


class Term(ctypes.Structure):
    """One term of a neuron's field, ``strength * (Σ_j M_ij v_j) / divisor`` (``Term`` in C)."""

    _fields_ = [
        ("matrix", ctypes.c_void_p),
        ("row_stride", ctypes.c_int64),
        ("col_stride", ctypes.c_int64),
        ("width", ctypes.c_int64),
        ("source", ctypes.c_void_p),
        ("source_stride", ctypes.c_int64),
        ("strength", ctypes.c_double),
        ("divisor", ctypes.c_double),
    ]


CHAIN_OUT = 8
"""The most one-to-one couplings out of one layer that ``mlcm_relax_chain`` takes (``CHAIN_OUT`` in C)."""


class ChainLayer(ctypes.Structure):
    """One layer of ``mlcm_relax_chain`` (``ChainLayer`` in C; events.kernel_relax fills it)."""

    _fields_ = [
        ("size", ctypes.c_int64),
        ("fields", ctypes.c_void_p),
        ("constant", ctypes.c_void_p),
        ("bound_constant", ctypes.c_void_p),
        ("error", ctypes.c_void_p),
        ("states", ctypes.c_void_p),
        ("j_d", ctypes.c_double),
        ("encoding", ctypes.c_int64),
        ("tie", ctypes.c_int64),
        ("terms", ctypes.c_void_p),
        ("n_terms", ctypes.c_int64),
        ("self_after", ctypes.c_int64),
        ("theta", ctypes.c_void_p),
        ("delta", ctypes.c_void_p),
        ("changed", ctypes.c_void_p),
        ("counts", ctypes.c_void_p),
        ("pairs", ctypes.c_void_p),
        ("quiet", ctypes.c_void_p),
        ("rows", ctypes.c_void_p),
        ("divisor", ctypes.c_double),
        ("scale", ctypes.c_void_p),
        ("reach", ctypes.c_void_p),
        ("work", ctypes.c_void_p),
        ("group", ctypes.c_void_p),
        ("dense_pairs", ctypes.c_int64),
        ("n_out", ctypes.c_int64),
        ("out_post", ctypes.c_int64 * CHAIN_OUT),
        ("out_strength", ctypes.c_double * CHAIN_OUT),
        ("out_width", ctypes.c_int64 * CHAIN_OUT),
    ]


def _cache_dir() -> Path:
    return Path(os.environ.get("MLCM_TORCH_CACHE", Path.home() / ".cache" / "mlcm_torch"))


def _cpu_signature() -> str:
    """The CPU model and instruction-set flags (``-march=native`` builds for them), so a cache
    directory shared by different machines never loads a build for another CPU."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return " ".join(line for line in lines if line.startswith(("model name", "flags")))[:4096]
    except OSError:
        return platform.processor() or platform.machine()


def _build(compiler: str) -> Path:
    source = SOURCE.read_bytes()
    signature = " ".join((compiler, *FLAGS, platform.machine(), _cpu_signature()))
    key = hashlib.sha256(source + signature.encode()).hexdigest()[:16]
    target = _cache_dir() / f"event_kernel_{key}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            built = Path(tmp) / target.name
            subprocess.run([compiler, *FLAGS, str(SOURCE), "-o", str(built), "-lm"], check=True,
                           capture_output=True, timeout=120)
            os.replace(built, target)  # atomic: concurrent builds leave one complete file
    return target


@functools.lru_cache(maxsize=None)
def library() -> ctypes.CDLL | None:
    """The compiled kernel, or None (disabled by ``MLCM_TORCH_KERNEL=0``, or no compiler: a
    one-time warning names the reason)."""
    if os.environ.get("MLCM_TORCH_KERNEL", "1") == "0":
        return None
    compiler = os.environ.get("CC", "cc")
    try:
        lib = ctypes.CDLL(str(_build(compiler)))
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", b"") or b""
        warnings.warn(f"mlcm_torch: the event kernel could not be built with {compiler!r} ({error}; "
                      f"{detail.decode(errors='replace')[:200]}); the event backend runs in PyTorch operations",
                      RuntimeWarning, stacklevel=2)
        return None
    i64, ptr, dbl = ctypes.c_int64, ctypes.c_void_p, ctypes.c_double
    lib.mlcm_decide.restype = i64
    lib.mlcm_decide.argtypes = [ptr, i64, i64, dbl, ptr]
    lib.mlcm_relax_chain.restype = i64
    lib.mlcm_relax_chain.argtypes = [ptr, i64, i64, i64, dbl, i64, ptr, ptr, ptr, ptr, ptr, ptr, ptr]
    lib.mlcm_correct.restype = None
    lib.mlcm_correct.argtypes = [i64, i64, i64, ptr, ptr, ptr, ptr, dbl, dbl, ptr, i64, ptr, ptr]
    lib.mlcm_pack_signs_int8.restype = i64
    lib.mlcm_pack_signs_int8.argtypes = [ptr, i64, i64, ptr, i64]
    lib.mlcm_pack_signs_float.restype = i64
    lib.mlcm_pack_signs_float.argtypes = [ptr, i64, i64, i64, ptr, i64]
    lib.mlcm_sign_fields.restype = None
    lib.mlcm_sign_fields.argtypes = [ptr, ptr, ptr, i64, i64, i64, i64, i64, ptr]
    lib.mlcm_sign_async.restype = i64
    lib.mlcm_sign_async.argtypes = [ptr, ptr, i64, i64, i64, i64, ptr, i64, ptr, ctypes.c_int, ptr]
    for name in ("mlcm_block_async_f32", "mlcm_block_async_f64"):
        getattr(lib, name).restype = i64
        getattr(lib, name).argtypes = [ptr, ptr, ptr, i64, i64, i64, ptr, ctypes.c_int]
    for name in ("mlcm_async_event_f32", "mlcm_async_event_f64"):
        getattr(lib, name).restype = i64
        getattr(lib, name).argtypes = [ptr, ptr, ptr, i64, i64, i64, ptr, i64, ptr, dbl, dbl, ctypes.c_int, ptr]
    return lib
