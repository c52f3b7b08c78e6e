"""How important each hidden channel, attention channel and feed-forward neuron is.

Scores feed `--width-strategy magnitude` (from weights alone, no data) and `--width-strategy
activation` (mean activation magnitudes on calibration text, computed in `calibration`): both are
`WidthScores`, and `slicing.width_plan` turns either into kept indices. Higher means keep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from kdcli.files.tensor_stream import Checkpoint
    from kdcli.surgery.architectures import Role, TensorPlan

# How a fused role splits into the per-layer role it is made of.
FUSED: dict[Role, tuple[Role, int]] = {"qkv": ("attn", 3), "glu": ("inter", 2)}


@dataclass
class WidthScores:
    """One score per channel: hidden (global), and attention/feed-forward channels per layer."""

    hidden: torch.Tensor | None = None
    attn: dict[int, torch.Tensor] = field(default_factory=dict)
    inter: dict[int, torch.Tensor] = field(default_factory=dict)


def magnitude_scores(
    checkpoint: Checkpoint, plans: Iterable[TensorPlan], emb_is_hidden: bool
) -> WidthScores:
    """Score channels by the weight norms that read from or write to them.

    Every weight matrix touching a channel contributes the L2 norm of its slice along that channel,
    divided by the matrix's mean so that no single large matrix decides. Fused projections are
    split and their parts summed, so a query/key/value channel is scored by all three.
    """
    scores = WidthScores()
    for plan in plans:
        if len(plan.roles) != 2:
            continue  # biases and norms carry little signal about which channels matter
        for dim, role in enumerate(plan.roles):
            if role == "emb" and emb_is_hidden:
                role = "hidden"
            if role not in ("hidden", "attn", "inter", "qkv", "glu"):
                continue
            norms = _channel_norms(checkpoint, plan.teacher_name, dim)
            base, parts = FUSED.get(role, (role, 1))
            norms = norms.reshape(parts, -1).sum(0)
            _accumulate(scores, base, plan.layer, norms / norms.mean().clamp_min(1e-12))
    return scores


def _channel_norms(checkpoint: Checkpoint, name: str, dim: int) -> torch.Tensor:
    """L2 norm of each index along `dim`, read band by band so huge embeddings stay cheap."""
    import torch

    total = None
    for _, band in checkpoint.row_chunks(name):
        band = band.float()
        squares = band.pow(2).sum(1 - dim)
        if dim == 0:
            total = squares if total is None else torch.cat([total, squares])
        else:
            total = squares if total is None else total + squares
    assert total is not None
    return total.sqrt()


def _accumulate(scores: WidthScores, role: Role, layer: int | None, values: torch.Tensor) -> None:
    if role == "hidden":
        scores.hidden = values if scores.hidden is None else scores.hidden + values
        return
    table = scores.attn if role == "attn" else scores.inter
    assert layer is not None
    table[layer] = values if layer not in table else table[layer] + values
