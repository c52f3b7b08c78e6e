"""Which layers and which rows/columns/heads a student keeps. Pure functions, no I/O.

Every selection is returned as sorted indices into the teacher, so the kept parts keep their order
and can be copied band by band from the checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.validation import check_choice, check_int

LAYER_STRATEGIES = ("uniform", "first", "last", "every-other", "importance")
WIDTH_STRATEGIES = ("first", "magnitude", "activation")


def check_layers(layers: Sequence[int], num_teacher_layers: int) -> list[int]:
    """Explicit teacher layer indices (`layers`), checked: in range, each once, in increasing
    order (a student keeps the teacher's order)."""
    if (
        isinstance(layers, str)
        or not layers
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in layers)
    ):
        raise KdcliError(
            "is not a list of layer indices",
            option="layers",
            value=layers,
            fix="give teacher layer indices such as [0, 2, 4, 7, 9, 11]",
        )
    layers = list(layers)
    bad = [i for i in layers if not 0 <= i < num_teacher_layers]
    if bad:
        raise KdcliError(
            f": {bad} out of range; the teacher has {num_teacher_layers} layers, indices "
            f"0..{num_teacher_layers - 1}",
            option="layers",
            value=layers,
        )
    dupes = sorted({i for i in layers if layers.count(i) > 1})
    if dupes:
        raise KdcliError(
            f"repeats {dupes}", option="layers", value=layers, fix="give each layer once"
        )
    if layers != sorted(layers):
        raise KdcliError(
            "is not in increasing order",
            option="layers",
            value=layers,
            fix=f"layers keep the teacher's order, write {','.join(map(str, sorted(layers)))}",
        )
    return layers


def choose_layers(
    strategy: str,
    num_layers: int | None,
    num_teacher_layers: int,
    importance: Sequence[float] | None = None,
) -> list[int]:
    """Teacher layers to keep for `--num-layers N --layer-strategy S`."""
    check_choice("layer_strategy", strategy, LAYER_STRATEGIES)
    if num_layers is None:
        if strategy != "every-other":
            raise KdcliError(
                f"needs {option_ref('num_layers')} N", option="layer_strategy", value=strategy
            )
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
        raise KdcliError(
            f"needs {option_ref('calib_data')} DATA", option="layer_strategy", value=strategy
        )
    return top_k(importance, num_layers)


def _check_count(num_layers: int, num_teacher_layers: int, strategy: str) -> None:
    check_int("num_layers", num_layers)
    if num_layers > num_teacher_layers:
        raise KdcliError(
            f"is larger than the teacher's {num_teacher_layers} layers",
            option="num_layers",
            value=num_layers,
            fix=f"choose 1..{num_teacher_layers}",
        )
    if strategy == "every-other" and num_layers > math.ceil(num_teacher_layers / 2):
        raise KdcliError(
            f"with every-other needs a teacher of at least {2 * num_layers - 1} layers (it has "
            f"{num_teacher_layers}); use uniform instead",
            option="num_layers",
            value=num_layers,
        )


def uniform_layers(num_layers: int, num_teacher_layers: int) -> list[int]:
    """Maximally spaced layers, first and last kept: linspace(0, L-1, n) rounded half up.

    For 12 -> 6 this gives 0,2,4,7,9,11, DistilBERT's own choice; for 6 -> 3, 0,3,5 (numpy's
    half-to-even round would give 0,2,5).
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
            f"fits neither whole {head_size}-wide heads nor {teacher_heads} heads",
            option="hidden_size",
            value=hidden,
            fix=f"choose a multiple of {head_size} or pass {option_ref('num_heads')}",
        )
    if heads < 1 or heads > teacher_heads:
        raise KdcliError(
            f"must be between 1 and the teacher's {teacher_heads}", option="num_heads", value=heads
        )
    if hidden % heads:
        raise KdcliError(
            f"does not divide the hidden size {hidden}",
            option="num_heads",
            value=heads,
            fix=f"choose a divisor of {hidden} (e.g. {_divisors_near(hidden, heads)})",
        )
    if hidden // heads > head_size:
        raise KdcliError(
            f"with hidden size {hidden} gives heads {hidden // heads} wide, wider than the "
            f"teacher's {head_size}",
            option="num_heads",
            value=heads,
            fix=f"use more heads or a smaller {option_ref('hidden_size')}",
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
