"""The search space of `kdcli search` and the arithmetic that orders and prunes it. Pure.

A *shape* is what gets trained: a depth (how many of the teacher's layers, chosen by a layer
strategy) and a width (a fraction of the teacher's hidden size, heads and feed-forward size). A
*variant* is what gets deployed: a trained shape with the full or a trimmed vocabulary, exported
as fp32 or int8 ONNX. Vocabulary trimming and int8 are applied after training (trimming keeps
every token the data needs, so the model's outputs on that data do not change; int8 is verified
against PyTorch), so one training serves four variants.

Sizes are estimated from the teacher's tensor shapes before anything is built (embedding rows
shrink with the vocabulary and scale with the width, layer tensors scale with the width squared),
then replaced by measurements; latency is only ever measured.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kdcli.core.errors import KdcliError

FULL = "full"  # the layer strategy name of a shape that keeps every layer
TEACHER_SHAPE = "teacher"
LAYER_PATTERN = re.compile(r"(?:^|\.)(?:layer|layers)\.(\d+)\.")
# int8 ONNX: weights of MatMul/Gather nodes in 1 byte; norms, biases and the head stay float.
INT8_BYTES_PER_PARAM = 1.0
FP32_BYTES_PER_PARAM = 4.0


@dataclass(frozen=True)
class Shape:
    """A student to train (`num_layers` of the teacher's, `width` a fraction of its width)."""

    num_layers: int
    strategy: str  # a shrink --layer-strategy, or FULL
    width: float
    hidden: int
    intermediate: int
    heads: int
    teacher_layers: int

    @property
    def name(self) -> str:
        if self.is_teacher:
            return TEACHER_SHAPE
        return f"L{self.num_layers}-{self.strategy}-w{round(100 * self.width)}"

    @property
    def is_teacher(self) -> bool:
        """The teacher itself: nothing to train, only trimming and int8 to try."""
        return self.num_layers == self.teacher_layers and self.width == 1.0

    @property
    def compute(self) -> float:
        """Relative cost of a forward pass (and so of training and evaluating it)."""
        return self.num_layers * self.width**2

    def dominates(self, other: Shape) -> bool:
        """At least as deep and as wide: never faster than `other`."""
        return self.num_layers >= other.num_layers and self.width >= other.width


@dataclass(frozen=True)
class Variant:
    shape: Shape
    vocab: str  # "full" or "trimmed"
    format: str  # "fp32" or "int8"

    @property
    def name(self) -> str:
        return f"{self.shape.name}-{self.vocab}-{self.format}"


@dataclass(frozen=True)
class TeacherSizes:
    """Parameter counts of the teacher by kind, from its checkpoint's tensor shapes."""

    embedding: int  # token embedding rows x width
    vocab_size: int
    per_layer: float
    other_width: int  # outside the layers, scaling with the width (positions, norms)
    other_square: int  # outside the layers, scaling with width squared (pooler)

    @classmethod
    def from_tensors(
        cls, shapes: Mapping[str, Sequence[int]], vocab_size: int, hidden: int, layers: int
    ) -> TeacherSizes:
        embedding = per_layer_total = other_width = other_square = 0
        for name, shape in shapes.items():
            numel = math.prod(shape) if shape else 1
            if LAYER_PATTERN.search(name):
                per_layer_total += numel
            elif len(shape) == 2 and shape[0] == vocab_size and shape[1] == hidden:
                embedding += numel
            elif len(shape) == 2 and shape[0] == hidden and shape[1] == hidden:
                other_square += numel
            else:
                other_width += numel
        return cls(
            embedding, vocab_size, per_layer_total / max(1, layers), other_width, other_square
        )

    def params(self, shape: Shape, vocab_rows: int | None = None) -> float:
        """Estimated parameters of `shape` (with `vocab_rows` token rows, default: all)."""
        rows = self.vocab_size if vocab_rows is None else vocab_rows
        embedding = self.embedding * (rows / self.vocab_size if self.vocab_size else 1.0)
        w = shape.width
        return (
            embedding * w
            + shape.num_layers * self.per_layer * w * w
            + self.other_width * w
            + self.other_square * w * w
        )


def bytes_per_param(fmt: str) -> float:
    return INT8_BYTES_PER_PARAM if fmt == "int8" else FP32_BYTES_PER_PARAM


def default_depths(teacher_layers: int) -> list[int]:
    """A quarter, a third, half and two thirds of the teacher's depth, and all of it."""
    fractions = (1 / 4, 1 / 3, 1 / 2, 2 / 3)
    depths = {max(1, round(teacher_layers * f)) for f in fractions}
    return [*sorted(d for d in depths if d < teacher_layers), teacher_layers]


def shape_for(
    num_layers: int,
    strategy: str,
    width: float,
    dims: dict[str, int],
) -> Shape:
    """The student of a depth and width: heads keep the teacher's head size (whole heads are
    dropped), the feed-forward size shrinks by the same factor."""
    head_size = dims["hidden"] // dims["heads"]
    heads = max(1, round(dims["heads"] * width))
    hidden = dims["hidden"] if width == 1.0 else heads * head_size
    intermediate = (
        dims["intermediate"] if width == 1.0 else max(1, round(dims["intermediate"] * width))
    )
    return Shape(
        num_layers=num_layers,
        strategy=strategy if num_layers < dims["layers"] else FULL,
        width=width,
        hidden=hidden,
        intermediate=intermediate,
        heads=heads,
        teacher_layers=dims["layers"],
    )


def build_shapes(
    depths: Sequence[int], strategies: Sequence[str], widths: Sequence[float], dims: dict[str, int]
) -> list[Shape]:
    """Every depth x strategy x width, cheapest to evaluate first (full depth has no strategy)."""
    shapes: dict[str, Shape] = {}
    for depth in depths:
        for strategy in strategies if depth < dims["layers"] else [FULL]:
            for width in widths:
                shape = shape_for(depth, strategy, width, dims)
                shapes.setdefault(shape.name, shape)
    return sorted(shapes.values(), key=lambda s: (s.compute, s.num_layers, s.name))


def promising(
    short_retention: float,
    short_worst: float,
    min_retention: float | None,
    min_language_retention: float | None,
    allowance: float,
    closes: float = 0.0,
) -> bool:
    """A short run is promising when what a full run can still add could take it to every
    accuracy constraint: `allowance` points, or the share `closes` of its gap to the teacher
    (retention 1), whichever is more. The gap share is what lets a student far below the
    target qualify: a shallower student gains more from full training than a deeper one."""

    def reachable(short: float) -> float:
        return short + max(allowance, closes * max(0.0, 1.0 - short))

    if min_retention is not None and reachable(short_retention) < min_retention:
        return False
    return not (
        min_language_retention is not None and reachable(short_worst) < min_language_retention
    )


def full_run_gain(
    short: tuple[float, float], full: tuple[float, float], allowance: float, closes: float
) -> tuple[float, float]:
    """`allowance` and `closes` grown by what one full run added to its short run (retention
    and worst-language retention alike): in points, and as a share of the gap to the teacher."""
    for before, after in zip(short, full, strict=True):
        allowance = max(allowance, after - before)
        if before < 1.0:
            closes = max(closes, (after - before) / (1.0 - before))
    return allowance, closes


# --- parsing the constraints -------------------------------------------------------------------

_SIZE_UNITS = {
    "b": 1,
    "kb": 1e3,
    "mb": 1e6,
    "gb": 1e9,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
}
_TIME_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


def parse_size(option: str, value: str | int | float | None) -> int | None:
    """`50MB`, `1.5 GB`, `300MiB`, or a number of bytes."""
    if value is None:
        return None
    text = str(value).strip().lower().replace(" ", "")
    found = re.fullmatch(r"(\d+(?:\.\d+)?)([a-z]*)", text)
    if not found or found.group(2) not in _SIZE_UNITS | {"": 1}:
        raise KdcliError(
            "is not a size", option=option, value=value, fix="write e.g. 50MB, 1.5GB or 300MiB"
        )
    size = float(found.group(1)) * (_SIZE_UNITS.get(found.group(2), 1))
    if size <= 0:
        raise KdcliError("must be greater than zero", option=option, value=value)
    return int(size)


def parse_latency(option: str, value: str | float | None) -> float | None:
    """`5ms`, `0.005s`, or a number of milliseconds."""
    if value is None:
        return None
    text = str(value).strip().lower().replace(" ", "")
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)?", text)
    if not found:
        raise KdcliError(
            "is not a latency", option=option, value=value, fix="write e.g. 5ms or 0.5s"
        )
    ms = float(found.group(1)) * (1000.0 if found.group(2) == "s" else 1.0)
    if ms <= 0:
        raise KdcliError("must be greater than zero", option=option, value=value)
    return ms


def parse_duration(option: str, value: str | float | None) -> float | None:
    """`2h`, `90m`, `1h30m`, `45s`, or a number of seconds."""
    if value is None:
        return None
    text = str(value).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)([a-z]+)", text)
        if (
            not parts
            or "".join(n + u for n, u in parts) != text
            or any(u not in _TIME_UNITS for _, u in parts)
        ):
            raise KdcliError(
                "is not a duration", option=option, value=value, fix="write e.g. 2h, 90m or 1h30m"
            )
        seconds = sum(float(n) * _TIME_UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise KdcliError("must be greater than zero", option=option, value=value)
    return seconds


def parse_fraction(option: str, value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise KdcliError(
            "must be a fraction above 0 and at most 1",
            option=option,
            value=value,
            fix="e.g. 0.98 (98%)",
        )
    return float(value)
