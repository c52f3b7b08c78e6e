"""Cutting a student out of a teacher checkpoint, tensor by tensor.

A `SlicePlan` says which indices of each role (see `architectures`) the student keeps; the copy
streams every kept tensor, band by band, from the teacher's files into the student's file, so peak
memory stays near one band (64 MiB) whatever the model size.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kdcli.core.progress import ProgressCallback, report
from kdcli.files.tensor_stream import Checkpoint, SafetensorsWriter, TensorInfo
from kdcli.surgery.architectures import Role, TensorMatcher, TensorPlan
from kdcli.surgery.importance import FUSED, WidthScores
from kdcli.surgery.selection import HeadShape, attention_indices, top_k

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class SlicePlan:
    """The kept indices of every role; None means "all of them" (copied without indexing)."""

    layers: list[int]
    attn_width: int
    inter_width: int
    hidden: list[int] | None = None
    emb_is_hidden: bool = True
    heads: dict[int, list[int]] = field(default_factory=dict)
    attn: dict[int, list[int]] = field(default_factory=dict)
    inter: dict[int, list[int]] = field(default_factory=dict)
    vocab: list[int] | None = None

    def indices(self, role: Role | None, layer: int | None) -> list[int] | None:
        if role is None:
            return None
        if role == "vocab":
            return self.vocab
        if role == "hidden" or (role == "emb" and self.emb_is_hidden):
            return self.hidden
        if role == "emb":
            return None
        base, parts = FUSED.get(role, (role, 1))
        assert layer is not None, f"role {role} outside a layer"
        kept = (self.attn if base == "attn" else self.inter).get(layer)
        if kept is None:
            return None
        width = self.attn_width if base == "attn" else self.inter_width
        return [i + part * width for part in range(parts) for i in kept]

    def student_info(self, plan: TensorPlan, info: TensorInfo, dtype: str) -> TensorInfo:
        shape = tuple(
            size if (kept := self.indices(role, plan.layer)) is None else len(kept)
            for size, role in zip(info.shape, plan.roles, strict=True)
        )
        return TensorInfo(plan.student_name, dtype, shape)


def plan_tensors(
    matcher: TensorMatcher, names: Sequence[str], layers: Sequence[int]
) -> tuple[list[TensorPlan], list[str]]:
    """Student tensors (renumbered to the student's layers) and the teacher tensors left out."""
    position = {teacher: student for student, teacher in enumerate(layers)}
    layer_name = matcher.layer_prefix_regex()
    plans: list[TensorPlan] = []
    dropped: list[str] = []
    for name in names:
        found = matcher.match(name)
        if found is None:
            dropped.append(name)
            continue
        layer, roles = found
        if layer is None:
            plans.append(TensorPlan(name, name, None, roles))
            continue
        if layer not in position:
            continue
        head, _, tail = layer_name.match(name).groups()  # type: ignore[union-attr]
        student_name = f"{head}{position[layer]}{tail}"
        if matcher.absent_in_student(student_name):
            dropped.append(name)
            continue
        plans.append(TensorPlan(name, student_name, layer, roles))
    return plans, dropped


def width_plan(
    layers: list[int],
    dims: dict[str, int],
    hidden: int,
    heads: HeadShape,
    intermediate: int,
    scores: WidthScores | None,
    emb_is_hidden: bool,
) -> SlicePlan:
    """Kept channels for a target width: the first ones, or the top-scoring ones."""
    teacher_head = dims["hidden"] // dims["heads"]
    plan_heads: dict[int, list[int]] = {}
    attn: dict[int, list[int]] = {}
    inter: dict[int, list[int]] = {}
    for layer in layers:
        if heads.width != dims["hidden"]:
            channel = scores.attn.get(layer) if scores else None
            plan_heads[layer], dims_kept = _pick_heads(channel, dims["heads"], teacher_head, heads)
            attn[layer] = attention_indices(plan_heads[layer], dims_kept, teacher_head)
        if intermediate != dims["intermediate"]:
            inter[layer] = _pick(
                scores.inter.get(layer) if scores else None, intermediate, dims["intermediate"]
            )
    kept_hidden = None
    if hidden != dims["hidden"]:
        kept_hidden = _pick(scores.hidden if scores else None, hidden, dims["hidden"])
    return SlicePlan(
        layers=layers,
        attn_width=dims["hidden"],
        inter_width=dims["intermediate"],
        hidden=kept_hidden,
        emb_is_hidden=emb_is_hidden,
        heads=plan_heads,
        attn=attn,
        inter=inter,
    )


def _pick(scores: torch.Tensor | None, keep: int, total: int) -> list[int]:
    return list(range(keep)) if scores is None else top_k(scores.tolist(), keep)


def _pick_heads(
    channel: torch.Tensor | None, num_heads: int, head_size: int, target: HeadShape
) -> tuple[list[int], list[list[int]]]:
    """Kept heads and, inside each, the kept channels (all of them when the head size stays)."""
    if channel is None:
        heads = list(range(target.num_heads))
        return heads, [list(range(target.head_size)) for _ in heads]
    per_head = channel.reshape(num_heads, head_size)
    heads = top_k(per_head.sum(1).tolist(), target.num_heads)
    return heads, [top_k(per_head[h].tolist(), target.head_size) for h in heads]


def copy_tensors(
    checkpoint: Checkpoint,
    plans: Sequence[TensorPlan],
    slices: SlicePlan,
    writer: SafetensorsWriter,
    dtypes: dict[str, str],
    progress: ProgressCallback | None = None,
) -> None:
    """Stream every planned tensor, sliced and cast, into `writer` in the writer's order."""
    import torch

    by_student = {plan.student_name: plan for plan in plans}
    order = writer.order
    for step, name in enumerate(order):
        plan = by_student[name]
        rows = slices.indices(plan.roles[0], plan.layer)
        rest = [
            None if (kept := slices.indices(role, plan.layer)) is None else torch.tensor(kept)
            for role in plan.roles[1:]
        ]
        dtype = getattr(torch, dtypes[name])
        for start, band in checkpoint.row_chunks(plan.teacher_name):
            band = _select_rows(band, start, rows)
            for dim, index in enumerate(rest, start=1):
                if index is not None:
                    band = band.index_select(dim, index)
            writer.write(name, band.to(dtype))
        report(progress, "copy weights", step + 1, len(order))


def _select_rows(band: torch.Tensor, start: int, rows: list[int] | None) -> torch.Tensor:
    if rows is None:
        return band
    import torch

    lo = bisect.bisect_left(rows, start)
    hi = bisect.bisect_left(rows, start + band.shape[0])
    return band.index_select(0, torch.tensor(rows[lo:hi], dtype=torch.long) - start)
