"""ONNX graph work for `kdcli export`: trace, fuse, find the sensitive nodes, quantize.

The graph comes from `torch.onnx.export(dynamo=True)` with dynamic batch and sequence axes. Fusions
come from onnxscript's ONNX Runtime rewriter (`optimize_for_ort`), which was written for the graphs
the dynamo exporter makes; onnxruntime.transformers.optimizer's matchers expect TorchScript-era
graphs and fuse no attention in them. int8 is `onnxruntime.quantization.quantize_dynamic`.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import platform
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdcli.core.errors import KdcliError, one_line
from kdcli.core.machine import cpu_flags

EXPORT_EXTRA = "pip install 'kdcli[export]'"
DYNAMIC_AXES = ("batch_size", "sequence_length")  # the names optimum's ORTModel also uses
QUANTIZED_OPS = ["MatMul", "Gather", "Attention", "EmbedLayerNormalization"]
# Roles always kept in float: the classifier head (and pooler), a few thousand weights that decide
# the label directly, and the small position/token-type tables. Which other nodes stay float is
# searched per model (`kdcli.steps.export`, ranked by `int8_sensitivity`).
ALWAYS_FLOAT = ("head", "small-table")
_SCOPES = "pkg.torch.onnx.name_scopes"
# Names `quantize_rows` gives a table's int8 rows and their scales (the scales are not weights).
INT8_ROWS, ROW_SCALES = ".int8_rows", ".row_scales"
_NOISY_LOGGERS = ("torch.onnx", "onnxscript", "onnx_ir", "torch.export", "torch._dynamo")


def require_export_stack() -> None:
    """onnx, onnxscript and onnxruntime, or one line saying which extra installs them."""
    missing = []
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise KdcliError(
            f"kdcli export needs {', '.join(missing)}, which is not installed: {EXPORT_EXTRA}"
        )


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporters' warnings and log lines: the library never prints."""
    root = logging.getLogger()
    loggers = [root, *(logging.getLogger(name) for name in _NOISY_LOGGERS)]
    levels = [logger.level for logger in loggers]
    # onnxruntime.quantization logs through logging.warning(), which installs a stderr handler
    # on the root logger when it has none: a handler of our own keeps that from happening.
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeHandler(guard)
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def export_graph(
    model: Any,
    sample: dict[str, Any],
    path: Path,
    opset: int | None,
    model_type: str,
) -> None:
    """Trace `model` with the dynamo exporter; batch and sequence axes stay dynamic."""
    import torch

    names = list(sample)
    batch = torch.export.Dim(DYNAMIC_AXES[0])
    sequence = torch.export.Dim(DYNAMIC_AXES[1])
    dynamic = {name: {0: batch, 1: sequence} for name in names}
    try:
        with quiet():
            program = torch.onnx.export(
                model,
                (),
                kwargs=sample,
                input_names=names,
                output_names=["logits"],
                dynamic_shapes=dynamic,
                opset_version=opset,
                dynamo=True,
                verbose=False,
            )
            assert program is not None  # dynamo=True always returns the program
    except Exception as err:  # the exporter raises many types; all mean "cannot trace this"
        raise KdcliError(
            f"torch.onnx (dynamo) cannot export model type {model_type!r} with torch "
            f"{torch.__version__}: {one_line(err)}"
        ) from err
    with quiet():  # outside the try: a failed write (a full disk) is not the model's fault
        program.save(str(path))


