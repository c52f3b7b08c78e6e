"""`kdcli shrink`: a smaller student whose weights are copied from the teacher.

The student keeps a subset of the teacher's layers and, optionally, of its hidden channels, heads
and feed-forward neurons. Every kept tensor is the teacher's tensor (or its slice), streamed from
the teacher's checkpoint without building the teacher as a model. `random_init` makes the same
shape with fresh weights: the "from scratch" baseline of the study behind kdcli.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kdcli.architectures import Architecture, TensorMatcher, TensorPlan, architecture_for, head_kind
from kdcli.errors import KdcliError
from kdcli.importance import magnitude_scores
from kdcli.modelcard import write_model_card
from kdcli.models import (
    LoadOptions,
    ModelRef,
    content_hash,
    copy_tokenizer_files,
    open_checkpoint,
    read_config_dict,
    resolve_model,
    weight_files,
)
from kdcli.outputs import atomic_output_dir, check_output_dir
from kdcli.progress import ProgressCallback, report
from kdcli.provenance import make_record, read_provenance, with_history, write_provenance
from kdcli.selection import (
    LAYER_STRATEGIES,
    HeadShape,
    choose_layers,
    parse_layers,
    student_heads,
    to_ranges,
)
from kdcli.slicing import SlicePlan, copy_tensors, plan_tensors, width_plan
from kdcli.tensor_io import SafetensorsWriter, TensorInfo, write_safetensors

DTYPES = ("float32", "float16", "bfloat16")
WIDTH_STRATEGIES = ("first", "magnitude")
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class ShrinkConfig:
    """Everything `kdcli shrink` can be told. Width options left as None keep the teacher's."""

    source: str
    out: Path
    layers: str | Sequence[int] | None = None
    num_layers: int | None = None
    layer_strategy: str | None = None
    hidden_size: int | None = None
    intermediate_size: int | None = None
    num_heads: int | None = None
    width_strategy: str = "first"
    random_init: bool = False
    dtype: str | None = None
    seed: int = 0
    overwrite: bool = False
    revision: str | None = None
    allow_pickle: bool = False

    def settings(self) -> dict[str, Any]:
        """The settings as provenance stores them: what shaped the student, not where it went."""
        data = asdict(self)
        del data["out"], data["overwrite"]
        if self.layers is not None and not isinstance(self.layers, str):
            data["layers"] = list(self.layers)
        return data


@dataclass(frozen=True)
class Shape:
    """The sizes that define an encoder: what the teacher had and what the student has."""

    layers: int
    hidden: int
    intermediate: int
    heads: int


@dataclass(frozen=True)
class ShrinkResult:
    out: Path
    source: str
    architecture: str
    head: str
    init: str
    kept_layers: list[int]
    teacher: Shape
    student: Shape
    teacher_params: int
    student_params: int
    teacher_bytes: int
    student_bytes: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


