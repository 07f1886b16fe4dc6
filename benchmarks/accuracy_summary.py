"""Summarise the per-run JSON files of ``train_accuracy.py`` into one table of means over seeds.

    python benchmarks/accuracy_summary.py            # benchmarks/results/accuracy/*.json
    python benchmarks/accuracy_summary.py --runs 'somewhere/*.json' --out summary.json

Runs are grouped by model class, dataset, config, overrides (less the seed options), epochs
and validation split; each group becomes a row

    {dataset, model, config, overrides, epochs, val_size, hidden, seeds,
     final_test_acc_mean, final_test_acc_std, final_val_acc_mean, mlp_test_acc_mean, runs}

with the accuracies after the last epoch (std over seeds, sample, null for one seed). The
dataset (``mnist``, ``fashion_mnist``, ``entangled_mnist`` = MNIST projected to D = 100) and the
hidden size (the readout's input width) are read from each run's resolved config. Backprop MLP
runs (``MLPBaseline``) form their own rows; their mean fills ``mlp_test_acc_mean`` of the other
rows with the same dataset, hidden size, epochs and validation split (when several MLP groups
match, the one without overrides; null when none or still ambiguous). Unfinished runs, runs
of other datasets, and a second run of a seed already in its group are left out, with a note
on stderr.
"""

from __future__ import annotations

import argparse
import glob
import json
import statistics
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = "benchmarks/results/accuracy/*.json"
DEFAULT_OUT = "benchmarks/results/accuracy_summary.json"
SEED_OPTIONS = ("--seed_everything", "--data.init_args.shuffle_seed")
"""Overrides that only choose the seed: runs differing in them are seeds of one recipe."""
MLP_MODEL = "MLPBaseline"


def note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def dataset_of(config: dict) -> Optional[str]:
    """``mnist``, ``fashion_mnist`` or ``entangled_mnist`` from a resolved config's data section;
    None for other data (synthetic, other projection widths)."""
    data = config.get("data") or {}
    name = str(data.get("class_path", "")).rsplit(".", 1)[-1]
    args = data.get("init_args") or {}
    width = args.get("projection_dim", 784) if args.get("encoding") == "projected" else 784
    if name == "MNISTDataModule":
        return {784: "mnist", 100: "entangled_mnist"}.get(width)
    if name == "FashionMNISTDataModule" and width == 784:
        return "fashion_mnist"
    return None


def model_of(config: dict) -> str:
    """The model's class name, e.g. ``MLCMClassifier`` or ``MLPBaseline``."""
    return str(config["model"]["class_path"]).rsplit(".", 1)[-1]


def hidden_of(config: dict) -> Optional[int]:
    """The width of the last hidden layer (the readout's input): ``hidden`` of the MLP and of
    ``MLCM``, the last layer's ``size`` of a ``Network``; None for a model without one."""
    args = config["model"].get("init_args") or {}
    if "hidden" in args:
        return args["hidden"]
    network = args.get("network")
    if not network:
        return None
    init = network.get("init_args") or {}
    if "hidden" in init:
        return init["hidden"]
    layers = init.get("layers") or []
    return (layers[-1].get("init_args") or {}).get("size") if layers else None


def recipe_overrides(overrides: list[str]) -> list[str]:
    """The overrides less those that only set the seed."""
    return [o for o in overrides if o.split("=", 1)[0] not in SEED_OPTIONS]


