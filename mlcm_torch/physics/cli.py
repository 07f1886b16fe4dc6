"""Command line: python -m mlcm_torch.physics <experiment> [options].

Each experiment writes <out>/<name>.json (all parameters, seed, device, versions, results) and
<out>/<name>.png, and prints a one-line summary of the headline numbers.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mlcm_torch.physics import plots
from mlcm_torch.physics.accessibility import accessibility
from mlcm_torch.physics.capacity import capacity
from mlcm_torch.physics.convergence import convergence_times
from mlcm_torch.physics.critical import critical_vs_size
from mlcm_torch.physics.dynamics import BACKENDS
from mlcm_torch.physics.fixed_points import fixed_point_entropy
from mlcm_torch.physics.hopfield import retrieval
from mlcm_torch.physics.reinforcement import phase_diagram


def float_values(text: str) -> list[float]:
    """A number, or an inclusive range start:stop:step."""
    try:
        if ":" not in text:
            return [float(text)]
        start, stop, step = (float(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or start:stop:step, got {text!r}") from None
    if step <= 0 or stop < start:
        raise argparse.ArgumentTypeError(f"range {text!r} needs step > 0 and stop >= start")
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + i * step, 10) for i in range(count)]


def _clean(value):
    """JSON-safe copy: non-finite floats become None."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _flatten(groups: list[list[float]]) -> list[float]:
    return [v for g in groups for v in g]