def shrink(config: ShrinkConfig, progress: ProgressCallback | None = None) -> ShrinkResult:
    """Build the student described by `config` and write it to `config.out`."""
    started = time.perf_counter()
    _check_options(config)
    check_output_dir(Path(config.out), config.overwrite)
    ref = resolve_model(config.source, LoadOptions(config.revision, config.allow_pickle))
    teacher_config = read_config_dict(ref)
    arch = architecture_for(teacher_config, ref.name)
    kind = head_kind(teacher_config, ref.name)
    dims = arch.teacher_dims(teacher_config)
    layers = _select_layers(config, dims["layers"])
    heads = _select_heads(config, dims)
    hidden = config.hidden_size or dims["hidden"]
    intermediate = config.intermediate_size or dims["intermediate"]
    _check_width(config, teacher_config, dims, arch)
    files = weight_files(ref, config.allow_pickle)

    with open_checkpoint(ref, config.allow_pickle) as checkpoint:
        infos = checkpoint.infos()
        matcher = TensorMatcher(arch, list(infos))
        plans, dropped = plan_tensors(matcher, sorted(infos), layers)
        emb_is_hidden = arch.embedding_tied_to_hidden(teacher_config)
        width_changes = (hidden, intermediate, heads.width) != (
            dims["hidden"],
            dims["intermediate"],
            dims["hidden"],
        )
        scores = None
        if config.width_strategy == "magnitude" and width_changes and not config.random_init:
            report(progress, "score channels", 0, None)
            scores = magnitude_scores(checkpoint, plans, emb_is_hidden)
        slices = width_plan(layers, dims, hidden, heads, intermediate, scores, emb_is_hidden)
        student_config = _student_config(teacher_config, arch, kind, slices, heads, intermediate)
        dtypes = _output_dtypes(plans, infos, config.dtype)
        student_infos = [
            slices.student_info(p, infos[p.teacher_name], dtypes[p.student_name]) for p in plans
        ]
        student_config["dtype"] = config.dtype or _main_dtype(student_infos)
        student_config.pop("torch_dtype", None)

        with atomic_output_dir(Path(config.out), config.overwrite) as tmp:
            (tmp / "config.json").write_text(
                json.dumps(student_config, indent=2, sort_keys=True) + "\n"
            )
            if config.random_init:
                _write_random(tmp, kind, config.seed, student_config["dtype"])
            else:
                writer = SafetensorsWriter(tmp / WEIGHTS_FILE, student_infos)
                copy_tensors(checkpoint, plans, slices, writer, dtypes, progress)
                writer.close()
            copy_tokenizer_files(ref, tmp)
            result = _result(config, ref, arch, kind, slices, dims, heads, infos, tmp, started)
            record = _record(config, ref, files, result, slices, dropped, dims, heads)
            write_provenance(tmp, with_history(record, read_provenance(ref.path)))
            _model_card(tmp, result)
    return _with_out(result, Path(config.out), time.perf_counter() - started)


def _check_options(config: ShrinkConfig) -> None:
    if config.layers is not None and config.num_layers is not None:
        raise KdcliError("--layers and --num-layers were both given: use one of them")
    if config.layers is not None and config.layer_strategy is not None:
        raise KdcliError("--layers and --layer-strategy were both given: use one of them")
    if config.layer_strategy is not None and config.layer_strategy not in LAYER_STRATEGIES:
        raise KdcliError(
            f"--layer-strategy {config.layer_strategy!r} is unknown: choose one of "
            f"{', '.join(s for s in LAYER_STRATEGIES if s != 'importance')}"
        )
    if config.layer_strategy == "importance":
        raise KdcliError("--layer-strategy importance needs --calib-data DATA")
    if config.width_strategy not in WIDTH_STRATEGIES:
        raise KdcliError(
            f"--width-strategy {config.width_strategy!r} is unknown: choose one of "
            f"{', '.join(WIDTH_STRATEGIES)}"
        )
    if config.dtype is not None and config.dtype not in DTYPES:
        raise KdcliError(f"--dtype {config.dtype!r} is unknown: choose one of {', '.join(DTYPES)}")
    for option, value in (
        ("--hidden-size", config.hidden_size),
        ("--intermediate-size", config.intermediate_size),
        ("--num-heads", config.num_heads),
    ):
        if value is not None and value < 1:
            raise KdcliError(f"{option} {value} must be a positive integer")


def _select_layers(config: ShrinkConfig, teacher_layers: int) -> list[int]:
    if config.layers is not None:
        spec = (
            config.layers if isinstance(config.layers, str) else ",".join(map(str, config.layers))
        )
        return parse_layers(spec, teacher_layers)
    if config.num_layers is None and config.layer_strategy is None:
        return list(range(teacher_layers))
    return choose_layers(config.layer_strategy or "uniform", config.num_layers, teacher_layers)


def _select_heads(config: ShrinkConfig, dims: dict[str, int]) -> HeadShape:
    hidden = config.hidden_size or dims["hidden"]
    if hidden > dims["hidden"]:
        raise KdcliError(
            f"--hidden-size {hidden} is larger than the teacher's {dims['hidden']}: "
            f"choose at most {dims['hidden']}"
        )
    return student_heads(dims["hidden"], dims["heads"], hidden, config.num_heads)