def fuse(source: Path, target: Path) -> dict[str, int]:
    """ONNX Runtime's transformer fusions (attention, skip-LayerNorm, GELU): the fused graph,
    and how many of each ONNX Runtime op it now holds."""
    import onnx_ir as ir
    from onnxscript.rewriter.ort_fusions import optimize_for_ort

    with quiet():
        model, _ = optimize_for_ort(ir.load(str(source)))
        ir.save(model, str(target))
    counts: dict[str, int] = {}
    for node in model.graph:
        if node.domain == "com.microsoft":
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class WeightNode:
    """A node that multiplies by (or looks up in) a weight, and where it sits in the model."""

    name: str
    op_type: str
    role: str  # "head", "ffn-out", "word-embeddings", "small-table", "weight"
    layer: int | None
    module: str | None = None  # the PyTorch module it was traced from

    @property
    def quantizable(self) -> bool:
        """Whether dynamic int8 can quantize it (ONNX Runtime has no integer Gemm)."""
        return self.op_type in ("MatMul", "Gather") and self.role not in ALWAYS_FLOAT


def weight_nodes(path: Path, base_prefix: str, intermediate: int, vocab: int) -> list[WeightNode]:
    """Classify every weight-consuming node from the module scopes the exporter records."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Gather", "Attention"):
            continue
        weights = [shapes[name] for name in node.input if name in shapes]
        if not weights or (node.op_type == "Gather" and node.input[0] not in shapes):
            continue
        scopes = _scopes(node)
        nodes.append(
            WeightNode(
                node.name,
                node.op_type,
                _role(node.op_type, weights[0], scopes, base_prefix, intermediate, vocab),
                _layer(scopes),
                # The exporter records module scopes outermost first, then the op's own name.
                scopes[-2] if len(scopes) >= 2 else None,
            )
        )
    return nodes


def _scopes(node: Any) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == _SCOPES:
            with contextlib.suppress(ValueError, SyntaxError):
                return [str(s) for s in ast.literal_eval(prop.value)]
    return []


def _role(
    op_type: str,
    shape: list[int],
    scopes: list[str],
    base_prefix: str,
    intermediate: int,
    vocab: int,
) -> str:
    modules = [s for s in scopes if s]
    top = modules[0].split(".")[0] if modules else ""
    if modules and (top != base_prefix or any(s.endswith("pooler") for s in modules)):
        return "head"
    if op_type == "Gather":
        return "word-embeddings" if shape and shape[0] == vocab else "small-table"
    if op_type == "MatMul" and len(shape) == 2 and shape[0] == intermediate:
        return "ffn-out"
    return "weight"


def _layer(scopes: list[str]) -> int | None:
    for scope in reversed(scopes):
        match = re.search(r"\.(\d+)(?:\.|$)", scope)
        if match:
            return int(match.group(1))
    return None


def always_float(nodes: Sequence[WeightNode]) -> list[str]:
    """The node names every int8 file keeps in float (`ALWAYS_FLOAT`)."""
    return sorted(n.name for n in nodes if n.role in ALWAYS_FLOAT)


def quantize(
    source: Path,
    target: Path,
    keep_float: Sequence[str],
    per_channel: bool,
    reduce_range: bool,
    row_tables: Sequence[str] = (),
    unsigned_weights: bool = False,
) -> None:
    """Dynamic int8: signed weights (per output channel), uint8 activations scaled per batch;
    the lookup tables named in `row_tables` become int8 with one scale per row instead.

    `unsigned_weights` stores uint8 weights with a zero point, which ONNX Runtime multiplies
    with its u8*u8 kernels: no 16-bit saturation on x86 without VNNI, at full 8 bits. Only
    `bench_int8_modes` uses it: on a real AVX2 student it agreed no better than 7-bit signed
    weights (docs/export.md), because activation rounding, not weight rounding, flips texts."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with quiet():
        quantize_dynamic(
            source,
            target,
            op_types_to_quantize=QUANTIZED_OPS,
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QUInt8 if unsigned_weights else QuantType.QInt8,
            nodes_to_exclude=_with_gemm_names([*keep_float, *row_tables]),
            # Fused graphs hold com.microsoft ops whose output types the quantizer cannot infer.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    if row_tables:
        model = onnx.load(str(target))
        quantize_rows(model.graph, row_tables)
        onnx.save(model, str(target))


def int8_rows(table: Any) -> tuple[Any, Any]:
    """A (rows, dim) table as symmetric int8 with one float scale per row: (rows, scales), with
    table ~= rows * scales. The int8 file stores this, and `int8_sensitivity` simulates it."""
    import numpy as np

    table = np.asarray(table, dtype=np.float32)
    absmax = np.abs(table).max(axis=1, keepdims=True)
    scales = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
    return np.clip(np.round(table / scales), -127, 127).astype(np.int8), scales


def quantize_rows(graph: Any, gathers: Sequence[str]) -> None:
    """Each named Gather looks up an int8 table with one float scale per row, dequantized after
    the lookup (Gather, Cast, Mul): only the rows a text uses are ever multiplied out.

    Why not ONNX Runtime's own Gather quantization: it stores the table as uint8 with one scale
    for the whole table, so a row of small values (most rows of a multilingual vocabulary, next
    to a few large ones) keeps a handful of levels, and a real e5-small student flipped texts from
    the table alone. A row's own scale keeps every row at 8 bits; no int8 product is involved,
    so the 7-bit reduce_range does not apply."""
    from onnx import TensorProto, helper, numpy_helper

    initializers = {init.name: init for init in graph.initializer}
    stems = set()
    for name in gathers:
        position, node = next((i, n) for i, n in enumerate(graph.node) if n.name == name)
        stem, ids, output = node.input[0], node.input[1], node.output[0]
        stems.add(stem)
        if f"{stem}{INT8_ROWS}" not in initializers:  # a table two lookups share is stored once
            rows, scales = int8_rows(numpy_helper.to_array(initializers[stem]))
            for stored in (
                numpy_helper.from_array(rows, f"{stem}{INT8_ROWS}"),
                numpy_helper.from_array(scales, f"{stem}{ROW_SCALES}"),
            ):
                graph.initializer.append(stored)
                initializers[stored.name] = stored
        lookup = [
            helper.make_node("Gather", [f"{stem}{INT8_ROWS}", ids], [f"{name}.q"], name, axis=0),
            helper.make_node("Gather", [f"{stem}{ROW_SCALES}", ids], [f"{name}.s"], f"{name}.s"),
            helper.make_node(
                "Cast", [f"{name}.q"], [f"{name}.f"], f"{name}.f", to=TensorProto.FLOAT
            ),
            helper.make_node("Mul", [f"{name}.f", f"{name}.s"], [output], f"{name}.dequantize"),
        ]
        del graph.node[position]
        for offset, new in enumerate(lookup):
            graph.node.insert(position + offset, new)
    for stem in stems:  # the float table, unless something other than the lookups reads it
        if not any(stem in n.input for n in graph.node):
            graph.initializer.remove(initializers[stem])


def _with_gemm_names(names: Sequence[str]) -> list[str]:
    """Node names to exclude, as the quantizer will know them: dynamic quantization first
    rewrites every Gemm `X` as a MatMul `X_MatMul` (+ Add) and only then checks the exclusions,
    so a Gemm excluded by its own name (a BERT pooler or classifier) was quantized all the same."""
    return [*names, *(f"{name}_MatMul" for name in names)]


@dataclass(frozen=True)
class CpuInt8:
    """What the CPU offers for int8 matrix products, and the reduce_range that suits it."""

    machine: str
    vnni: bool
    reduce_range: bool
    reason: str


def cpu_int8() -> CpuInt8:
    """reduce_range (7-bit weights) only where int8 products can saturate: x86 without VNNI."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64", "i686", "x86"):
        return CpuInt8(machine, False, False, f"{machine}: int8 dot products do not saturate")
    flags = cpu_flags()
    vnni = bool(flags & {"avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8"})
    if vnni:
        return CpuInt8(machine, True, False, "x86 with VNNI: full 8-bit weights are exact")
    if not flags:
        return CpuInt8(machine, False, True, "x86, instruction set unknown: 7-bit weights (safe)")
    return CpuInt8(machine, False, True, "x86 without VNNI: 7-bit weights avoid u8*s8 saturation")
