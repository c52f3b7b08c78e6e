"""`kdcli shrink`: a smaller student whose weights are copied from the teacher.

The student keeps a subset of the teacher's layers and, optionally, of its hidden channels, heads
and feed-forward neurons, and of its vocabulary (`vocab_from`: only the tokens some data needs).
Every kept tensor is the teacher's tensor (or its slice), streamed from the teacher's checkpoint;
only the data-driven strategies (`activation`, `importance`) run the teacher as a model, for
forward passes over calibration text. `random_init` makes the same shape with fresh weights: the
"from scratch" baseline of the study behind kdcli.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError
from kdcli.core.progress import ProgressCallback, report
from kdcli.core.results import JsonResult
from kdcli.core.validation import parse_csv
from kdcli.data.splits import load_for_option, nonempty_texts
from kdcli.files.model_card import write_model_card
from kdcli.files.model_dirs import (
    LoadOptions,
    ModelRef,
    content_hash,
    copy_tokenizer_files,
    head_kind,
    open_checkpoint,
    read_config_dict,
    resolve_model,
    weight_files,
)
from kdcli.files.outputs import atomic_output_dir, check_output_dir
from kdcli.files.provenance import (
    make_record,
    read_provenance,
    to_ranges,
    with_history,
    write_provenance,
)
from kdcli.files.tensor_stream import Checkpoint, SafetensorsWriter, TensorInfo, write_safetensors
from kdcli.surgery.architectures import (
    Architecture,
    TensorMatcher,
    TensorPlan,
    architecture_for,
)
from kdcli.surgery.importance import WidthScores, magnitude_scores
from kdcli.surgery.selection import (
    LAYER_STRATEGIES,
    HeadShape,
    choose_layers,
    parse_layers,
    student_heads,
)
from kdcli.surgery.slicing import SlicePlan, copy_tensors, plan_tensors, width_plan
from kdcli.vocab.shrink_step import TrimSettings, VocabReport, VocabTrim, remap_token_ids

if TYPE_CHECKING:
    from kdcli.surgery.calibration import Calibration

DTYPES = ("float32", "float16", "bfloat16")
WIDTH_STRATEGIES = ("first", "magnitude", "activation")
WEIGHTS_FILE = "model.safetensors"
CALIB_SAMPLES = 512


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
    vocab_from: str | None = None
    vocab_size: int | None = None
    min_frequency: int | None = None
    languages: str | Sequence[str] | None = None
    calib_data: str | None = None
    calib_samples: int | None = None

    def settings(self) -> dict[str, Any]:
        """The settings as provenance stores them: what shaped the student, not where it went."""
        data = asdict(self)
        del data["out"], data["overwrite"]
        if self.layers is not None and not isinstance(self.layers, str):
            data["layers"] = list(self.layers)
        data["languages"] = self.language_list()
        return data

    def language_list(self) -> list[str] | None:
        return parse_csv(self.languages)  # type: ignore[arg-type]

    def needs_calibration(self) -> bool:
        return self.width_strategy == "activation" or self.layer_strategy == "importance"


@dataclass(frozen=True)
class Shape:
    """The sizes that define an encoder: what the teacher had and what the student has."""

    layers: int
    hidden: int
    intermediate: int
    heads: int


@dataclass(frozen=True)
class ShrinkResult(JsonResult):
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
    teacher_embedding_params: int = 0  # token embedding rows x width
    student_embedding_params: int = 0
    vocab: VocabReport | None = None
    layer_importance: list[float] | None = None  # per teacher layer (--layer-strategy importance)
    calibration_samples: int | None = None


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
    heads = _select_heads(config, dims)
    hidden = config.hidden_size or dims["hidden"]
    intermediate = config.intermediate_size or dims["intermediate"]
    _check_width(config, teacher_config, dims, arch)
    files = weight_files(ref, config.allow_pickle)
    calib_texts = _calibration_texts(config) if config.needs_calibration() else None
    trim = VocabTrim.load(_trim_settings(config), ref) if config.vocab_from else None

    with open_checkpoint(ref, config.allow_pickle) as checkpoint:
        infos = checkpoint.infos()
        matcher = TensorMatcher(arch, list(infos))
        emb_is_hidden = arch.embedding_tied_to_hidden(teacher_config)
        calibration = None
        if calib_texts is not None:
            calibration = _calibrate(
                config, ref, teacher_config, matcher, infos, arch, calib_texts, progress
            )
        layers = _select_layers(config, dims["layers"], calibration)
        plans, dropped = plan_tensors(matcher, sorted(infos), layers)
        width_changes = (hidden, intermediate, heads.width) != (
            dims["hidden"],
            dims["intermediate"],
            dims["hidden"],
        )
        scores = None
        if width_changes and not config.random_init:
            scores = _width_scores(config, checkpoint, plans, emb_is_hidden, calibration, progress)
        slices = width_plan(layers, dims, hidden, heads, intermediate, scores, emb_is_hidden)
        if trim is not None:
            trim.select(config.source, teacher_config, _vocab_rows(plans, infos))
            slices = replace(slices, vocab=trim.kept)
        student_config = _student_config(teacher_config, arch, kind, slices, heads, intermediate)
        if trim is not None:
            remap_token_ids(student_config, trim.new_ids)
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
            vocab_report = None
            if trim is None:
                copy_tokenizer_files(ref, tmp)
            else:
                vocab_report = trim.write(ref, tmp, progress)
            result = _result(config, ref, arch, kind, slices, dims, heads, infos, tmp, started)
            result = replace(
                result,
                teacher_embedding_params=_embedding_params(plans, infos),
                student_embedding_params=_embedding_params(
                    plans, {i.name: i for i in student_infos}, student=True
                ),
                vocab=vocab_report,
                layer_importance=calibration.layer_importance if calibration else None,
                calibration_samples=calibration.samples if calibration else None,
                notes=result.notes + (vocab_report.notes() if vocab_report else []),
            )
            record = _record(config, ref, files, result, slices, dropped, dims, heads)
            record["vocab"] = trim.provenance(vocab_report) if trim and vocab_report else None
            if calibration is not None:
                record["calibration"] = _calibration_record(config, calibration)
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
            f"{', '.join(LAYER_STRATEGIES)}"
        )
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
        ("--vocab-size", config.vocab_size),
        ("--min-frequency", config.min_frequency),
        ("--calib-samples", config.calib_samples),
    ):
        if value is not None and value < 1:
            raise KdcliError(f"{option} {value} must be a positive integer")
    _check_data_options(config)


def _check_data_options(config: ShrinkConfig) -> None:
    """The options that need data: each one's data is given, and no data goes unused."""
    wants = [
        option
        for option, asked in (
            ("--width-strategy activation", config.width_strategy == "activation"),
            ("--layer-strategy importance", config.layer_strategy == "importance"),
        )
        if asked
    ]
    if wants and not config.calib_data:
        raise KdcliError(
            f"{' and '.join(wants)} rank(s) the teacher's parts on calibration text: "
            "add --calib-data DATA (e.g. the training data)"
        )
    if wants and config.random_init:
        raise KdcliError(
            f"--random-init gives fresh weights, so {wants[0]} has nothing to rank: "
            "drop one of them"
        )
    if config.layer_strategy == "importance" and config.num_layers is None:
        raise KdcliError("--layer-strategy importance needs --num-layers N (how many to keep)")
    if config.calib_data and not wants:
        raise KdcliError(
            f"--calib-data {config.calib_data} is used only by --width-strategy activation or "
            "--layer-strategy importance: add one of them or drop --calib-data"
        )
    if config.calib_samples is not None and not config.calib_data:
        raise KdcliError("--calib-samples needs --calib-data DATA: add it or drop --calib-samples")
    for option, value in (
        ("--vocab-size", config.vocab_size),
        ("--min-frequency", config.min_frequency),
    ):
        if value is not None and not config.vocab_from:
            raise KdcliError(f"{option} {value} needs --vocab-from DATA: add it or drop {option}")
    if config.vocab_size is not None and config.min_frequency is not None:
        raise KdcliError("--vocab-size and --min-frequency were both given: use one of them")
    if config.language_list() and not (config.vocab_from or config.calib_data):
        raise KdcliError(
            "--languages restricts the data of --vocab-from or --calib-data: add one of them "
            "or drop --languages"
        )


