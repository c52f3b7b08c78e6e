"""Which layers and which rows/columns/heads a student keeps. Pure functions, no I/O.

Every selection is returned as sorted indices into the teacher, so the kept parts keep their order
and can be copied band by band from the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from kdcli.core.errors import KdcliError

LAYER_STRATEGIES = ("uniform", "first", "last", "every-other", "importance")
WIDTH_STRATEGIES = ("first", "magnitude", "activation")


def parse_layers(spec: str, num_teacher_layers: int) -> list[int]:
    """`--layers 0,2,4`: explicit teacher layer indices, checked and in increasing order."""
    parts = [p.strip() for p in spec.split(",")]
    if not spec.strip() or any(p == "" for p in parts):
        raise KdcliError(
            f"--layers {spec!r} is empty or has an empty item: give comma-separated indices "
            "such as 0,2,4,7,9,11"
        )
    try:
        layers = [int(p) for p in parts]
    except ValueError as err:
        raise KdcliError(
            f"--layers {spec!r} is not a list of integers: give comma-separated indices "
            "such as 0,2,4,7,9,11"
        ) from err
    bad = [i for i in layers if not 0 <= i < num_teacher_layers]
    if bad:
        raise KdcliError(
            f"--layers {spec!r}: {bad} out of range; the teacher has {num_teacher_layers} "
            f"layers, indices 0..{num_teacher_layers - 1}"
        )
    dupes = sorted({i for i in layers if layers.count(i) > 1})
    if dupes:
        raise KdcliError(f"--layers {spec!r} repeats {dupes}: give each layer once")
    if layers != sorted(layers):
        raise KdcliError(
            f"--layers {spec!r} is not in increasing order: layers keep the teacher's order, "
            f"write {','.join(map(str, sorted(layers)))}"
        )
    return layers


def choose_layers(
    strategy: str,
    num_layers: int | None,
    num_teacher_layers: int,
    importance: Sequence[float] | None = None,
) -> list[int]:
    """Teacher layers to keep for `--num-layers N --layer-strategy S`."""
    if strategy not in LAYER_STRATEGIES:
        raise KdcliError(
            f"--layer-strategy {strategy!r} is unknown: choose one of {', '.join(LAYER_STRATEGIES)}"
        )
    if num_layers is None:
        if strategy != "every-other":
            raise KdcliError(f"--layer-strategy {strategy} needs --num-layers N")
        num_layers = math.ceil(num_teacher_layers / 2)
    _check_count(num_layers, num_teacher_layers, strategy)
    if strategy == "uniform":
        return uniform_layers(num_layers, num_teacher_layers)
    if strategy == "first":
        return list(range(num_layers))
    if strategy == "last":
        return list(range(num_teacher_layers - num_layers, num_teacher_layers))
    if strategy == "every-other":
        return list(range(0, 2 * num_layers, 2))
    if importance is None:
        raise KdcliError("--layer-strategy importance needs --calib-data DATA")
    return top_k(importance, num_layers)


def _check_count(num_layers: int, num_teacher_layers: int, strategy: str) -> None:
    if num_layers < 1:
        raise KdcliError(f"--num-layers {num_layers} must be at least 1")
    if num_layers > num_teacher_layers:
        raise KdcliError(
            f"--num-layers {num_layers} is larger than the teacher's {num_teacher_layers} "
            f"layers: choose 1..{num_teacher_layers}"
        )
    if strategy == "every-other" and num_layers > math.ceil(num_teacher_layers / 2):
        raise KdcliError(
            f"--num-layers {num_layers} with every-other needs a teacher of at least "
            f"{2 * num_layers - 1} layers (it has {num_teacher_layers}); use uniform instead"
        )


def uniform_layers(num_layers: int, num_teacher_layers: int) -> list[int]:
    """Maximally spaced layers, first and last kept: round(linspace(0, L-1, n)).

    For 12 -> 6 this gives 0,2,4,7,9,11, DistilBERT's own choice.
    """
    if num_layers == 1:
        return [0]
    step = (num_teacher_layers - 1) / (num_layers - 1)
    return [math.floor(i * step + 0.5) for i in range(num_layers)]


def top_k(scores: Sequence[float], k: int) -> list[int]:
    """Indices of the k largest scores (ties: the lower index), in increasing order."""
    ranked = sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))
    return sorted(ranked[:k])


@dataclass(frozen=True)
class HeadShape:
    """How the student's attention is laid out relative to the teacher's."""

    num_heads: int
    head_size: int

    @property
    def width(self) -> int:
        return self.num_heads * self.head_size


def student_heads(
    teacher_hidden: int,
    teacher_heads: int,
    hidden: int,
    heads: int | None,
) -> HeadShape:
    """The student's heads for hidden size `hidden`.

    With `--num-heads` unset, kdcli keeps the teacher's head size and drops whole heads when the new
    hidden size allows it (384 of 768 with 64-wide heads: 6 heads); otherwise it keeps the number
    of heads and narrows each one. With `--num-heads` set, head size = hidden / heads, which must
    not exceed the teacher's.
    """
    head_size = teacher_hidden // teacher_heads
    if heads is None:
        if hidden % head_size == 0:
            return HeadShape(hidden // head_size, head_size)
        if hidden % teacher_heads == 0:
            return HeadShape(teacher_heads, hidden // teacher_heads)
        raise KdcliError(
            f"--hidden-size {hidden} fits neither whole {head_size}-wide heads nor "
            f"{teacher_heads} heads: choose a multiple of {head_size} or pass --num-heads"
        )
    if heads < 1 or heads > teacher_heads:
        raise KdcliError(f"--num-heads {heads} must be between 1 and the teacher's {teacher_heads}")
    if hidden % heads:
        raise KdcliError(
            f"--num-heads {heads} does not divide the hidden size {hidden}: choose a divisor "
            f"of {hidden} (e.g. {_divisors_near(hidden, heads)})"
        )
    if hidden // heads > head_size:
        raise KdcliError(
            f"--num-heads {heads} with hidden size {hidden} gives heads {hidden // heads} wide, "
            f"wider than the teacher's {head_size}: use more heads or a smaller --hidden-size"
        )
    return HeadShape(heads, hidden // heads)


def _divisors_near(number: int, target: int) -> str:
    divisors = [d for d in range(1, number + 1) if number % d == 0]
    nearest = sorted(divisors, key=lambda d: abs(d - target))[:3]
    return ", ".join(map(str, sorted(nearest)))


def attention_indices(
    heads: Sequence[int], dims: Sequence[Sequence[int]], head_size: int
) -> list[int]:
    """Flat indices into the teacher's heads*head_size attention width."""
    return [h * head_size + d for h, kept in zip(heads, dims, strict=True) for d in kept]
