"""Building blocks of the figure specs: data and network configs, grouping of run records, and
the mean ± 95 % Student-t bands of the plots."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Optional

from mlcm_torch.experiments.stats import fmt, mean_ci

CLASSIFIER = "mlcm_torch.training.MLCMClassifier"
PERCEPTRON = "mlcm_torch.training.PerceptronBaseline"
BINARY_MLP = "mlcm_torch.experiments.baselines.BinaryMLP"

_RAW = {"mnist": ("MNIST", "train-images-idx3-ubyte"), "fmnist": ("FashionMNIST", "train-images-idx3-ubyte")}


def data_dir() -> Path:
    """``$MLCM_DATA_DIR`` or ``./data`` (as the data modules resolve it)."""
    return Path(os.environ.get("MLCM_DATA_DIR") or "./data")


def images_available(dataset: str) -> bool:
    """Whether the raw files of ``mnist`` / ``fmnist`` are in the data folder (packed or not)."""
    folder, stem = _RAW[dataset]
    raw = data_dir() / folder / "raw"
    return (raw / stem).exists() or (raw / f"{stem}.gz").exists()


def image_data(dataset: str, encoding: str, scale, *, dim: Optional[int] = None, state_encoding: str = "pm1",
               preset: str = "cpu") -> dict:
    """Data config: MNIST / Fashion-MNIST, ``binary`` pixels or the sign of a fixed Gaussian
    projection to ``dim`` (default 100). At ``smoke`` the images are projected to
    ``scale.params['smoke_dim']`` (so that N ≤ 64 still holds the input), and without the raw
    files it falls back to random prototypes of the same width (``SyntheticDataModule``)."""
    if preset == "smoke":
        width = scale.params.get("smoke_dim", 32)
        if isinstance(width, dict):
            width = width[encoding]
        if not images_available(dataset):
            return synthetic(width, scale, state_encoding=state_encoding)
        encoding, dim = "projected", width
    init = {"encoding": encoding, "val_size": scale.val, "limit_train": scale.train, "limit_test": scale.test,
            "batch_size": scale.batch_size, "state_encoding": state_encoding, "shuffle_seed": 0}
    if encoding == "projected":
        init["projection_dim"] = dim or 100
    cls = "MNISTDataModule" if dataset == "mnist" else "FashionMNISTDataModule"
    return {"class_path": f"mlcm_torch.data.{cls}", "init_args": init}


def synthetic(width: int, scale, *, state_encoding: str = "pm1", classes: int = 10) -> dict:
    """Noisy random prototypes (a stand-in for the images where they are absent)."""
    return {"class_path": "mlcm_torch.data.SyntheticDataModule",
            "init_args": {"num_classes": classes, "in_features": width, "flip_prob": 0.1,
                          "train_size": scale.train or 512, "val_size": scale.val, "test_size": scale.test or 256,
                          "batch_size": scale.batch_size, "state_encoding": state_encoding,
                          "shuffle_seed": 0, "sample_seed": 0}}


def data_width(data: dict) -> int:
    """Input width of a data config."""
    init = data["init_args"]
    if data["class_path"].endswith("SyntheticDataModule"):
        return init["in_features"]
    return init.get("projection_dim", 100) if init.get("encoding") == "projected" else 784


def network(class_path: str = "mlcm_torch.MLCM", **init_args) -> dict:
    return {"class_path": class_path, "init_args": init_args}


def model(class_path: str = CLASSIFIER, **init_args) -> dict:
    return {"class_path": class_path, "init_args": init_args}


def trainer(scale) -> dict:
    return {"max_epochs": scale.epochs}


def run_options(scale, **extra) -> dict:
    return {"train_eval_size": scale.train_eval, **extra}


# ---------------------------------------------------------------------------------------------- summaries
def by_label(records: Iterable[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        groups[record["label"]].append(record)
    return dict(groups)


def last(record: dict, key: str) -> Any:
    epochs = record.get("epochs") or []
    return epochs[-1].get(key) if epochs else None


def curve(records: list[dict], key: str) -> dict:
    """Per epoch, mean ± CI of ``key`` over the records (seeds)."""
    length = max((len(r.get("epochs") or []) for r in records), default=0)
    stats = [mean_ci(r["epochs"][e].get(key) for r in records if len(r.get("epochs") or []) > e)
             for e in range(length)]
    return {"epoch": list(range(1, length + 1)), "mean": [s["mean"] for s in stats], "ci": [s["ci"] for s in stats],
            "n": [s["n"] for s in stats]}


def final(records: list[dict], key: str) -> dict:
    """Mean ± CI of ``key`` at the last epoch."""
    return mean_ci(last(r, key) for r in records)


def final_vector(records: list[dict], key: str) -> list[dict]:
    """Mean ± CI of each entry of a list-valued ``key`` (e.g. per-layer activity) at the last epoch."""
    values = [last(r, key) for r in records]
    values = [v for v in values if v]
    width = max((len(v) for v in values), default=0)
    return [mean_ci(v[i] for v in values if len(v) > i) for i in range(width)]


def cell(stat: Optional[dict], digits: int = 3) -> str:
    return fmt(stat, digits)


# ---------------------------------------------------------------------------------------------- plotting
def band(ax, x, stat: dict, label: str, bounds: tuple[Optional[float], Optional[float]] = (0.0, 1.0),
         **kwargs) -> None:
    """Mean line with the 95 % CI band (where there are at least two seeds), the band clipped
    to the quantity's range ``bounds`` (accuracies and fractions by default; with two seeds the
    Student-t half-width is 12.7 standard errors and would leave [0, 1])."""
    import numpy as np

    mean = np.array([np.nan if m is None else m for m in stat["mean"]], dtype=float)
    ci = np.array([0.0 if c is None else c for c in stat["ci"]], dtype=float)
    x = np.asarray(x, dtype=float)
    line = ax.plot(x, mean, marker="o", markersize=3, label=label, **kwargs)[0]
    if any(c is not None for c in stat["ci"]):
        low, high = bounds
        ax.fill_between(x, np.clip(mean - ci, low, high), np.clip(mean + ci, low, high), alpha=0.2,
                        color=line.get_color())


def legend(ax, **kwargs) -> None:
    """A small legend, if anything is labelled."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, **kwargs)


def stat_series(stats: list[dict]) -> dict:
    return {"mean": [s["mean"] for s in stats], "ci": [s["ci"] for s in stats], "n": [s["n"] for s in stats]}


def save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)


def subplots(rows: int, cols: int, width: float = 5.0, height: float = 3.6):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    return fig, axes


