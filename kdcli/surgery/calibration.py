"""Calibration: what the teacher's channels and layers do on real text (forward passes only).

`--width-strategy activation` ranks attention heads, feed-forward neurons and hidden channels by
their mean activation magnitude over calibration text (the Minitron recipe); `--layer-strategy
importance` ranks layers by how much they change their input, 1 - cos(input, output) averaged
over tokens. Both come from one pass of the teacher over the calibration text, with hooks placed
by the architecture's tensor roles, so every supported family is handled by the same code:

- a weight whose input dimension is a layer's attention width (`attn`) belongs to the module that
  reads the attention context: its input is the per-head output;
- a weight whose input dimension is a layer's feed-forward width (`inter`) reads the neurons'
  activations (after the nonlinearity, and after the gate in gated feed-forwards);
- a norm on the residual stream (`hidden`) outputs the hidden channels.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.progress import ProgressCallback, report
from kdcli.data.batching import collate, encode, model_inputs
from kdcli.data.languages import by_language, round_robin
from kdcli.surgery.importance import WidthScores

if TYPE_CHECKING:
    import torch

    from kdcli.files.model_dirs import ModelRef
    from kdcli.surgery.architectures import TensorMatcher, TensorPlan

BATCH_SIZE = 16
MAX_LENGTH = 128


@dataclass(frozen=True)
class HookPoints:
    """Module names (as in the teacher's state dict) where calibration listens."""

    attn: dict[int, str] = field(default_factory=dict)  # layer -> reads the attention context
    inter: dict[int, str] = field(default_factory=dict)  # layer -> reads the FFN activations
    norms: list[str] = field(default_factory=list)  # residual-stream norms (hidden channels)
    layers: dict[int, str] = field(default_factory=dict)  # layer -> the layer module


@dataclass
class Calibration:
    """Activation statistics of a teacher on calibration text."""

    width: WidthScores
    layer_importance: list[float]
    samples: int
    tokens: int


def hook_points(
    plans: Sequence[TensorPlan], matcher: TensorMatcher, emb_is_hidden: bool
) -> HookPoints:
    """Where to listen, from the tensor roles of every teacher layer."""
    points = HookPoints()
    layer_name = matcher.layer_prefix_regex()
    for plan in plans:
        name = plan.teacher_name
        module, _, param = name.rpartition(".")
        if plan.layer is not None:
            found = layer_name.match(name)
            if found:
                points.layers[plan.layer] = found.group(1) + found.group(2)
        if param != "weight" and param != "gamma":
            continue
        if plan.roles == ("hidden", "attn") and plan.layer is not None:
            points.attn[plan.layer] = module
        elif plan.roles == ("hidden", "inter") and plan.layer is not None:
            points.inter[plan.layer] = module
        elif _is_residual_norm(plan, emb_is_hidden) and module not in points.norms:
            points.norms.append(module)
    return points


def _is_residual_norm(plan: TensorPlan, emb_is_hidden: bool) -> bool:
    role_ok = plan.roles == ("hidden",) or (plan.roles == ("emb",) and emb_is_hidden)
    # Norms outside layers other than the embeddings' (DeBERTa's relative-position norm,
    # ModernBERT's final norm) do not see each token's residual stream on its way in.
    where_ok = plan.layer is not None or "embeddings" in plan.teacher_name
    return role_ok and where_ok and bool(re.search(r"norm", plan.teacher_name, re.IGNORECASE))


def calibration_texts(
    texts: Sequence[str], languages: Sequence[str], samples: int, seed: int
) -> list[str]:
    """Up to `samples` non-empty texts, shuffled per language and interleaved.

    Interleaving gives every language the same share however unbalanced the data is, so
    the channels that matter for a small language are not outvoted by a large one.
    """
    kept = [i for i, text in enumerate(texts) if text.strip()]
    rng = random.Random(seed)
    groups = []
    for indices in by_language([languages[i] for i in kept]).values():
        group = [texts[kept[i]] for i in indices]
        rng.shuffle(group)
        groups.append(group)
    return round_robin(groups, samples)


def calibrate(
    ref: ModelRef,
    teacher_config: dict[str, Any],
    points: HookPoints,
    texts: Sequence[str],
    want_width: bool,
    want_layers: bool,
    progress: ProgressCallback | None = None,
) -> Calibration:
    """Run the teacher over `texts` and collect the statistics asked for."""
    import torch

    from kdcli.files.model_dirs import load_tokenizer

    tokenizer = load_tokenizer(ref)
    model = _load_teacher(ref, teacher_config)
    modules = dict(model.named_modules())
    wanted = [*points.attn.values(), *points.inter.values(), *points.norms, *points.layers.values()]
    missing = [name for name in wanted if name not in modules]
    if missing:
        raise KdcliError(
            f"{ref.name}: the loaded model has no module {missing[0]!r} that its checkpoint "
            f"names: it cannot be calibrated; use {option_ref('width_strategy')} first/magnitude "
            f"and a fixed {option_ref('layer_strategy')}"
        )
    stats = _Stats()
    handles = _register(modules, points, stats, want_width, want_layers)
    total = len(texts)
    encoded = encode(tokenizer, texts, MAX_LENGTH, model_inputs(model.forward, tokenizer))
    try:
        with torch.no_grad():
            for start in range(0, total, BATCH_SIZE):
                batch = collate(encoded, range(start, min(start + BATCH_SIZE, total)))
                stats.mask = batch["attention_mask"].bool()
                stats.tokens += int(stats.mask.sum())
                model(**batch)
                report(progress, "calibrate", min(start + BATCH_SIZE, total), total)
    finally:
        for handle in handles:
            handle.remove()
    return _result(stats, points, total, want_width, want_layers)


def _load_teacher(ref: ModelRef, teacher_config: dict[str, Any]) -> Any:
    """The teacher in the class that wrote its checkpoint, so module names match tensor names."""
    import torch
    import transformers

    from kdcli.core.errors import one_line

    names = teacher_config.get("architectures") or []
    factory = getattr(transformers, names[0], None) if names else None
    factory = factory or transformers.AutoModel
    try:
        model = factory.from_pretrained(ref.path, dtype=torch.float32)
    except Exception as err:  # transformers raises many types for unloadable checkpoints
        raise KdcliError(
            f"cannot load {ref.name} to calibrate it: {one_line(err)} (data-driven selection "
            "needs the teacher in safetensors format)"
        ) from err
    return model.eval()


class _Stats:
    """Running sums of |activation| per channel and of 1 - cos per layer."""

    def __init__(self) -> None:
        self.mask: torch.Tensor | None = None
        self.tokens = 0
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}
        self.layer_inputs: dict[int, torch.Tensor] = {}
        self.change: dict[int, float] = {}
        self.change_counts: dict[int, int] = {}

    def rows(self, tensor: torch.Tensor) -> torch.Tensor | None:
        """One row per real (non-padding) token, whether the model pads or packs sequences."""
        assert self.mask is not None
        if tensor.dim() == 3 and tensor.shape[:2] == self.mask.shape:
            return tensor[self.mask]
        if tensor.dim() == 2 and tensor.shape[0] == int(self.mask.sum()):
            return tensor
        return None

    def add_channels(self, key: str, tensor: torch.Tensor) -> None:
        rows = self.rows(tensor)
        if rows is None:
            return
        total = rows.detach().double().abs().sum(0)
        self.sums[key] = total if key not in self.sums else self.sums[key] + total
        self.counts[key] = self.counts.get(key, 0) + rows.shape[0]

    def add_change(self, layer: int, output: torch.Tensor) -> None:
        import torch

        before = self.layer_inputs.pop(layer, None)
        after = self.rows(output)
        if before is None or after is None or before.shape != after.shape:
            return
        cosine = torch.nn.functional.cosine_similarity(before.double(), after.double(), dim=-1)
        self.change[layer] = self.change.get(layer, 0.0) + float((1 - cosine).sum())
        self.change_counts[layer] = self.change_counts.get(layer, 0) + after.shape[0]


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, (tuple, list)) else value


