"""Learning-rate schedules as pure functions of the epoch.

A schedule gives the factor by which a learning rate is multiplied during epoch ``e``
(counted from 0). Being a pure function of the epoch (and of its parameters), a run resumed
from a checkpoint uses the same factors as an uninterrupted one.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, get_args

from mlcm_torch.module import checks

Schedule = Literal["constant", "cosine", "step"]
SCHEDULES = get_args(Schedule)
"""Accepted schedule kinds."""


def check_schedule(
    name: str,
    kind: str,
    epochs: Optional[int],
    min_factor: float,
    step_size: Optional[int],
    gamma: float,
) -> None:
    """Raise a short ``ValueError`` naming the argument unless the schedule is valid.

    ``name`` is the option that chose ``kind``; ``epochs`` may be None for a cosine schedule
    whose length is filled in later (the trainer's ``max_epochs``)."""
    checks.one_of(name, kind, SCHEDULES)
    if epochs is not None:
        checks.integer_at_least("scheduler_epochs", epochs, 1)
    checks.finite("scheduler_min_factor", min_factor)
    if not 0.0 <= min_factor <= 1.0:
        raise ValueError(f"scheduler_min_factor={min_factor!r} must lie in [0, 1]")
    if step_size is not None:
        checks.integer_at_least("scheduler_step_size", step_size, 1)
    elif kind == "step":
        raise ValueError(f"{name}='step' needs scheduler_step_size (an integer >= 1)")
    checks.finite("scheduler_gamma", gamma)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"scheduler_gamma={gamma!r} must lie in (0, 1]")


def lr_factor(
    kind: str,
    epoch: int,
    epochs: Optional[int] = None,
    min_factor: float = 0.0,
    step_size: Optional[int] = None,
    gamma: float = 0.1,
) -> float:
    """The learning-rate multiplier of epoch ``epoch`` (from 0).

    - ``constant``: 1.
    - ``cosine``: ``m + (1 − m)(1 + cos(π min(e, T) / T)) / 2`` with ``T = epochs`` and
      ``m = min_factor``: 1 at epoch 0, falling to ``m`` at epoch ``T`` and staying there.
    - ``step``: ``gamma ** (e // step_size)``.
    """
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        progress = min(epoch, epochs) / epochs
        return min_factor + (1.0 - min_factor) * (1.0 + math.cos(math.pi * progress)) / 2.0
    if kind == "step":
        return gamma ** (epoch // step_size)
    raise ValueError(f"schedule {kind!r} is not supported; expected one of {list(SCHEDULES)}")