def _check_width(
    config: ShrinkConfig, teacher_config: dict[str, Any], dims: dict[str, int], arch: Architecture
) -> None:
    if config.intermediate_size is not None and config.intermediate_size > dims["intermediate"]:
        raise KdcliError(
            f"--intermediate-size {config.intermediate_size} is larger than the teacher's "
            f"{dims['intermediate']}: choose at most {dims['intermediate']}"
        )
    hidden = config.hidden_size or dims["hidden"]
    hidden_changes = hidden != dims["hidden"]
    emb_key = arch.embedding_size_key
    projected = emb_key is not None and not arch.embedding_tied_to_hidden(teacher_config)
    if hidden_changes and projected and hidden == int(teacher_config[emb_key]):
        raise KdcliError(
            f"--hidden-size {hidden} equals the teacher's {emb_key} ({hidden}): "
            f"{arch.family} then has no embedding projection to copy; choose another size"
        )
    if hidden_changes and teacher_config.get("sinusoidal_pos_embds"):
        raise KdcliError(
            f"{config.source}: {arch.family} with sinusoidal position embeddings cannot change "
            "--hidden-size; keep the teacher's width"
        )


def _student_config(
    teacher: dict[str, Any],
    arch: Architecture,
    kind: str,
    slices: SlicePlan,
    heads: HeadShape,
    intermediate: int,
) -> dict[str, Any]:
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    keys = arch.keys
    config = dict(teacher)
    hidden = heads.width
    emb_key = arch.embedding_size_key
    if emb_key and emb_key in config and arch.embedding_tied_to_hidden(teacher):
        config[emb_key] = hidden
    if "pooler_hidden_size" in config and config["pooler_hidden_size"] == teacher[keys.hidden]:
        config["pooler_hidden_size"] = hidden
    config[keys.layers] = len(slices.layers)
    config[keys.hidden] = hidden
    config[keys.intermediate] = intermediate
    config[keys.heads] = heads.num_heads
    if isinstance(teacher.get("layer_types"), list):
        config["layer_types"] = [teacher["layer_types"][i] for i in slices.layers]
    if slices.vocab is not None:
        config["vocab_size"] = len(slices.vocab)
    if kind == "encoder":
        config["architectures"] = [MODEL_MAPPING_NAMES[teacher["model_type"]]]
    return config


def _output_dtypes(
    plans: Sequence[TensorPlan], infos: dict[str, TensorInfo], dtype: str | None
) -> dict[str, str]:
    floating = {"float32", "float16", "bfloat16", "float64"}
    return {
        p.student_name: (
            dtype
            if dtype and infos[p.teacher_name].dtype in floating
            else infos[p.teacher_name].dtype
        )
        for p in plans
    }


def _main_dtype(infos: Sequence[TensorInfo]) -> str:
    sizes: dict[str, int] = {}
    for info in infos:
        sizes[info.dtype] = sizes.get(info.dtype, 0) + info.numel
    return max(sizes, key=lambda d: sizes[d]) if sizes else "float32"


def _write_random(out_dir: Path, kind: str, seed: int, dtype: str) -> None:
    """Fresh weights of the student's shape, from transformers' own initialisation."""
    import torch
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    factory = {
        "sequence-classification": AutoModelForSequenceClassification,
        "token-classification": AutoModelForTokenClassification,
        "encoder": AutoModel,
    }[kind]
    model_config = AutoConfig.from_pretrained(out_dir)
    torch.manual_seed(seed)
    model = factory.from_config(model_config)
    target = getattr(torch, dtype)
    tensors = {name: t.detach().to(target) for name, t in model.state_dict().items()}
    write_safetensors(out_dir / WEIGHTS_FILE, tensors)