def _register(
    modules: dict[str, Any],
    points: HookPoints,
    stats: _Stats,
    want_width: bool,
    want_layers: bool,
) -> list[Any]:
    handles = []
    if want_width:
        for prefix, table in (("attn", points.attn), ("inter", points.inter)):
            for layer, name in table.items():

                def read_input(module: Any, args: Any, key: str = f"{prefix}:{layer}") -> None:
                    stats.add_channels(key, args[0])

                handles.append(modules[name].register_forward_pre_hook(read_input))
        for name in points.norms:

            def read_output(module: Any, args: Any, output: Any, key: str = f"norm:{name}") -> None:
                stats.add_channels(key, _first(output))

            handles.append(modules[name].register_forward_hook(read_output))
    if want_layers:
        for layer, name in points.layers.items():

            def keep_input(module: Any, args: Any, kwargs: Any, layer: int = layer) -> None:
                hidden = args[0] if args else kwargs.get("hidden_states")
                rows = stats.rows(hidden) if hidden is not None else None
                if rows is not None:
                    stats.layer_inputs[layer] = rows.detach()

            def compare(module: Any, args: Any, output: Any, layer: int = layer) -> None:
                stats.add_change(layer, _first(output))

            handles.append(modules[name].register_forward_pre_hook(keep_input, with_kwargs=True))
            handles.append(modules[name].register_forward_hook(compare))
    return handles


def _result(
    stats: _Stats, points: HookPoints, samples: int, want_width: bool, want_layers: bool
) -> Calibration:
    width = WidthScores()
    if want_width:
        width = _width_scores(stats, points)
    importance: list[float] = []
    if want_layers:
        layers = sorted(points.layers)
        unseen = [layer for layer in layers if not stats.change_counts.get(layer)]
        if unseen:
            raise KdcliError(
                f"calibration saw no output of teacher layer {unseen[0]}: this model cannot be "
                f"ranked by {option_ref('layer_strategy')} importance; choose uniform, first, "
                "last or every-other"
            )
        importance = [stats.change[layer] / stats.change_counts[layer] for layer in layers]
    return Calibration(width, importance, samples, stats.tokens)


def _width_scores(stats: _Stats, points: HookPoints) -> WidthScores:
    """Mean |activation| per channel; hidden channels summed over norms, each normalised.

    Each norm's means are divided by their own average first, so that no single norm with a
    large gain decides alone which hidden channels survive (as in the magnitude scores).
    """
    width = WidthScores()

    def mean(key: str) -> torch.Tensor | None:
        if key not in stats.sums or not stats.counts.get(key):
            return None
        return (stats.sums[key] / stats.counts[key]).float()

    for layer in points.attn:
        if (value := mean(f"attn:{layer}")) is not None:
            width.attn[layer] = value
    for layer in points.inter:
        if (value := mean(f"inter:{layer}")) is not None:
            width.inter[layer] = value
    for name in points.norms:
        value = mean(f"norm:{name}")
        if value is None:
            continue
        value = value / value.mean().clamp_min(1e-12)
        width.hidden = value if width.hidden is None else width.hidden + value
    return width
