"""Couplings between layers and from the clamped sources (input x, label/target y), as
``nn.Module``s whose weights are buffers. A network is layers + couplings; each coupling says
into which layer (``post``) it feeds and from where (``pre``)."""

from __future__ import annotations

from typing import Literal, Union

import torch
from torch import Tensor, nn

from mlcm_torch.functional.graph import Coupling as CouplingSpec
from mlcm_torch.module import checks
from mlcm_torch.module.config import Configurable
from mlcm_torch.module.layers import gaussian_couplings, presynaptic_major, sparse_mask

Phases = Literal["clamped", "always"]
"""When a coupling between layers acts: ``always``, or only in the ``clamped`` (label) phase."""


class Coupling(Configurable, nn.Module):
    """Base class: a coupling into layer ``post`` from ``pre`` with strength λ.

    Subclasses set the weight buffer ``W`` (``None`` for one-to-one couplings) in
    :meth:`build`. Layer indices may be negative (``-1``: the last layer).
    """

    def __init__(self, post: int, pre: Union[int, str], strength: float, phases: Phases = "always") -> None:
        super().__init__()
        if isinstance(post, bool) or not isinstance(post, int):
            raise ValueError(f"post={post!r} must be a layer index")
        if isinstance(pre, bool) or not isinstance(pre, (int, str)):
            raise ValueError(f"pre={pre!r} must be a layer index, 'input' or 'label'")
        self._post, self._pre = post, pre
        self._strength = checks.finite("strength", strength)
        self._phases = checks.one_of("phases", phases, Phases)
        self.register_buffer("W", None)
        self.register_buffer("mask", None)
        self._lr = 0.0
        self._weight_decay = 0.0
        self._sparsity = 0.0

    strength = property(lambda self: self._strength, doc="λ")
    phases = property(lambda self: self._phases)
    lr = property(lambda self: self._lr, doc="η of W (0: fixed)")
    weight_decay = property(lambda self: self._weight_decay, doc="ξ of W")
    sparsity = property(lambda self: self._sparsity)

    def resolve(self, num_layers: int) -> tuple[int, Union[int, str]]:
        """(post, pre) as non-negative layer indices (sources stay ``"input"`` / ``"label"``)."""

        def index(name: str, value: int) -> int:
            if not -num_layers <= value < num_layers:
                raise ValueError(f"{type(self).__name__} {name}={value} is not a layer index of a "
                                 f"network of {num_layers} layers")
            return value % num_layers

        post = index("post", self._post)
        pre = self._pre if isinstance(self._pre, str) else index("pre", self._pre)
        if pre == post:
            raise ValueError(f"{type(self).__name__} couples layer {post} to itself; the recurrent "
                             f"couplings of a layer are its J")
        self._post, self._pre = post, pre
        return post, pre

    @property
    def fan_in(self) -> float:
        return self.W.shape[1] * (1.0 - self._sparsity) if self.W is not None else 1.0

    def build(self, post_size: int, pre_size: int, generator: torch.Generator) -> None:
        """Allocate and draw the weights once the layer sizes are known."""

    def spec(self) -> CouplingSpec:
        """The engine's view of this coupling. Feedback couplings act only in the clamped
        phase; couplings from the input or an earlier layer form the learning margin."""
        margin = self._pre == "input" or (isinstance(self._pre, int) and self._pre < self._post)
        return CouplingSpec(self._post, self._pre, self._strength, self.W,
                            feedback=self._phases == "clamped", margin=margin)

    def _dense(self, post_size: int, pre_size: int, generator: torch.Generator) -> None:
        mask = sparse_mask(post_size, pre_size, self._sparsity, generator, no_diagonal=False)
        W = gaussian_couplings(post_size, pre_size, mask, generator)
        layout = presynaptic_major if isinstance(self._pre, int) else (lambda t: t)
        self.register_buffer("W", layout(W))
        if mask is not None:
            self.register_buffer("mask", layout(mask))  # W's layout: the masked update is one pass

    def extra_repr(self) -> str:
        return f"post={self._post}, pre={self._pre!r}, strength={self._strength}, phases={self._phases!r}"


def _learning(coupling: Coupling, sparsity: float, lr: float, weight_decay: float) -> None:
    coupling._sparsity = checks.fraction("sparsity", sparsity)
    coupling._lr = checks.finite_at_least("lr", lr, 0.0)
    coupling._weight_decay = checks.finite_at_least("weight_decay", weight_decay, 0.0)


