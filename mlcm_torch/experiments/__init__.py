"""Learning experiments of the thesis (chapter 7) and of arXiv 2510.11984, one command per figure:
``python -m mlcm_torch.experiments <figure> --preset smoke|cpu|gpu --out DIR``. See
docs/experiments.md.

A figure (:class:`Figure`) is a base config, preset scales (:class:`Scale`), a grid of override
points (:class:`Point`), and ``summarize`` / ``plot``; :func:`run_figure` plans its runs (grid ×
seeds), runs the unfinished ones in worker processes and writes the outputs.
"""

from mlcm_torch.experiments.engine import collect, execute_specs, plan, run_figure
from mlcm_torch.experiments.spec import ExperimentError, Figure, Point, Scale, apply_overrides, parse_set, run_id

__all__ = ["ExperimentError", "Figure", "Point", "Scale", "apply_overrides", "collect", "execute_specs",
           "parse_set", "plan", "run_figure", "run_id"]
