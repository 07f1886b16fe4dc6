"""Encodings that turn images into the binary input states the model consumes.

Every encoder returns float32 states of shape ``(n, features)`` in one of two state
encodings: ``"pm1"`` (inactive -1, active +1) or ``"01"`` (inactive 0, active 1).
Images are either ``uint8`` pixels in ``[0, 255]`` (scaled by 1/255) or floating
point pixels already in ``[0, 1]``; any trailing shape is flattened.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

STATE_ENCODINGS = ("pm1", "01")
"""Accepted values of ``state_encoding``."""


def check_state_encoding(state_encoding: str) -> None:
    """Raise ``ValueError`` unless ``state_encoding`` is one of :data:`STATE_ENCODINGS`."""
    if state_encoding not in STATE_ENCODINGS:
        raise ValueError(
            f"state_encoding={state_encoding!r} is not supported; expected one of {STATE_ENCODINGS}"
        )


def to_states(active: Tensor, state_encoding: str = "pm1") -> Tensor:
    """Map a boolean tensor of active units to float32 states.

    Args:
        active: boolean tensor, ``True`` where a unit is active.
        state_encoding: ``"pm1"`` for {-1, +1} or ``"01"`` for {0, 1}.

    Returns:
        A float32 tensor with the shape of ``active``.
    """
    check_state_encoding(state_encoding)
    if state_encoding == "pm1":
        return torch.where(active, 1.0, -1.0).to(torch.float32)
    return active.to(torch.float32)


def scale_pixels(images: Tensor) -> Tensor:
    """Flatten images to ``(n, features)`` float32 pixels in ``[0, 1]``.

    Args:
        images: ``uint8`` tensor (divided by 255) or floating tensor already in ``[0, 1]``,
            with the sample index first.

    Raises:
        ValueError: for other dtypes, a tensor without a sample dimension, or floating pixels
            outside ``[0, 1]``.
    """
    if images.dim() < 2:
        raise ValueError(
            f"images has shape {tuple(images.shape)}; expected (n, ...) with a sample dimension first"
        )
    flat = images.reshape(images.shape[0], -1)
    if flat.dtype == torch.uint8:
        return flat.to(torch.float32).div_(255.0)
    if not flat.is_floating_point():
        raise ValueError(f"images has dtype {images.dtype}; expected torch.uint8 or a floating dtype")
    if flat.numel() and (flat.min() < 0 or flat.max() > 1):
        raise ValueError(
            f"floating images have values in [{flat.min().item()}, {flat.max().item()}]; expected [0, 1]"
        )
    return flat.to(torch.float32)


def check_threshold(threshold: float) -> None:
    """Raise ``ValueError`` unless ``threshold`` lies in ``[0, 1]``."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold={threshold!r} is outside [0, 1]; pixels are scaled to [0, 1]")


def binarize(images: Tensor, threshold: float = 0.5, state_encoding: str = "pm1") -> Tensor:
    """Binarize pixels by a threshold: a pixel (scaled to ``[0, 1]``) above it is active.

    Args:
        images: images with the sample index first (see :func:`scale_pixels`).
        threshold: value in ``[0, 1]``; pixels strictly greater are active.
        state_encoding: ``"pm1"`` or ``"01"``.

    Returns:
        float32 states of shape ``(n, prod(image shape))``, e.g. ``(n, 784)`` for MNIST.
    """
    check_threshold(threshold)
    return to_states(scale_pixels(images) > threshold, state_encoding)


class RandomProjection:
    """A fixed, seeded random Gaussian projection followed by the sign.

    For a flattened image ``x`` with pixels in ``[0, 1]`` (not mean-centred, as in the
    code of arXiv 2510.11984), unit ``i`` is active when ``(W x)_i > 0``, where
    ``W`` has shape ``(out_features, in_features)`` with i.i.d. entries drawn from
    ``N(0, 1 / in_features)`` by a CPU :class:`torch.Generator` seeded with ``seed``.
    An exactly zero projection counts as inactive. The matrix depends only on
    ``(in_features, out_features, seed)``, so train, validation and test data encoded
    by equal instances share it. With ``out_features = 100`` on MNIST this is the
    paper's "entangled MNIST"; its code uses ``out_features = 784`` for plain MNIST.

    Args:
        in_features: number of pixels per image (784 for MNIST).
        out_features: number of output units D.
        seed: seed of the generator that draws the matrix.
    """

    def __init__(self, in_features: int, out_features: int, seed: int = 0) -> None:
        if in_features < 1:
            raise ValueError(f"in_features={in_features!r} must be a positive integer")
        if out_features < 1:
            raise ValueError(f"out_features={out_features!r} must be a positive integer")
        self.in_features = in_features
        self.out_features = out_features
        self.seed = seed
        generator = torch.Generator(device="cpu").manual_seed(seed)
        weight = torch.randn(out_features, in_features, generator=generator, dtype=torch.float32)
        self.weight = weight.div_(math.sqrt(in_features))

    def __call__(self, images: Tensor, state_encoding: str = "pm1") -> Tensor:
        """Project images and take the sign.

        Args:
            images: images with the sample index first and ``in_features`` pixels each.
            state_encoding: ``"pm1"`` or ``"01"``.

        Returns:
            float32 states of shape ``(n, out_features)``.
        """
        pixels = scale_pixels(images)
        if pixels.shape[1] != self.in_features:
            raise ValueError(
                f"images have {pixels.shape[1]} pixels each; this projection expects {self.in_features}"
            )
        return to_states(pixels @ self.weight.T > 0, state_encoding)

    def __repr__(self) -> str:
        """Describe the projection by its defining arguments."""
        return (
            f"{type(self).__name__}(in_features={self.in_features}, "
            f"out_features={self.out_features}, seed={self.seed})"
        )
