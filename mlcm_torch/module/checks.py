"""Argument and input validation: every failure is a ValueError naming what, where and the
expected value, raised before anything is modified."""

from __future__ import annotations

import math
from typing import Any, Sequence, get_args

import torch
from torch import Tensor


def one_of(name: str, value: str, allowed: Any) -> str:
    """``value`` must be one of ``allowed`` (a sequence or a ``Literal`` type)."""
    choices = list(get_args(allowed) or allowed)
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not supported; expected one of {choices}")
    return value


def at_least(name: str, value: float, minimum: float) -> None:
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")


def integer_at_least(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}={value!r} must be an integer >= {minimum}")
    at_least(name, value, minimum)
    return value


def finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be a finite number")
    return float(value)


def finite_at_least(name: str, value: float, minimum: float) -> float:
    finite(name, value)
    at_least(name, value, minimum)
    return float(value)


def fraction(name: str, value: float) -> float:
    """A finite number in [0, 1)."""
    finite(name, value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name}={value!r} must lie in [0, 1)")
    return float(value)


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
    low = -1.0 if encoding == "pm1" else 0.0
    if not bool(((x == low) | (x == 1.0)).all()):  # one pass; finite values follow
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x contains NaN or infinite values")
        raise ValueError(
            f"x has values outside {{{low:g}, 1}} (state_encoding={encoding!r}); "
            f"binarize the input first"
        )


def class_labels(y: Tensor, batch: int, num_classes: int) -> None:
    """``y`` must be an integer (batch,) tensor with values in [0, num_classes), or a finite
    float (batch, num_classes) tensor of target vectors."""
    if not isinstance(y, Tensor):
        raise ValueError(f"y must be a torch.Tensor, got {type(y).__name__}")
    if y.dim() == 2 and y.is_floating_point():
        if y.shape != (batch, num_classes):
            raise ValueError(f"target vectors y have shape {tuple(y.shape)}; expected ({batch}, {num_classes})")
        if not bool(torch.isfinite(y).all()):
            raise ValueError("target vectors y contain NaN or infinite values")
        return
    if y.shape != (batch,):
        raise ValueError(
            f"y has shape {tuple(y.shape)}; expected ({batch},) class indices or ({batch}, {num_classes}) "
            f"target vectors"
        )
    if y.is_floating_point() or y.dtype == torch.bool:
        raise ValueError(f"y has dtype {y.dtype}; expected an integer tensor of class indices")
    if batch and not bool(((y >= 0) & (y < num_classes)).all()):
        raise ValueError(
            f"y has labels outside [0, {num_classes}): min {int(y.min())}, max {int(y.max())}"
        )


def relaxed_states(states: Tensor, batch: int, shape: tuple[int, ...]) -> None:
    if tuple(states.shape) != (batch, *shape):
        raise ValueError(
            f"relaxation states have shape {tuple(states.shape)}; expected {(batch, *shape)}"
        )
