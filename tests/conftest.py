"""Shared pytest fixtures."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("MNIST", "FashionMNIST")
ARCHIVES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def data_candidates() -> list[tuple[str, Path | None]]:
    """Where the tests look for ``<dataset>/raw/``, in order: ``$MLCM_DATA_DIR``, ``./data`` of the
    checkout (README's place) and ``../shared/data`` next to the checkout."""
    env = os.environ.get("MLCM_DATA_DIR")
    return [("$MLCM_DATA_DIR", Path(env) if env else None), ("./data", ROOT / "data"),
            ("../shared/data", ROOT.parent / "shared" / "data")]


def has_raw(folder: Path | None, dataset: str) -> bool:
    """Whether ``folder/<dataset>/raw`` holds the four original files (packed or unpacked)."""
    if folder is None:
        return False
    raw = folder / dataset / "raw"
    return all((raw / f"{name}.gz").is_file() or (raw / name).is_file() for name in ARCHIVES)


def skip_message(dataset: str = "MNIST") -> str:
    places = ", ".join(f"{label} ({path})" if path else f"{label} (unset)" for label, path in data_candidates())
    return (f"{dataset} raw files not found; looked in {places}. To run this test, put the four files "
            f"{', '.join(name + '.gz' for name in ARCHIVES)} in <folder>/{dataset}/raw/ with <folder> one of "
            f"those, e.g. `export MLCM_DATA_DIR=/path/to/data`")


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable data folder holding copies of ``<dataset>/raw/`` (MNIST, and FashionMNIST when
    found) from the first of ``$MLCM_DATA_DIR``, ``./data``, ``../shared/data`` that has it.

    Skips the requesting test when MNIST is found nowhere; a test of another dataset calls
    :func:`require` to skip when that one is missing.
    """
    data_dir = tmp_path_factory.mktemp("data")
    for dataset in DATASETS:
        source = next((path for _, path in data_candidates() if has_raw(path, dataset)), None)
        if source is not None:
            shutil.copytree(source / dataset / "raw", data_dir / dataset / "raw")
    require(data_dir, "MNIST")
    return data_dir


def require(data_dir: Path, dataset: str) -> None:
    """Skip the calling test unless ``data_dir`` (from :func:`shared_data_dir`) has ``dataset``."""
    if not (data_dir / dataset / "raw").is_dir():
        pytest.skip(skip_message(dataset))
