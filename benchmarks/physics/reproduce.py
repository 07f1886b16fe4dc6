"""Reproduce the physics figures of docs/physics.md (thin wrapper over `python -m mlcm_torch.physics`).

    python benchmarks/physics/reproduce.py                      # every figure, CPU sizes
    python benchmarks/physics/reproduce.py critical-sync hopfield
    python benchmarks/physics/reproduce.py --preset gpu critical-sync   # large N, needs CUDA

The CPU preset is exactly the commands shown in docs/physics.md (figures to docs/figures/, JSON to
results/physics/). The GPU preset holds the large sizes (int8 couplings up to N = 200,000 on an
80 GB GPU); it writes to results/physics-gpu/ only.
"""

from __future__ import annotations

import argparse
import shlex

from mlcm_torch.physics.cli import main

CPU = {
    "fixed-points": "fixed-points --n 8 12 16 20 --networks 50 --j-d 0:2:0.1 --kind gaussian",
    "critical-sync": "critical --n 100 200 400 800 1600 --networks 8 --states 16 --kind binary --dynamics sync "
                     "--max-steps 500 --tol 0.01",
    "critical-async": "critical --n 100 200 400 800 1600 --networks 8 --states 16 --kind binary --dynamics async "
                      "--max-steps 300 --tol 0.01",
    "critical-gaussian": "critical --n 100 200 400 --networks 8 --states 16 --kind gaussian --dynamics sync async "
                         "--max-steps 300 --tol 0.01",
    "convergence": "convergence --n 100 300 1000 --j-d 0.3:1.2:0.05 --networks 4 --states 16 --kind binary "
                   "--max-steps 300",
    "accessibility": "accessibility --n 1000 --j-d 0.4:0.9:0.025 --networks 4 --states 16 --kind gaussian "
                     "--max-steps 200",
    "accessibility-long": "accessibility --n 1000 --j-d 0.55:0.75:0.025 --networks 4 --states 16 --kind gaussian "
                          "--max-steps 1000",
    "reinforcement": "reinforcement --n 100 1000 --d 1.1:1.9:0.1 --a 0.25 0.5 1 2 4 8 --networks 2 --states 16 "
                     "--max-steps 500",
    "capacity": "capacity --n 50 100 200 --alphas 1:3:0.125 --instances 20 --j-d 1.0",
    "capacity-400": "capacity --n 400 --alphas 1.7:2.3:0.075 --instances 16 --j-d 1.0",
    "hopfield": "hopfield --n 1000 2000 4000 --alphas 0.08:0.2:0.01 --networks 2 --cues 8 --beta 10 --sweeps 10",
}

GPU = {
    "fixed-points": "fixed-points --n 16 20 22 24 --networks 100 --j-d 0:2:0.05 --kind gaussian",
    "critical-sync": "critical --n 1000 3000 10000 30000 100000 200000 --networks 4 --states 8 --kind binary "
                     "--storage int8 --dynamics sync --max-steps 1000 --tol 0.005 --device cuda",
    "critical-async": "critical --n 1000 3000 10000 30000 --networks 4 --states 8 --kind binary --storage int8 "
                      "--dynamics async --max-steps 1000 --tol 0.005 --device cuda",
    "critical-gaussian": "critical --n 1000 3000 10000 30000 --networks 4 --states 8 --kind gaussian "
                         "--dynamics sync async --max-steps 1000 --tol 0.005 --device cuda",
    "convergence": "convergence --n 1000 10000 50000 --j-d 0.5:1.5:0.025 --networks 2 --states 16 --kind binary "
                   "--max-steps 2000 --device cuda",
    "accessibility": "accessibility --n 10000 --j-d 0.4:0.9:0.0125 --networks 2 --states 32 --kind gaussian "
                     "--max-steps 1000 --device cuda",
    "accessibility-long": "accessibility --n 10000 --j-d 0.55:0.75:0.0125 --networks 2 --states 32 --kind gaussian "
                          "--max-steps 5000 --device cuda",
    "reinforcement": "reinforcement --n 100 1000 10000 --d 1.1:1.9:0.05 --a 0.25 0.5 1 2 4 8 16 --networks 2 "
                     "--states 32 --max-steps 500 --device cuda",
    "capacity": "capacity --n 100 200 400 --alphas 1:3:0.0625 --instances 50 --j-d 1.0 --device cuda",
    "capacity-400": "capacity --n 400 1000 --alphas 1.7:2.3:0.05 --instances 32 --j-d 1.0 --device cuda",
    "hopfield": "hopfield --n 4000 10000 20000 --alphas 0.1:0.18:0.005 --networks 2 --cues 16 --beta 10 --sweeps 20 "
                "--device cuda",
}


def command(name: str, preset: str) -> list[str]:
    """CLI arguments for one figure of one preset."""
    args = shlex.split((CPU if preset == "cpu" else GPU)[name])
    if preset == "cpu":
        return args + ["--name", name, "--out", "results/physics", "--figure", f"docs/figures/{name}.png"]
    return args + ["--name", name, "--out", "results/physics-gpu"]


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("figures", nargs="*", metavar="FIGURE", help=f"any of {', '.join(CPU)} (default: all)")
    parser.add_argument("--preset", choices=("cpu", "gpu"), default="cpu")
    args = parser.parse_args()
    unknown = [f for f in args.figures if f not in CPU]
    if unknown:
        parser.error(f"unknown figure(s) {', '.join(unknown)}; choose from {', '.join(CPU)}")
    for name in args.figures or list(CPU):
        argv = command(name, args.preset)
        print("python -m mlcm_torch.physics " + shlex.join(argv), flush=True)
        main(argv)


if __name__ == "__main__":
    run()