class OneToOne(Coupling):
    """λ s^pre_i into neuron i of ``post`` (the thesis' λ_L / λ_R; darnax's "ferromagnetic"
    adapter); zero-padded when ``pre`` is narrower. Fixed.

    Args:
        post: receiving layer.
        pre: sending layer.
        strength: λ.
        phases: ``always`` or ``clamped`` (the thesis' rightward couplings act only with the
            label).
    """

    def __init__(self, post: int, pre: int, strength: float, phases: Phases = "always") -> None:
        super().__init__(post, pre, strength, phases)
        if isinstance(pre, str):
            raise ValueError(f"OneToOne pre={pre!r} must be a layer index; use InputCoupling for the input")

    def build(self, post_size: int, pre_size: int, generator: torch.Generator) -> None:
        if pre_size > post_size:
            raise ValueError(f"OneToOne from layer {self._pre} ({pre_size} neurons) into layer "
                             f"{self._post} ({post_size}): the sending layer must not be wider")


class Dense(Coupling):
    """λ W s^pre with W (N_post × N_pre) drawn N(0, 1/fan-in), optionally sparse (a fixed mask)
    and learnable by the perceptron rule of the postsynaptic neurons (thesis eq. 6.3).

    Args:
        post: receiving layer.
        pre: sending layer.
        strength: λ.
        sparsity: fraction of zero entries of W, in [0, 1).
        lr: learning rate of W (0: fixed random).
        weight_decay: ξ of W.
        phases: ``always`` or ``clamped``.
    """

    def __init__(self, post: int, pre: int, strength: float = 1.0, *, sparsity: float = 0.0, lr: float = 0.0,
                 weight_decay: float = 0.0, phases: Phases = "always") -> None:
        super().__init__(post, pre, strength, phases)
        if isinstance(pre, str):
            raise ValueError(f"Dense pre={pre!r} must be a layer index; use InputCoupling for the input")
        _learning(self, sparsity, lr, weight_decay)

    def build(self, post_size: int, pre_size: int, generator: torch.Generator) -> None:
        self._dense(post_size, pre_size, generator)


class InputCoupling(Coupling):
    """The input x into layer ``post``: λ_IN x̃, with x̃ = x zero-padded to N (``identity``, the
    thesis) or W_in x (``dense``, arXiv 2510.11984; W_in N(0, 1/d), optionally sparse and
    learnable).

    Args:
        post: receiving layer (default: the first).
        strength: λ_IN.
        kind: ``identity`` or ``dense``.
        sparsity: fraction of zero entries of W_in (dense only).
        lr: learning rate of W_in (dense only).
        weight_decay: ξ of W_in.
    """

    def __init__(self, post: int = 0, strength: float = 1.0, *, kind: Literal["identity", "dense"] = "dense",
                 sparsity: float = 0.0, lr: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(post, "input", strength)
        self._kind = checks.one_of("input_coupling", kind, ("identity", "dense"))
        _learning(self, sparsity, lr, weight_decay)
        if kind == "identity" and (sparsity or lr or weight_decay):
            raise ValueError("sparsity, lr and weight_decay of the input need kind='dense' "
                             "(input_coupling='dense'): the identity input has nothing to learn")

    kind = property(lambda self: self._kind)

    def build(self, post_size: int, pre_size: int, generator: torch.Generator) -> None:
        if self._kind == "identity":
            if pre_size > post_size:
                raise ValueError(f"in_features={pre_size} > hidden={post_size}: the identity input needs "
                                 f"d <= N; use input_coupling='dense'")
            return
        self._dense(post_size, pre_size, generator)


class LabelCoupling(Coupling):
    """The label (or target vector) y into layer ``post``: λ_OUT W_back y, W_back (N × C) fixed,
    N(0, 1). Acts only in the clamped phase and never in the learning margin.

    Args:
        post: receiving layer (default: the last).
        strength: λ_OUT.
    """

    def __init__(self, post: int = -1, strength: float = 1.0) -> None:
        super().__init__(post, "label", strength, "clamped")

    def build(self, post_size: int, pre_size: int, generator: torch.Generator) -> None:
        self.register_buffer("W", torch.randn(post_size, pre_size, generator=generator))
