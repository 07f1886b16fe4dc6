"""Local fields of the Multi-Layer Chain Model (thesis eq. 6.1) and the neuron activation.

Shapes: ``B`` samples, ``L`` layers, ``N`` neurons per layer. States are float tensors
``(B, L, N)`` holding ±1 (``"pm1"``) or {0, 1} (``"01"``, thesis eq. 7.1).

For layer ``l`` (0-based here, 1-based in the thesis)::

    h^1 = J^1 s^1 + J_D s^1 + λ_IN x̃       + λ_R^1 s^2
    h^l = J^l s^l + J_D s^l + λ_L^l s^(l−1) + λ_R^l s^(l+1)
    h^L = J^L s^L + J_D s^L + λ_L^L s^(L−1) + λ_OUT W_back y

``J^l`` has a zero diagonal and rows are postsynaptic: ``h_i = Σ_j J_ij s_j``. The
external drives (``λ_IN x̃`` and ``λ_OUT W_back y``) are precomputed per sample and carried
in a :class:`Drive`; inference passes ``lambda_right`` all zero and no label field
(thesis Alg. 2). For the {0,1} encoding the drive also carries the thresholds
``κ + γ`` (thesis eq. 7.1) which are subtracted, so the returned field is the argument of θ.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor


class Couplings(NamedTuple):
    """The network's couplings, as used by one relaxation.

    ``J``: (L, N, N) internal couplings with zero diagonal. ``j_d``: the self-coupling J_D.
    ``lambda_left[l]``: coupling of layer ``l`` to layer ``l−1`` (``lambda_left[0]`` unused).
    ``lambda_right[l]``: coupling of layer ``l`` to layer ``l+1`` (last entry unused).
    """

    J: Tensor
    j_d: float
    lambda_left: Sequence[float]
    lambda_right: Sequence[float]


class Drive(NamedTuple):
    """Per-sample external fields and thresholds.

    ``input_field``: (B, N) ``λ_IN x̃`` entering layer 1. ``label_field``: (B, N)
    ``λ_OUT W_back y`` entering layer L, or ``None`` (no label feedback). ``threshold``:
    (L, N) ``κ + γ`` subtracted from the fields ({0,1} encoding), or ``None`` (±1).
    """

    input_field: Tensor
    label_field: Tensor | None = None
    threshold: Tensor | None = None


def layer_fields(
    states: Tensor, layer: int, couplings: Couplings, drive: Drive, neurons: slice = slice(None)
) -> Tensor:
    """Thesis eq. 6.1 for one layer: the fields (B, n) of ``neurons`` of ``layer``.

    ``neurons`` selects a contiguous range (a single neuron for asynchronous updates); the
    default is the whole layer.
    """
    num_layers = states.shape[1]
    s = states[:, layer]
    h = s @ couplings.J[layer, neurons].T + couplings.j_d * s[:, neurons]
    if layer == 0:
        h = h + drive.input_field[:, neurons]
    elif couplings.lambda_left[layer] != 0:
        h = h + couplings.lambda_left[layer] * states[:, layer - 1, neurons]
    if layer == num_layers - 1:
        if drive.label_field is not None:
            h = h + drive.label_field[:, neurons]
    elif couplings.lambda_right[layer] != 0:
        h = h + couplings.lambda_right[layer] * states[:, layer + 1, neurons]
    if drive.threshold is not None:
        h = h - drive.threshold[layer, neurons]
    return h


def fields(states: Tensor, couplings: Couplings, drive: Drive) -> Tensor:
    """Thesis eq. 6.1 for every layer at once: (B, L, N) fields of ``states``."""
    return torch.stack(
        [layer_fields(states, layer, couplings, drive) for layer in range(states.shape[1])], dim=1
    )


def activate(h: Tensor, encoding: str, k_winners: int | None = None) -> Tensor:
    """The neuron nonlinearity applied to fields ``h`` (..., N).

    ``"pm1"``: s = sign(h) with sign(0) = +1. ``"01"``: z = θ(h) with θ(0) = 1 (thesis
    eq. 7.1; ``h`` already has κ + γ subtracted). With ``k_winners`` = k, only the k largest
    fields of each layer are active (k-winners-take-all); the others are −1 / 0.
    """
    inactive = -1.0 if encoding == "pm1" else 0.0
    if k_winners is None:
        active = h >= 0
    else:
        top = h.topk(k_winners, dim=-1).indices
        active = torch.zeros_like(h, dtype=torch.bool).scatter_(-1, top, True)
    return torch.where(active, 1.0, inactive).to(h.dtype)


def zero_one_thresholds(
    J: Tensor,
    j_d: float,
    lambda_left: Sequence[float],
    lambda_right: Sequence[float],
    input_row_sums: Tensor,
    gamma: float,
) -> Tensor:
    """Thresholds κ_i^l + γ of the {0,1} encoding (thesis eq. 7.1, §7.2), shape (L, N).

    κ_i^l = ½ (Σ_{j≠i} J_ij + J_D + λ_L^l + λ_R^l). Layer 1 has the input in place of a left
    neighbour, so λ_L^1 becomes ``λ_IN Σ_j W_in_ij`` (``input_row_sums``: λ_IN for the
    padded identity input); layer L has no λ_R term (its right neighbour is the label,
    whose field enters unchanged). Pass ``lambda_right`` all zero under inference. With
    γ = 0 the {0,1} dynamics equal the ±1 dynamics on s = 2z − 1.
    """
    num_layers = J.shape[0]
    left = torch.tensor(list(lambda_left), dtype=J.dtype, device=J.device)
    right = torch.tensor(list(lambda_right), dtype=J.dtype, device=J.device)
    right[num_layers - 1] = 0.0
    left[0] = 0.0
    neighbour = (left + right + j_d)[:, None] + J.sum(dim=2)
    neighbour[0] = neighbour[0] + input_row_sums
    return 0.5 * neighbour + gamma
