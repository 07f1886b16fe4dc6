"""``python -m mlcm_torch.experiments <figure> --preset smoke|cpu|gpu --out DIR ...``"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Optional

from mlcm_torch.experiments.engine import CLUSTERS, run_figure
from mlcm_torch.experiments.spec import PRESETS, ExperimentError, parse_set


def build_parser() -> argparse.ArgumentParser:
    from mlcm_torch.experiments.figures import FIGURES

    names = ", ".join(FIGURES)
    parser = argparse.ArgumentParser(
        prog="python -m mlcm_torch.experiments",
        description="Run a figure of the thesis (chapter 7) or of arXiv 2510.11984: its grid × seeds, "
                    "resumable, then DIR/<figure>.json, .png and .md. 'list' prints the figures.",
        epilog=f"figures: {names}. Example: python -m mlcm_torch.experiments thesis-mnist --preset cpu "
               f"--out results/experiments --jobs 2 --set network.init_args.max_sweeps=40")
    parser.add_argument("figure", help="a figure name, 'all', or 'list'")
    parser.add_argument("--preset", choices=PRESETS, default="smoke",
                        help="smoke: tiny pipeline check; cpu: the largest that fits a few hours of a 2-core "
                             "machine; gpu: the published scale")
    parser.add_argument("--out", help="output folder (required unless 'list')")
    parser.add_argument("--seeds", type=int, help="seeds per grid point (default: the preset's)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at once: worker processes (OMP_NUM_THREADS = cores // jobs, at most an "
                             "OMP_NUM_THREADS already set); 0 runs inline "
                             "in this process; with --cluster, the array parallelism")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="sets",
                        help="override a config option of every run that has it, e.g. "
                             "network.init_args.max_sweeps=40 (value read as YAML); repeatable")
    parser.add_argument("--cluster", choices=CLUSTERS,
                        help="submit the runs through submitit (optional extra: pip install "
                             "'mlcm_torch[cluster]'); local/debug are submitit's own executors")
    parser.add_argument("--cluster-opt", action="append", default=[], metavar="KEY=VALUE",
                        help="a submitit parameter, e.g. slurm_partition=gpu, timeout_min=600; repeatable")
    parser.add_argument("--collect-only", action="store_true",
                        help="run nothing: write the outputs from the runs finished so far (e.g. while the "
                             "sweep is still running elsewhere)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Optional[list] = None) -> int:
    from mlcm_torch.experiments.figures import FIGURES

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.figure == "list":
        for name, figure in FIGURES.items():
            print(f"{name:22s} {figure.title}")
        return 0
    names = list(FIGURES) if args.figure == "all" else [args.figure]
    if names[0] not in FIGURES:
        parser.error(f"unknown figure {args.figure!r}; choose one of: {', '.join(FIGURES)} (or 'all', 'list')")
    if not args.out:
        parser.error("--out DIR is required")
    try:
        sets = dict(parse_set(text) for text in args.sets)
        cluster_options = dict(parse_set(text) for text in args.cluster_opt)
        failed = 0
        for name in names:
            command = " ".join(shlex.quote(p) for p in ["python", "-m", "mlcm_torch.experiments", name, *argv[1:]]
                               if p != "--collect-only")
            report = run_figure(name, args.preset, args.out, seeds=args.seeds, jobs=args.jobs, sets=sets,
                                cluster=args.cluster, cluster_options=cluster_options,
                                progress=not args.no_progress, command=command,
                                collect_only=args.collect_only)
            failed += len(report["failed"])
    except ExperimentError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished runs are kept, rerun the same command to resume", file=sys.stderr)
        return 130
    if failed:
        print(f"error: {failed} run(s) failed; see the messages above and DIR/runs/*.error.txt", file=sys.stderr)
        return 1
    return 0
