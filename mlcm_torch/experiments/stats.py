"""Mean and Student-t confidence interval over seeds."""

from __future__ import annotations

import math
from typing import Iterable, Optional


def mean_ci(values: Iterable[Optional[float]], level: float = 0.95) -> dict:
    """``{"mean", "ci", "n"}`` of the finite values: ``ci`` is the half-width of the Student-t
    interval at ``level`` (None with fewer than two values); ``mean`` is None without values."""
    from scipy import stats

    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return {"mean": None, "ci": None, "n": 0}
    mean = sum(xs) / n
    if n < 2:
        return {"mean": mean, "ci": None, "n": 1}
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    half = float(stats.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "ci": half, "n": n}


def fmt(stat: Optional[dict], digits: int = 3) -> str:
    """``0.912 ± 0.004 (n=10)`` for a table; ``—`` without a value."""
    if not stat or stat.get("mean") is None:
        return "—"
    text = f"{stat['mean']:.{digits}f}"
    if stat.get("ci") is not None:
        text += f" ± {stat['ci']:.{digits}f}"
    return text + f" (n={stat['n']})"