def _select_layers(
    config: ShrinkConfig, teacher_layers: int, calibration: Calibration | None
) -> list[int]:
    if config.layers is not None:
        spec = (
            config.layers if isinstance(config.layers, str) else ",".join(map(str, config.layers))
        )
        return parse_layers(spec, teacher_layers)
    if config.num_layers is None and config.layer_strategy is None:
        return list(range(teacher_layers))
    importance = calibration.layer_importance if calibration else None
    return choose_layers(
        config.layer_strategy or "uniform", config.num_layers, teacher_layers, importance or None
    )


def _trim_settings(config: ShrinkConfig) -> TrimSettings:
    assert config.vocab_from is not None
    return TrimSettings(
        config.vocab_from, config.language_list(), config.vocab_size, config.min_frequency
    )


def _calibration_texts(config: ShrinkConfig) -> list[str]:
    from kdcli.surgery.calibration import calibration_texts

    assert config.calib_data is not None
    languages = config.language_list()
    examples = load_for_option(config.calib_data, "--calib-data", "train", languages)
    nonempty_texts(examples, "--calib-data", config.calib_data, languages)  # no text: an error
    return calibration_texts(
        examples.texts, examples.languages, config.calib_samples or CALIB_SAMPLES, config.seed
    )


def _calibrate(
    config: ShrinkConfig,
    ref: ModelRef,
    teacher_config: dict[str, Any],
    matcher: TensorMatcher,
    infos: dict[str, TensorInfo],
    arch: Architecture,
    texts: list[str],
    progress: ProgressCallback | None,
) -> Calibration:
    """Activation statistics of the teacher on the calibration text, for every teacher layer."""
    from kdcli.surgery.calibration import calibrate, hook_points

    teacher_layers = arch.teacher_dims(teacher_config)["layers"]
    every_layer, _ = plan_tensors(matcher, sorted(infos), list(range(teacher_layers)))
    points = hook_points(every_layer, matcher, arch.embedding_tied_to_hidden(teacher_config))
    return calibrate(
        ref,
        teacher_config,
        points,
        texts,
        want_width=config.width_strategy == "activation",
        want_layers=config.layer_strategy == "importance",
        progress=progress,
    )