def display(path: Path) -> str:
    """``path`` relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def load_runs(paths: list[Path]) -> dict[tuple, list[tuple[Path, dict]]]:
    """Finished runs of the three datasets, grouped by recipe."""
    groups: dict[tuple, list[tuple[Path, dict]]] = {}
    for path in sorted(paths):
        record = json.loads(path.read_text())
        if not record.get("finished") or not record.get("epochs"):
            note(f"{path}: unfinished, left out")
            continue
        config = record["resolved_config"]
        dataset = dataset_of(config)
        if dataset is None:
            note(f"{path}: not MNIST, Fashion-MNIST or entangled MNIST, left out")
            continue
        key = (dataset, model_of(config), record["config"], tuple(recipe_overrides(record["overrides"])),
               len(record["epochs"]), record["val_size"], hidden_of(config))
        groups.setdefault(key, []).append((path, record))
    return groups


def mean(values: list[Optional[float]]) -> Optional[float]:
    present = [v for v in values if v is not None]
    return round(statistics.fmean(present), 6) if present else None


def row(key: tuple, runs: list[tuple[Path, dict]]) -> dict:
    """One row: the group's final accuracies over its seeds (the first run of each seed)."""
    dataset, model, config, overrides, epochs, val_size, hidden = key
    by_seed: dict = {}
    for path, record in runs:
        if record["seed"] in by_seed:
            note(f"{path}: seed {record['seed']} already in {by_seed[record['seed']][0]}, left out")
            continue
        by_seed[record["seed"]] = (path, record)
    chosen = list(by_seed.values())
    test = [record["epochs"][-1]["test_acc"] for _, record in chosen]
    return {
        "dataset": dataset, "model": model, "config": config, "overrides": list(overrides), "epochs": epochs,
        "val_size": val_size, "hidden": hidden, "seeds": list(by_seed),
        "final_test_acc_mean": mean(test),
        "final_test_acc_std": round(statistics.stdev(test), 6) if len(test) > 1 else None,
        "final_val_acc_mean": mean([record["epochs"][-1].get("val_acc") for _, record in chosen]),
        "mlp_test_acc_mean": None,
        "runs": [display(path) for path, _ in chosen],
    }


def summarise(paths: list[Path]) -> list[dict]:
    """The summary rows of the per-run files ``paths``: model rows first, then MLP rows."""
    rows = [row(key, runs) for key, runs in load_runs(paths).items()]
    mlp_rows = [r for r in rows if r["model"] == MLP_MODEL]
    model_rows = [r for r in rows if r["model"] != MLP_MODEL]
    same = ("dataset", "hidden", "epochs", "val_size")
    for r in model_rows:
        candidates = [m for m in mlp_rows if all(m[k] == r[k] for k in same)]
        plain = [m for m in candidates if not m["overrides"]] or candidates
        if len(plain) == 1:
            r["mlp_test_acc_mean"] = plain[0]["final_test_acc_mean"]
        elif plain:
            note(f"{r['config']} {r['overrides']}: {len(plain)} MLP groups match, mlp_test_acc_mean left null")
    return sorted(model_rows, key=_order) + sorted(mlp_rows, key=_order)


def _order(r: dict) -> tuple:
    return r["dataset"], r["model"], r["config"], r["overrides"], r["epochs"], r["val_size"]


def markdown(rows: list[dict]) -> str:
    """The rows as a Markdown table (the README's accuracy table is this output)."""
    def acc(mean, std) -> str:
        if mean is None:
            return "—"
        return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")

    lines = ["| dataset | config | H | epochs | seeds | val acc | test acc (mean ± std) | backprop MLP test acc |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | `{Path(row['config']).name}`{' ' + ' '.join(row['overrides']) if row['overrides'] else ''} "
            f"| {row['hidden']} | {row['epochs']} | {', '.join(map(str, row['seeds']))} "
            f"| {acc(row['final_val_acc_mean'], None)} | {acc(row['final_test_acc_mean'], row['final_test_acc_std'])} "
            f"| {acc(row['mlp_test_acc_mean'], None)} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", default=[str(ROOT / DEFAULT_RUNS)],
                        help=f"glob patterns of per-run JSON files (default {DEFAULT_RUNS})")
    parser.add_argument("--out", type=Path, default=ROOT / DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument("--markdown", action="store_true", help="also print the rows as a Markdown table")
    args = parser.parse_args(argv)
    paths = sorted({Path(p) for pattern in args.runs for p in glob.glob(pattern)})
    rows = summarise(paths)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(f"{len(rows)} rows from {len(paths)} files -> {args.out}", file=sys.stderr)
    if args.markdown:
        print(markdown(rows))
    return rows


if __name__ == "__main__":
    main()
