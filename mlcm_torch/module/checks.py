"""Argument and input validation: every failure is a ValueError naming what, where and the
expected value, raised before anything is modified."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def one_of(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; expected one of {list(allowed)}")
    return value


def at_least(name: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")


def per_layer(name: str, value: float | Sequence[float], length: int) -> tuple[float, ...]:
    """A float broadcast to ``length`` entries, or a sequence of exactly ``length`` floats."""
    if isinstance(value, (int, float)):
        return (float(value),) * length
    values = tuple(float(v) for v in value)
    if len(values) != length:
        raise ValueError(
            f"{name} has {len(values)} entries; expected {length} (one per pair of adjacent "
            f"layers, i.e. num_layers - 1)"
        )
    return values


def binary_input(x: Tensor, width: int, encoding: str) -> None:
    """``x`` must be a finite float (B, width) tensor of ±1 (``pm1``) or {0, 1} (``01``)."""
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2 or x.shape[1] != width:
        raise ValueError(f"x has shape {tuple(x.shape)}; expected (batch, {width})")
    if not x.is_floating_point():
        raise ValueError(f"x has dtype {x.dtype}; expected a floating-point tensor")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values")
    low = -1.0 if encoding == "pm1" else 0.0
    if not bool(((x == low) | (x == 1.0)).all()):
        raise ValueError(
            f"x has values outside {{{low:g}, 1}} (state_encoding={encoding!r}); "
            f"binarize the input first"
        )


def class_labels(y: Tensor, batch: int, num_classes: int) -> None:
    """``y`` must be an integer (batch,) tensor with values in [0, num_classes)."""
    if not isinstance(y, Tensor):
        raise ValueError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.shape != (batch,):
        raise ValueError(f"y has shape {tuple(y.shape)}; expected ({batch},)")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"y has dtype {y.dtype}; expected an integer tensor of class indices")
    if batch and not bool(((y >= 0) & (y < num_classes)).all()):
        raise ValueError(
            f"y has labels outside [0, {num_classes}): min {int(y.min())}, max {int(y.max())}"
        )


def relaxed_states(states: Tensor, batch: int, num_layers: int, hidden: int) -> None:
    if states.shape != (batch, num_layers, hidden):
        raise ValueError(
            f"relaxation states have shape {tuple(states.shape)}; expected "
            f"({batch}, {num_layers}, {hidden})"
        )
