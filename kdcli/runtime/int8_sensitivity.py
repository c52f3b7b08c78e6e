"""Which weight nodes int8 hurts most: each one quantized alone, simulated in PyTorch.

ONNX Runtime's dynamic int8 (`onnx_graph.quantize`) rounds, for each MatMul, the weights to int8
(symmetric, one scale per output channel, 7 bits with reduce_range) and the input activations to
uint8 (asymmetric, one scale for the whole batch tensor, found at run time); kdcli stores the
word-embedding table as int8 with one scale per row. This module applies exactly that rounding
to one PyTorch module at a time (a forward hook on its input, a rounded copy of its weight) and
measures, on the verification batches, how many top-1 predictions it flips and how far it moves
the output distribution (KL divergence from PyTorch's).

Why simulate rather than quantize with ONNX Runtime once per node: a model has dozens of weight
nodes, and each ONNX Runtime trial re-reads, re-quantizes and re-writes the whole graph (the
embedding table is most of it), where a PyTorch forward pass with one rounded module costs the
same as verification itself. The simulation only *ranks* the nodes; which mix passes is decided by
ONNX Runtime on this CPU (`kdcli.steps.export`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from kdcli.runtime.onnx_graph import WeightNode
    from kdcli.runtime.predictor import TorchPredictor


@dataclass(frozen=True)
class Sensitivity:
    """What quantizing one node alone does to the model's outputs."""

    name: str  # the ONNX node
    module: str  # the PyTorch module it came from
    role: str
    layer: int | None
    flips: int  # texts whose top-1 label changes
    kl: float  # mean KL(PyTorch || quantized) over texts


def rank_nodes(
    predictor: TorchPredictor,
    nodes: Sequence[WeightNode],
    texts: Sequence[str],
    batch_size: int,
    max_length: int,
    reduce_range: bool,
    per_channel: bool,
) -> list[Sensitivity]:
    """Every node of `nodes` that maps to a module, most damaging first (flips, then KL)."""
    import torch

    modules = dict(predictor.model.named_modules())
    batches = predictor.encode(texts, batch_size, max_length)
    reference = _logits(predictor, batches)
    found = []
    for node in nodes:
        module = modules.get(node.module or "")
        if not isinstance(module, torch.nn.Linear | torch.nn.Embedding):
            continue
        with _quantized(module, reduce_range, per_channel):
            logits = _logits(predictor, batches)
        flips, kl = _damage(reference, logits)
        found.append(Sensitivity(node.name, node.module or "", node.role, node.layer, flips, kl))
    return sorted(found, key=lambda s: (-s.flips, -s.kl, s.name))


def _logits(predictor: TorchPredictor, batches: Sequence[Any]) -> np.ndarray:
    """Logits of every text (every real token, for token classification) in batch order, the
    same order each call."""
    import numpy as np

    rows = []
    for batch in batches:
        logits = predictor.forward(batch.inputs)
        if logits.ndim == 3:
            logits = logits[batch.inputs["attention_mask"].astype(bool)]
        rows.append(logits)
    return np.concatenate(rows)


def _damage(reference: np.ndarray, logits: np.ndarray) -> tuple[int, float]:
    import numpy as np

    def log_softmax(x: np.ndarray) -> np.ndarray:
        shifted = x - x.max(-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))

    ref, out = log_softmax(reference), log_softmax(logits)
    kl = float((np.exp(ref) * (ref - out)).sum(-1).mean()) if len(ref) else 0.0
    flips = int((ref.argmax(-1) != out.argmax(-1)).sum())
    return flips, kl


@contextlib.contextmanager
def _quantized(module: Any, reduce_range: bool, per_channel: bool) -> Iterator[None]:
    """`module` computes as ONNX Runtime's dynamic int8 would, until the block ends."""
    import torch

    from kdcli.runtime.onnx_graph import int8_rows

    original = module.weight.data
    hook = None
    if isinstance(module, torch.nn.Embedding):  # the int8 file's own rounding, row by row
        rows, scales = int8_rows(original.detach().float().cpu().numpy())
        module.weight.data = torch.from_numpy(rows * scales).to(original)
    else:
        module.weight.data = fake_int8_weight(original, reduce_range, per_channel)
        hook = module.register_forward_pre_hook(lambda _, args: (fake_uint8(args[0]), *args[1:]))
    try:
        yield
    finally:
        module.weight.data = original
        if hook is not None:
            hook.remove()


def fake_uint8(x: Any) -> Any:
    """x through uint8 with one asymmetric scale for the whole tensor (0 exactly representable),
    as ONNX Runtime's DynamicQuantizeLinear does with activations."""
    import torch

    low = torch.clamp(x.min(), max=0.0)
    high = torch.clamp(x.max(), min=0.0)
    scale = (high - low) / 255.0
    if float(scale) == 0.0:
        return x
    zero = torch.clamp(torch.round(-low / scale), 0, 255)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


def fake_int8_weight(weight: Any, reduce_range: bool, per_channel: bool) -> Any:
    """A Linear weight (out, in) through symmetric int8: one scale per output channel (a column
    of the ONNX MatMul's weight) or per matrix; 7-bit range with reduce_range."""
    import torch

    limit = 64.0 if reduce_range else 127.0
    absmax = weight.abs().amax(dim=1, keepdim=True) if per_channel else weight.abs().max()
    scale = torch.where(absmax > 0, absmax / limit, torch.ones_like(absmax))
    return torch.clamp(torch.round(weight / scale), -limit, limit) * scale