def _parameter(value):
    """A parsed option as the JSON record stores it: paths as strings, and the lists of lists of
    the ``float_values`` options (one list per argument: ``--j-d 0.5 1:2:0.5``) flat, as the
    experiment sees them (``[0.5, 1.0, 1.5, 2.0]``)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
        return _flatten(value)
    return value


def _common(p: argparse.ArgumentParser, n_default: list[int]) -> None:
    p.add_argument("--n", type=int, nargs="+", default=n_default, help="network size(s) N")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--out", type=Path, default=Path("results"), help="output folder for JSON and PNG")
    p.add_argument("--name", default=None, help="file stem (default: the experiment name)")
    p.add_argument("--figure", type=Path, default=None, help="PNG path (default: <out>/<name>.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared machine)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _backend(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="run_dynamics backend: auto (event for float32 networks on the CPU), dense "
                        "(as before version 0.8), event")


def build_parser() -> argparse.ArgumentParser:
    """Argument parser with one sub-command per experiment."""
    parser = argparse.ArgumentParser(prog="python -m mlcm_torch.physics", description=__doc__)
    sub = parser.add_subparsers(dest="experiment", required=True)

    p = sub.add_parser("critical", help="J_D*(N), thesis Fig. 3.1")
    _common(p, [100, 200, 400, 800])
    p.add_argument("--networks", type=int, default=8)
    p.add_argument("--states", type=int, default=16)
    p.add_argument("--kind", default="binary", choices=("binary", "gaussian"))
    p.add_argument("--storage", default=None, choices=("int8", "float32", "float64"))
    p.add_argument("--dynamics", nargs="+", default=["sync"], choices=("sync", "async"))
    p.add_argument("--max-steps", type=int, default=500)
    p.add_argument("--tol", type=float, default=0.01)
    _backend(p)

    p = sub.add_parser("convergence", help="convergence time vs J_D, thesis Fig. 3.2")
    _common(p, [100, 300, 1000])
    p.add_argument("--j-d", type=float_values, nargs="+", default=[float_values("0.3:1.2:0.05")])
    p.add_argument("--networks", type=int, default=4)
    p.add_argument("--states", type=int, default=16)
    p.add_argument("--kind", default="binary", choices=("binary", "gaussian"))
    p.add_argument("--dynamics", nargs="+", default=["sync", "async"], choices=("sync", "async"))
    p.add_argument("--max-steps", type=int, default=300)
    _backend(p)

    p = sub.add_parser("fixed-points", help="fixed-point entropy vs J_D, thesis eq. 3.2")
    _common(p, [8, 12, 16, 20])
    p.add_argument("--j-d", type=float_values, nargs="+", default=[float_values("0:2:0.1")])
    p.add_argument("--networks", type=int, default=50)
    p.add_argument("--kind", default="gaussian", choices=("binary", "gaussian"))

    p = sub.add_parser("accessibility", help="fraction converging vs J_D, sync vs async (arXiv 2510.11984)")
    _common(p, [1000])
    p.add_argument("--j-d", type=float_values, nargs="+", default=[float_values("0.4:0.9:0.025")])
    p.add_argument("--networks", type=int, default=4)
    p.add_argument("--states", type=int, default=16)
    p.add_argument("--kind", default="gaussian", choices=("binary", "gaussian"))
    p.add_argument("--dynamics", nargs="+", default=["sync", "async"], choices=("sync", "async"))
    p.add_argument("--max-steps", type=int, default=200)
    _backend(p)

    p = sub.add_parser("reinforcement", help="(d, a) phase diagram, thesis Fig. 3.3")
    _common(p, [100, 1000])
    p.add_argument("--d", type=float_values, nargs="+", default=[float_values("1.1:1.9:0.1")])
    p.add_argument("--a", type=float_values, nargs="+", default=[[0.25, 0.5, 1.0, 2.0, 4.0, 8.0]])
    p.add_argument("--j-d", type=float, default=0.0)
    p.add_argument("--networks", type=int, default=2)
    p.add_argument("--states", type=int, default=16)
    p.add_argument("--kind", default="binary", choices=("binary", "gaussian"))
    p.add_argument("--dynamics", default="sync", choices=("sync", "async"))
    p.add_argument("--max-steps", type=int, default=500)

    p = sub.add_parser("capacity", help="perceptron capacity raw vs after a random network, thesis §5.1")
    _common(p, [50, 100])
    p.add_argument("--alphas", type=float_values, nargs="+", default=[float_values("1:3:0.125")])
    p.add_argument("--instances", type=int, default=20)
    p.add_argument("--j-d", type=float, default=1.0)
    p.add_argument("--kind", default="binary", choices=("binary", "gaussian"))
    p.add_argument("--dynamics", default="sync", choices=("sync", "async"))
    p.add_argument("--max-steps", type=int, default=1000)

    p = sub.add_parser("hopfield", help="Hopfield retrieval overlap vs load, thesis ch. 2")
    _common(p, [1000])
    p.add_argument("--alphas", type=float_values, nargs="+", default=[float_values("0.04:0.24:0.02")])
    p.add_argument("--networks", type=int, default=4)
    p.add_argument("--cues", type=int, default=8)
    p.add_argument("--beta", type=float, default=None, help="also run Glauber dynamics at this inverse temperature")
    p.add_argument("--sweeps", type=int, default=10, help="Glauber sweeps")
    p.add_argument("--max-sweeps", type=int, default=100, help="zero-temperature sweep budget")
    return parser


def _single_n(args: argparse.Namespace) -> int:
    if len(args.n) != 1:
        raise ValueError(f"{args.experiment} takes one --n, got {args.n}")
    return args.n[0]


def run_experiment(args: argparse.Namespace) -> tuple[dict, str]:
    """Run the experiment named by args.experiment; return (results, one-line summary)."""
    progress = not args.no_progress
    common = dict(seed=args.seed, progress=progress)
    e = args.experiment
    if e == "critical":
        out = {"dynamics": {}}
        for dyn in args.dynamics:
            r = critical_vs_size(args.n, n_networks=args.networks, n_states=args.states, kind=args.kind,
                                 storage=args.storage, dynamics=dyn, max_steps=args.max_steps, tol=args.tol,
                                 device=args.device, backend=args.backend, **common)
            out["dynamics"][dyn] = r["sizes"]
        summary = "; ".join(f"{d}: " + ", ".join(f"N={r['n']} J_D*={r['j_d_star']:.3f}" for r in rows)
                            for d, rows in out["dynamics"].items())
        return out, summary
    if e == "convergence":
        r = convergence_times(args.n, _flatten(args.j_d), n_networks=args.networks, n_states=args.states,
                              kind=args.kind, dynamics=tuple(args.dynamics), max_steps=args.max_steps,
                              device=args.device, backend=args.backend, **common)
        parts = []
        for row in r["sizes"]:
            for d in args.dynamics:
                fit = row[d]["fit"]
                g = (f"gamma={fit['gamma']:.2f}±{fit['gamma_err']:.2f} J_c={fit['j_c']:.3f}"
                     if "gamma" in fit else "no fit")
                parts.append(f"N={row['n']} {d}: all converge from J_D={row[d]['j_d_all_converge']}, {g}")
        return r, "; ".join(parts)
    if e == "fixed-points":
        r = fixed_point_entropy(args.n, _flatten(args.j_d), n_networks=args.networks, kind=args.kind,
                                device=args.device, **common)
        big = r["sizes"][-1]
        dev = max(abs(a - c) for a, c in zip(big["entropy_annealed"], r["closed_form"]) if a is not None)
        return r, f"N={big['n']}: max |measured - ln(1+erf(J_D/sqrt2))| = {dev:.4f}"
    if e == "accessibility":
        r = accessibility(_single_n(args), _flatten(args.j_d), n_networks=args.networks, n_states=args.states,
                          kind=args.kind, dynamics=tuple(args.dynamics), max_steps=args.max_steps,
                          device=args.device, backend=args.backend, **common)
        return r, "; ".join(f"{d}: threshold J_D={r[d]['threshold']} "
                            f"[{r[d]['threshold_low']}, {r[d]['threshold_high']}]" for d in args.dynamics)
    if e == "reinforcement":
        panels = [phase_diagram(n, _flatten(args.d), _flatten(args.a), j_d=args.j_d, n_networks=args.networks,
                                n_states=args.states, kind=args.kind, dynamics=args.dynamics,
                                max_steps=args.max_steps, device=args.device, **common) for n in args.n]
        counts = []
        for p in panels:
            flat = [lab for row in p["label"] for lab in row]
            counts.append(f"N={p['n']}: " + ", ".join(f"{lab} {flat.count(lab)}" for lab in sorted(set(flat))))
        return {"sizes": panels}, "; ".join(counts)
    if e == "capacity":
        r = capacity(args.n, _flatten(args.alphas), instances=args.instances, j_d=args.j_d, kind=args.kind,
                     dynamics=args.dynamics, max_steps=args.max_steps, device=args.device, **common)
        parts = []
        for row in r["sizes"]:
            for key in ("raw", "relaxed"):
                fit = row[key]["fit"]
                txt = f"{fit['alpha_c']:.3f}±{fit['alpha_c_err']:.3f}" if "alpha_c" in fit else "no fit"
                parts.append(f"N={row['n']} {key} alpha_c={txt}")
        return r, "; ".join(parts)
    if e == "hopfield":
        rows = [retrieval(n, _flatten(args.alphas), n_networks=args.networks, n_cues=args.cues, beta=args.beta,
                          sweeps=args.sweeps, max_sweeps=args.max_sweeps, device=args.device, **common)
                for n in args.n]
        keys = [k for k in ("zero_temperature", "glauber") if k in rows[0]]
        return {"sizes": rows}, "; ".join(f"N={r['n']} {k}: alpha_c={r[k]['alpha_c']}" for r in rows for k in keys)
    raise ValueError(f"unknown experiment {e!r}")


PLOTS = {
    "critical": plots.plot_critical,
    "convergence": plots.plot_convergence,
    "fixed-points": plots.plot_fixed_points,
    "accessibility": plots.plot_accessibility,
    "reinforcement": plots.plot_reinforcement,
    "capacity": plots.plot_capacity,
    "hopfield": plots.plot_hopfield,
}


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, run the experiment, write JSON and PNG; returns the JSON record."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was requested but CUDA is not available on this machine; use --device cpu")
    if args.threads < 1:
        raise SystemExit(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    try:
        results, summary = run_experiment(args)
    except MemoryError as exc:
        raise SystemExit(f"{args.experiment}: {exc}") from None
    elapsed = time.perf_counter() - start
    params = {k: _parameter(v) for k, v in vars(args).items()}
    record = {
        "experiment": args.experiment,
        "command": "python -m mlcm_torch.physics " + shlex.join(argv),
        "seed": args.seed,
        "parameters": params,
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "elapsed_s": round(elapsed, 2),
        "summary": summary,
        "results": _clean(results),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.name or args.experiment
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=1, allow_nan=False))
    figure = args.figure or args.out / f"{stem}.png"
    figure.parent.mkdir(parents=True, exist_ok=True)
    PLOTS[args.experiment]({**record["results"], "parameters": params}, figure)
    print(f"{args.experiment} ({elapsed:.1f} s): {summary}")
    print(f"wrote {args.out / (stem + '.json')} and {figure}")
    return record