def _width_scores(
    config: ShrinkConfig,
    checkpoint: Checkpoint,
    plans: list[TensorPlan],
    emb_is_hidden: bool,
    calibration: Calibration | None,
    progress: ProgressCallback | None,
) -> WidthScores | None:
    if config.width_strategy == "magnitude":
        report(progress, "score channels", 0, None)
        return magnitude_scores(checkpoint, plans, emb_is_hidden)
    if config.width_strategy == "activation":
        assert calibration is not None
        return calibration.width
    return None


def _calibration_record(config: ShrinkConfig, calibration: Calibration) -> dict[str, Any]:
    return {
        "data": config.calib_data,
        "languages": config.language_list(),
        "split": "train",
        "samples": calibration.samples,
        "tokens": calibration.tokens,
        "layer_importance": calibration.layer_importance or None,
    }


def _vocab_rows(plans: Sequence[TensorPlan], infos: dict[str, TensorInfo]) -> int:
    """How many token rows the teacher's embedding matrix has."""
    for plan in plans:
        if plan.roles and plan.roles[0] == "vocab":
            return infos[plan.teacher_name].shape[0]
    raise KdcliError("the teacher has no token embedding matrix kdcli knows: cannot trim it")


def _embedding_params(
    plans: Sequence[TensorPlan], infos: dict[str, TensorInfo], student: bool = False
) -> int:
    """Parameters in tensors indexed by token (the token embeddings)."""
    total = 0
    for plan in plans:
        name = plan.student_name if student else plan.teacher_name
        if "vocab" in plan.roles and name in infos:
            total += infos[name].numel
    return total


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
    from kdcli.files.tensor_stream import SafetensorsFile

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
    if result.vocab is not None:
        facts.append(
            (
                "vocabulary",
                f"{result.vocab.student:,} of the teacher's {result.vocab.teacher:,} tokens "
                "(trimmed to the data in kdcli.json)",
            )
        )
    write_model_card(out_dir, f"kdcli student of {result.source}", summary, facts, result.source)


def _with_out(result: ShrinkResult, out: Path, seconds: float) -> ShrinkResult:
    from dataclasses import replace

    return replace(result, out=out, seconds=seconds)
