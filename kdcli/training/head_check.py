"""Starting heads that cannot learn: a pooler or head layer stored as zeros, or not stored at all.

`BertForSequenceClassification` classifies `tanh(W h_CLS + b)`, the output of the encoder's
pooler. Sentence-embedding checkpoints (multilingual-e5, many sentence-transformers models) were
trained with mean pooling and store that pooler as all zeros. The classifier then sees the same
constant feature for every input: its gradient is zero and the pooler's gradient is scaled by
the classifier's tiny initial weights, so training crawls from a saddle point (issue 9: e5-small
fine-tuned for 3 epochs reached 0.27 test accuracy; with the pooler re-initialised, see
docs/training.md). kdcli re-initialises such a layer the way transformers initialises a new one
and says so. A layer the checkpoint does not hold at all was already initialised at random by
transformers: that trains normally, and kdcli says that too, since the user may not expect it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class HeadFix:
    """One head layer whose starting weights kdcli found unusable or absent, and what it did."""

    layer: str  # the module's name in the model, e.g. "bert.pooler.dense"
    problem: str  # "all zeros", "constant" or "missing"
    action: str  # "re-initialised" or "initialised at random by transformers"

    def note(self, model: str) -> str:
        if self.problem == "missing":
            return (
                f"{model} has no weights for {self.layer}: transformers initialised it at random "
                "and it is trained from there"
            )
        return (
            f"{model}'s {self.layer} weights are {self.problem}, so every input would reach the "
            "classifier as the same feature (a sentence-embedding checkpoint without a trained "
            "pooler): kdcli re-initialised the layer as a new one, so the head can learn"
        )

    def record(self) -> dict[str, str]:
        return {"layer": self.layer, "problem": self.problem, "action": self.action}


def fix_degenerate_head(
    model: Any, missing_keys: Collection[str], new_head: bool, seed: int
) -> list[HeadFix]:
    """Re-initialise the head layers (pooler, and the task head when it was loaded rather than
    made new) that hold a constant weight; report pooler layers the checkpoint lacked."""
    import torch

    fixes = []
    generator = torch.Generator().manual_seed(seed)
    std = float(getattr(model.config, "initializer_range", 0.02))
    for name, layer, loaded in _head_layers(model, new_head):
        if f"{name}.weight" in missing_keys:
            if loaded:  # a new task head is expected to be random: no news
                fixes.append(HeadFix(name, "missing", "initialised at random by transformers"))
            continue
        problem = _degenerate(layer.weight)
        if loaded and problem:
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
                if layer.bias is not None:
                    layer.bias.zero_()
            fixes.append(HeadFix(name, problem, "re-initialised"))
    return fixes


def _head_layers(model: Any, new_head: bool) -> Iterator[tuple[str, torch.nn.Linear, bool]]:
    """(name, layer, came from the checkpoint) for the pooler inside the encoder and every
    linear layer of the task head outside it."""
    import torch

    prefix = model.base_model_prefix
    pooler = getattr(model.base_model, "pooler", None)
    if pooler is not None:
        for name, module in pooler.named_modules():
            if isinstance(module, torch.nn.Linear):
                yield ".".join(p for p in (prefix, "pooler", name) if p), module, True
    for child_name, child in model.named_children():
        if child_name == prefix:
            continue
        for name, module in child.named_modules():
            if isinstance(module, torch.nn.Linear):
                yield ".".join(p for p in (child_name, name) if p), module, not new_head


def _degenerate(weight: torch.Tensor) -> str | None:
    """'all zeros' or 'constant' when every input would map to the same output direction."""
    if not bool(weight.any()):
        return "all zeros"
    flat = weight.detach().flatten()
    return "constant" if bool((flat == flat[0]).all()) else None
