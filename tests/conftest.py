"""Shared pytest fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""``../shared/data`` next to the checkout: the original MNIST-format ``.gz`` files."""


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A writable data folder holding copies of ``../shared/data/<dataset>/raw/``.

    Skips the requesting test when ``../shared/data`` is absent.
    """
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} not found (it holds the MNIST/FashionMNIST raw files)")
    data_dir = tmp_path_factory.mktemp("data")
    for raw in sorted(SHARED_DATA.glob("*/raw")):
        shutil.copytree(raw, data_dir / raw.parent.name / "raw")
    return data_dir