def _result(
    config: ShrinkConfig,
    ref: ModelRef,
    arch: Architecture,
    kind: str,
    slices: SlicePlan,
    dims: dict[str, int],
    heads: HeadShape,
    infos: dict[str, TensorInfo],
    out_dir: Path,
    started: float,
) -> ShrinkResult:
    from kdcli.tensor_io import SafetensorsFile

    student_file = SafetensorsFile(out_dir / WEIGHTS_FILE)
    student_params = sum(info.numel for info in student_file.infos().values())
    return ShrinkResult(
        out=out_dir,
        source=ref.name,
        architecture=arch.family,
        head=kind,
        init="random" if config.random_init else "copy",
        kept_layers=list(slices.layers),
        teacher=Shape(dims["layers"], dims["hidden"], dims["intermediate"], dims["heads"]),
        student=Shape(
            len(slices.layers),
            heads.width,
            config.intermediate_size or dims["intermediate"],
            heads.num_heads,
        ),
        teacher_params=sum(info.numel for info in infos.values()),
        student_params=student_params,
        teacher_bytes=sum(f.stat().st_size for f in weight_files(ref, config.allow_pickle)),
        student_bytes=(out_dir / WEIGHTS_FILE).stat().st_size,
        seconds=time.perf_counter() - started,
        notes=_notes(config, arch, slices, dims),
    )


def _notes(
    config: ShrinkConfig, arch: Architecture, slices: SlicePlan, dims: dict[str, int]
) -> list[str]:
    notes = []
    if slices.hidden is not None and not config.random_init:
        notes.append(
            "hidden channels were removed: LayerNorm statistics change, so distil the student "
            "(kdcli distill) before judging its accuracy"
        )
    if arch.absent and slices.layers and slices.layers[0] != 0:
        notes.append(
            f"the student's first layer is teacher layer {slices.layers[0]}, whose attention "
            f"norm {arch.family} does not have in a first layer: that norm was dropped"
        )
    if (
        len(slices.layers) == dims["layers"]
        and slices.hidden is None
        and not slices.attn
        and not slices.inter
    ):
        notes.append("all layers and the full width were kept: the student equals the teacher")
    return notes


def _record(
    config: ShrinkConfig,
    ref: ModelRef,
    files: list[Path],
    result: ShrinkResult,
    slices: SlicePlan,
    dropped: list[str],
    dims: dict[str, int],
    heads: HeadShape,
) -> dict[str, Any]:
    source = {**ref.describe(), "sha256": content_hash(files)}
    width = {
        "hidden": {
            "teacher": dims["hidden"],
            "student": heads.width,
            "kept": to_ranges(slices.hidden) if slices.hidden is not None else None,
        },
        "heads": {
            "teacher": dims["heads"],
            "student": heads.num_heads,
            "head_size": heads.head_size,
            "kept": {str(layer): kept for layer, kept in slices.heads.items()} or None,
            "kept_channels": {str(layer): to_ranges(kept) for layer, kept in slices.attn.items()}
            or None,
        },
        "intermediate": {
            "teacher": dims["intermediate"],
            "student": result.student.intermediate,
            "kept": {str(layer): to_ranges(kept) for layer, kept in slices.inter.items()} or None,
        },
    }
    return make_record(
        "shrink",
        config.settings(),
        source=source,
        architecture=result.architecture,
        head=result.head,
        init=result.init,
        layers={"teacher": dims["layers"], "kept": list(slices.layers)},
        width=width,
        vocab=None,
        params={"teacher": result.teacher_params, "student": result.student_params},
        dropped_tensors=dropped,
        notes=result.notes,
    )


def _model_card(out_dir: Path, result: ShrinkResult) -> None:
    summary = (
        f"A {result.student.layers}-layer student of `{result.source}`, made by `kdcli shrink` "
        + (
            "with weights copied from the teacher (layers and channels listed in kdcli.json)."
            if result.init == "copy"
            else "with fresh random weights of the same shape (the from-scratch baseline)."
        )
    )
    facts = [
        ("teacher", f"`{result.source}`"),
        ("kept teacher layers", ", ".join(map(str, result.kept_layers))),
        (
            "hidden / intermediate / heads",
            f"{result.student.hidden} / {result.student.intermediate} / {result.student.heads}",
        ),
        ("parameters", f"{result.student_params:,} (teacher {result.teacher_params:,})"),
        ("initialisation", result.init),
    ]
    write_model_card(out_dir, f"kdcli student of {result.source}", summary, facts, result.source)


def _with_out(result: ShrinkResult, out: Path, seconds: float) -> ShrinkResult:
    from dataclasses import replace

    return replace(result, out=out, seconds=seconds)
