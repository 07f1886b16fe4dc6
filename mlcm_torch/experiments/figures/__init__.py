"""The figures, by name: one module per group (``thesis``, ``paper``)."""

from __future__ import annotations

from mlcm_torch.experiments.figures import paper, thesis
from mlcm_torch.experiments.spec import ExperimentError, Figure

FIGURES: dict[str, Figure] = {figure.name: figure for figure in (*thesis.FIGURES, *paper.FIGURES)}


def get_figure(name: str) -> Figure:
    if name not in FIGURES:
        raise ExperimentError(f"unknown figure {name!r}; choose one of: {', '.join(FIGURES)}")
    return FIGURES[name]


__all__ = ["FIGURES", "get_figure"]
