"""Compare the physics of two checkouts of this package: results on fixed seeds and timings.

    python benchmarks/physics/compare_checkouts.py OLD_ROOT NEW_ROOT             # results, then timings
    python benchmarks/physics/compare_checkouts.py OLD_ROOT NEW_ROOT --no-timing
    python benchmarks/physics/compare_checkouts.py OLD_ROOT NEW_ROOT --no-results --sizes large --json out.jsonl

Each checkout runs in its own subprocess (``PYTHONPATH=ROOT``, one torch thread). *Results*:
``run_dynamics`` (sync/async; binary int8, binary and Gaussian float32, Gaussian float64;
several seeds, N = 50-300, M = 3, B = 8, J_D scalar or per network; max_steps 0, 2 and a full
budget), the public field/sweep functions, Hopfield runs, and the experiments at small sizes;
every tensor and number is compared exactly. *Timings*: process CPU time of ``run_dynamics``
(int8, B = 16) and of the experiments (``--sizes small``: N = 400-1000; ``large``: N =
1600-12800), the checkouts interleaved, the median of ``--reps`` runs reported with the
speed-up old/new and whether both returned the same result; ``--json`` appends them as lines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TIMINGS = {
    "sync int8 N=1000 M=8 J_D=0.5 T=200": ["dynamics", "sync", "0.5", "200", "1000", "8"],
    "async int8 N=1000 M=8 J_D=0.3 T=30": ["dynamics", "async", "0.3", "30", "1000", "8"],
    "async int8 N=1000 M=8 J_D=0.7 T=30": ["dynamics", "async", "0.7", "30", "1000", "8"],
    "critical_vs_size N=400 sync T=200": ["critical", "sync", "200", "400"],
    "critical_vs_size N=400 async T=20": ["critical", "async", "20", "400"],
}
LARGE_TIMINGS = {
    "sync int8 N=1600 M=4 J_D=0.5 T=200": ["dynamics", "sync", "0.5", "200", "1600", "4"],
    "async int8 N=1600 M=4 J_D=0.9 T=30": ["dynamics", "async", "0.9", "30", "1600", "4"],
    "sync int8 N=12800 M=1 J_D=0.5 T=20": ["dynamics", "sync", "0.5", "20", "12800", "1"],
    "async int8 N=12800 M=1 J_D=0.9 T=3": ["dynamics", "async", "0.9", "3", "12800", "1"],
    "critical_vs_size N=1600 sync T=100": ["critical", "sync", "100", "1600"],
    "convergence_times N=3200 sync+async T=100": ["convergence", "100", "3200"],
    "accessibility gaussian N=1600 T=50": ["accessibility", "50", "1600"],
}
"""Workloads at the sizes of the CPU-speed issue (N = 1,600-12,800); the binary ones are int8
(the experiments' default storage); accessibility's default couplings are Gaussian float32."""


def collect(out: str) -> None:
    """Worker: every result on fixed seeds, saved with torch.save."""
    import torch

    import mlcm_torch.physics as P
    from mlcm_torch.physics.capacity import capacity
    from mlcm_torch.physics.critical import critical_self_coupling, critical_vs_size
    from mlcm_torch.physics.hopfield import energy, glauber_dynamics
    from mlcm_torch.physics.networks import stable_neurons

    res = {}
    j_ds = {"0.0": 0.0, "0.3": 0.3, "0.7": 0.7, "tensor": torch.tensor([0.05, 0.45, 0.9])}
    for kind, storage in [("binary", "int8"), ("gaussian", "float32"), ("binary", "float32"), ("gaussian", "float64")]:
        for seed in range(3):
            for n in (50, 123, 300):
                if storage == "float64" and n == 300:
                    continue
                for name, j_d in j_ds.items():
                    g = torch.Generator().manual_seed(1000 * seed + n)
                    net = P.random_network(n, j_d, n_networks=3, kind=kind, storage=storage, generator=g)
                    s0 = P.random_states(3, 8, n, generator=g, dtype=net.state_dtype)
                    for dyn, budget in (("sync", 150), ("async", 40)):
                        for max_steps in (0, 2, budget):
                            r = P.run_dynamics(net, s0, dynamics=dyn, max_steps=max_steps,
                                               generator=torch.Generator().manual_seed(seed + 7))
                            res[f"run/{kind}/{storage}/s{seed}/n{n}/jd{name}/{dyn}/T{max_steps}"] = tuple(r)
                    if n != 50:
                        continue
                    key = f"fn/{kind}/{storage}/s{seed}/jd{name}"
                    res[key + "/sync_step"] = P.synchronous_step(net, s0)
                    res[key + "/is_fixed"] = P.is_fixed_point(net, s0)
                    res[key + "/stable"] = stable_neurons(net, s0)
                    res[key + "/local_fields"] = P.local_fields(net, s0)
                    active = torch.rand(3, 8, generator=torch.Generator().manual_seed(seed)) < 0.7
                    for block in (1, 7, 32):
                        s = s0.clone()
                        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
                        res[key + f"/async_sweep_b{block}"] = (s, P.asynchronous_sweep(net, s, order, active, block=block))
                    s = s0.clone()
                    flips = [P.update_neuron(net, s, i, active if i % 2 else None) for i in range(0, n, 3)]
                    res[key + "/update_neuron"] = (s, torch.stack(flips))
                    if storage != "int8":
                        res[key + "/energy"] = energy(net, s0)
                        res[key + "/glauber"] = glauber_dynamics(net, s0, 2.0, 3,
                                                                 generator=torch.Generator().manual_seed(seed))
    for seed in range(12):
        for n, load in ((100, 0.12), (150, 0.05), (200, 0.2), (120, 0.3)):
            patterns = P.random_states(3, max(1, round(load * n)), n, generator=torch.Generator().manual_seed(seed))
            net = P.hopfield_network(patterns)
            s0 = P.random_states(3, 8, n, generator=torch.Generator().manual_seed(seed + 50))
            for dyn in ("sync", "async"):
                res[f"hopfield/s{seed}/n{n}/{dyn}"] = tuple(P.run_dynamics(
                    net, s0, dynamics=dyn, max_steps=60, generator=torch.Generator().manual_seed(seed)))
            if seed < 2:
                res[f"hopfield/s{seed}/n{n}/energy"] = energy(net, s0)
                res[f"hopfield/s{seed}/n{n}/glauber"] = glauber_dynamics(
                    net, s0, 3.0, 5, generator=torch.Generator().manual_seed(seed))
    for kind in ("binary", "gaussian"):
        for dyn in ("sync", "async"):
            steps = 100 if dyn == "sync" else 30
            g = torch.Generator().manual_seed(3)
            net = P.random_network(40, 0.0, n_networks=3, kind=kind, generator=g)
            s0 = P.random_states(3, 6, 40, generator=g, dtype=net.state_dtype)
            res[f"critical_self_coupling/{kind}/{dyn}"] = tuple(
                critical_self_coupling(net, s0, dynamics=dyn, max_steps=steps, tol=0.02))
            res[f"critical_vs_size/{kind}/{dyn}"] = critical_vs_size(
                [16, 40], n_networks=3, n_states=4, kind=kind, dynamics=dyn, max_steps=steps, tol=0.02, seed=1)
        res[f"convergence_times/{kind}"] = P.convergence_times(
            [30, 60], [0.2, 0.5, 0.8, 1.2], n_networks=2, n_states=6, kind=kind, max_steps=100, seed=2)
        res[f"accessibility/{kind}"] = P.accessibility(
            60, [0.0, 0.3, 0.6, 1.0], n_networks=2, n_states=8, kind=kind, max_steps=60, seed=4)
    res["retrieval/beta"] = P.retrieval(100, [0.05, 0.12, 0.2], n_networks=2, n_cues=4, beta=4.0, sweeps=4,
                                        max_sweeps=40, seed=1)
    res["retrieval/zero_temperature"] = P.retrieval(80, [0.1, 0.25], n_networks=2, n_cues=3, seed=3)
    for dyn in ("sync", "async"):
        res[f"phase_diagram/{dyn}"] = P.phase_diagram(60, [1.2, 1.6, 1.95], [0.5, 5.0], n_networks=2, n_states=6,
                                                      dynamics=dyn, max_steps=80 if dyn == "sync" else 30, seed=5)
    res["capacity/sync"] = capacity([20], [1.0, 2.0, 3.0], instances=4, j_d=1.0, max_steps=200, seed=6)
    res["capacity/async"] = capacity([20], [1.5, 2.5], instances=4, j_d=0.8, kind="gaussian", dynamics="async",
                                     max_steps=50, seed=7)
    torch.save(res, out)


def time_case(case: list[str]) -> None:
    """Worker: process CPU time of one workload, printed as JSON."""
    import torch

    import mlcm_torch.physics as P
    from mlcm_torch.physics.critical import critical_vs_size

    if case[0] == "dynamics":
        dynamics, j_d, steps, n, m = case[1], float(case[2]), int(case[3]), int(case[4]), int(case[5])
        g = torch.Generator().manual_seed(0)
        net = P.random_network(n, j_d, n_networks=m, kind="binary", storage="int8", generator=g)
        s0 = P.random_states(m, 16, n, generator=g)
        start = time.process_time()
        r = P.run_dynamics(net, s0, dynamics=dynamics, max_steps=steps, generator=torch.Generator().manual_seed(1))
        info = {"converged": float(r.converged.float().mean()), "steps_sum": int(r.steps.sum())}
    elif case[0] == "critical":
        start = time.process_time()
        r = critical_vs_size([int(case[3])], n_networks=4 if case[3] == "400" else 2, n_states=8, dynamics=case[1],
                             max_steps=int(case[2]), tol=0.02 if case[3] == "400" else 0.05, seed=0)
        info = {"j_d_star": r["sizes"][0]["per_network"]}
    elif case[0] == "convergence":
        start = time.process_time()
        r = P.convergence_times([int(case[2])], [1.0, 1.3], n_networks=2, n_states=8, max_steps=int(case[1]), seed=0)
        info = {"result": r}
    else:
        start = time.process_time()
        r = P.accessibility(int(case[2]), [0.5, 0.8], n_networks=2, n_states=8, max_steps=int(case[1]), seed=0)
        info = {"result": r}
    print(json.dumps({"cpu_s": time.process_time() - start, **info}))


def differences(a, b, path: str = "") -> list[str]:
    import torch

    if isinstance(a, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return [f"{path}: {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}"]
        if torch.equal(a, b):
            return []
        diff = (a.double() - b.double()).abs()
        return [f"{path}: {int((a != b).sum())} of {a.numel()} differ, max |diff| {float(diff.max()):.3g}"]
    if isinstance(a, dict):
        if set(a) != set(b):
            return [f"{path}: keys {sorted(set(a) ^ set(b))}"]
        return [d for k in a for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} vs {len(b)}"]
        return [d for i, (u, v) in enumerate(zip(a, b)) for d in differences(u, v, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{path}: {a!r} vs {b!r}"]


def worker(root: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, __file__, "--worker", *args], env=env, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"worker {args} under {root} failed:\n{run.stderr[-4000:]}")
    return run.stdout


def compare_results(old: str, new: str) -> None:
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(Path(tmp) / "old.pt"), str(Path(tmp) / "new.pt")]
        for root, path in zip((old, new), paths):
            worker(root, "collect", path)
        a, b = (torch.load(p, weights_only=False) for p in paths)
    groups: dict[str, list[int]] = {}
    lines = []
    for key in a:
        found = differences(a[key], b[key], key)
        parts = key.split("/")
        group = "/".join(parts[:3]) if parts[0] in ("run", "fn") else parts[0]
        count = groups.setdefault(group, [0, 0])
        count[0] += 1
        count[1] += bool(found)
        lines += found
    for group, (total, bad) in groups.items():
        print(f"{group:32s} {total:4d} results  {'identical' if not bad else f'{bad} differ'}")
    for line in lines:
        print("  DIFF", line)
    print(f"{len(a)} results, {sum(bad for _, bad in groups.values())} differ")


def compare_timings(old: str, new: str, reps: int, cases: dict[str, list[str]], json_path: str | None) -> None:
    times: dict[tuple[str, str], list[float]] = {}
    same: dict[str, bool] = {}
    for _ in range(reps):
        for name, case in cases.items():
            infos = []
            for root in (old, new):
                out = json.loads(worker(root, "time", *case).strip().splitlines()[-1])
                times.setdefault((name, root), []).append(out.pop("cpu_s"))
                infos.append(out)
            same[name] = same.get(name, True) and infos[0] == infos[1]
    print(f"{'workload':42s} {'old s':>7s} {'new s':>7s} {'old/new':>8s} same  (process CPU time, median of {reps})")
    rows = []
    for name in cases:
        t_old, t_new = (statistics.median(times[(name, root)]) for root in (old, new))
        print(f"{name:42s} {t_old:7.2f} {t_new:7.2f} {t_old / t_new:8.2f} {'yes' if same[name] else 'NO'}")
        rows.append({"workload": name, "old_s": t_old, "new_s": t_new, "speedup": t_old / t_new,
                     "same_result": same[name], "reps": reps, "old": old, "new": new})
    if json_path:
        from mlcm_torch.experiments.run import cpu_name, machine

        where = {**machine(), "cpu": cpu_name(), "threads": 1}
        with open(json_path, "a") as f:
            for row in rows:
                f.write(json.dumps({**row, "machine": where}) + "\n")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        import torch

        torch.set_num_threads(1)
        if sys.argv[2] == "collect":
            collect(sys.argv[3])
        else:
            time_case(sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", help="root of the old checkout (holds mlcm_torch/)")
    parser.add_argument("new", help="root of the new checkout")
    parser.add_argument("--no-results", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sizes", choices=("small", "large", "all"), default="small",
                        help="timing workloads: small (N = 400-1000), large (N = 1600-12800), all")
    parser.add_argument("--json", help="append one JSON line per timed workload to this file")
    args = parser.parse_args()
    if not args.no_results:
        compare_results(args.old, args.new)
    if not args.no_timing:
        cases = {**(TIMINGS if args.sizes != "large" else {}), **(LARGE_TIMINGS if args.sizes != "small" else {})}
        compare_timings(args.old, args.new, args.reps, cases, args.json)


if __name__ == "__main__":
    main()
