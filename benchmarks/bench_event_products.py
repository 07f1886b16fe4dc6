"""Cost of the event backend's field corrections by route, the measurements behind
``CSR_ROW_COST``, ``CSR_OVERHEAD_ROWS``, ``CSR_DENSE_FRACTION`` and ``KERNEL_DENSE_FRACTION``
in ``mlcm_torch/functional/events.py``.

    python benchmarks/bench_event_products.py [--batch 16] [--size 1600] [--repeats 200]

For each pattern of change (k changed neurons per sample, drawn independently per sample or
the same k for all samples) it prints one JSON line with the median milliseconds of: one dense
product Δ Jᵀ, the gathered changed columns (``union``), a per-sample CSR product (``csr``) and
the compiled kernel's per-sample sums (``kernel``, null without a C compiler), and the route
``product_route`` picks.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import time

import torch

from mlcm_torch.experiments.run import cpu_name
from mlcm_torch.functional import events, kernel


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(1e3 * statistics.median(times), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=1600)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    B, N = args.batch, args.size
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(N, N, generator=g)
    fields = torch.zeros(B, N)
    work = torch.zeros(N)
    lib = kernel.library()
    for shared in (False, True):
        for k in (1, 4, 16, 64, 200, 400, 800):
            delta = torch.zeros(B, N)
            common = torch.randperm(N, generator=g)[:k]
            for b in range(B):
                cols = common if shared else torch.randperm(N, generator=g)[:k]
                delta[b, cols] = 2.0
            nonzero = delta.ne(0)
            union = torch.nonzero(nonzero.any(0)).squeeze(-1)
            changed = torch.zeros(B, N, dtype=torch.int32)
            counts = nonzero.sum(1)
            for b in range(B):
                changed[b, :int(counts[b])] = torch.nonzero(nonzero[b]).squeeze(-1).to(torch.int32)
            record = {
                "batch": B, "size": N, "changed_per_sample": k, "shared_by_samples": shared,
                "columns": union.numel(), "pairs": int(counts.sum()),
                "route": events.product_route(B, union.numel(), int(counts.sum()), N),
                "dense_ms": median_ms(lambda: torch.matmul(delta, rows), args.repeats),
                "union_ms": median_ms(lambda: torch.matmul(delta[:, union], rows[union]), args.repeats),
                "csr_ms": median_ms(lambda: torch.sparse.mm(events._csr(delta), rows), args.repeats),
                "kernel_ms": None if lib is None else median_ms(lambda: lib.mlcm_correct(
                    B, N, N, delta.data_ptr(), changed.data_ptr(), counts.data_ptr(), rows.data_ptr(),
                    ctypes.c_float(1.0), ctypes.c_float(1.0), fields.data_ptr(), N, work.data_ptr()), args.repeats),
                "threads": torch.get_num_threads(),
                "machine": cpu_name(),
            }
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
