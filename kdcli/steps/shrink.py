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

from kdcli.core.errors import CheckFailedError, KdcliError, option_ref
from kdcli.core.progress import ProgressCallback, report
from kdcli.core.results import JsonResult
from kdcli.core.validation import check_choice, check_int, check_names
from kdcli.data.splits import load_for_option, nonempty_texts
from kdcli.files.model_card import write_model_card
from kdcli.files.model_dirs import (
    TOKENIZER_FILES,
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
from kdcli.files.outputs import atomic_output_dir, check_output_dir, output_lock
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
    check_layers,
    choose_layers,
    student_heads,
)
from kdcli.surgery.slicing import SlicePlan, copy_tensors, plan_tensors, width_plan
from kdcli.vocab.shrink_step import (
    KEEP_CHOICES,
    MAX_CHANGED,
    TrimSettings,
    VocabReport,
    VocabTrim,
    remap_token_ids,
)

if TYPE_CHECKING:
    from kdcli.surgery.calibration import Calibration
    from kdcli.vocab.ranking import VocabSelection

DTYPES = ("float32", "float16", "bfloat16")
WIDTH_STRATEGIES = ("first", "magnitude", "activation")
WEIGHTS_FILE = "model.safetensors"
CALIB_SAMPLES = 512


@dataclass(frozen=True)
class ShrinkConfig:
    """Everything `kdcli shrink` can be told. Width options left as None keep the teacher's."""

    source: str
    out: Path
    layers: Sequence[int] | None = None
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
    vocab_keep: str = "auto"
    vocab_size: int | None = None
    min_frequency: int | None = None
    max_changed: float | None = None  # share of held-out texts (0.005 = 0.5%); None: 0.5%
    vocab_check: str | None = None
    languages: Sequence[str] | None = None
    calib_data: str | None = None
    calib_samples: int | None = None

    def settings(self) -> dict[str, Any]:
        """The settings as provenance stores them: what shaped the student, not where it went."""
        data = asdict(self)
        del data["out"], data["overwrite"]
        data["layers"] = list(self.layers) if self.layers is not None else None
        data["languages"] = self.language_list()
        return data

    def language_list(self) -> list[str] | None:
        return check_names("languages", self.languages)

    def inputs(self) -> list[str]:
        """What the student is made from: never to be overwritten by its output."""
        sources = (self.source, self.vocab_from, self.vocab_check, self.calib_data)
        return [str(v) for v in sources if v]

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
    passed: bool = True  # False when the vocabulary check failed (the output is marked failed)
    layer_importance: list[float] | None = None  # per teacher layer (--layer-strategy importance)
    calibration_samples: int | None = None


def shrink(config: ShrinkConfig, progress: ProgressCallback | None = None) -> ShrinkResult:
    """Build the student described by `config` and write it to `config.out`.

    First a plan (layers, kept channels, the student's config and tensors, the vocabulary),
    checked against the model transformers builds from that config before anything is written;
    then one writer streams the student's files into place.
    """
    started = time.perf_counter()
    _check_options(config)
    check_output_dir(Path(config.out), config.overwrite, config.inputs())
    with output_lock(Path(config.out)) as stale:
        result = _shrink(config, progress, started)
    result = replace(result, notes=[*stale, *result.notes])
    if result.vocab is not None and not result.vocab.passed:
        raise CheckFailedError(result.vocab.failure(result.out), result)
    return result


def _shrink(
    config: ShrinkConfig, progress: ProgressCallback | None, started: float
) -> ShrinkResult:
    ref = resolve_model(config.source, LoadOptions(config.revision, config.allow_pickle))
    teacher = _teacher(config, ref)
    calib_texts = _calibration_texts(config) if config.needs_calibration() else None
    trim = VocabTrim.load(_trim_settings(config), ref) if config.vocab_from else None
    with open_checkpoint(ref, config.allow_pickle) as checkpoint:
        _check_weights_match_config(teacher, checkpoint.infos())
        plan = plan_student(config, teacher, checkpoint, calib_texts, trim, progress)
        verify_plan(plan)
        with atomic_output_dir(Path(config.out), config.overwrite, config.inputs()) as tmp:
            vocab = _write_student(config, plan, checkpoint, trim, tmp, progress)
            result = _result(config, plan, vocab, tmp, time.perf_counter() - started)
            record = _record(config, plan, result, trim)
            parent = read_provenance(ref.path)
            record = with_history(record, parent, ref.path, Path(config.out))
            write_provenance(tmp, record)
            _model_card(tmp, result, record)
    return result


@dataclass(frozen=True)
class Teacher:
    """What shrink needs to know about the teacher before reading its weights."""

    ref: ModelRef
    config: dict[str, Any]
    architecture: Architecture
    head: str
    dims: dict[str, int]  # layers, hidden, intermediate, heads
    files: list[Path]


def _teacher(config: ShrinkConfig, ref: ModelRef) -> Teacher:
    teacher_config = read_config_dict(ref)
    arch = architecture_for(teacher_config, ref.name)
    dims = arch.teacher_dims(teacher_config)
    teacher = Teacher(
        ref,
        teacher_config,
        arch,
        head_kind(teacher_config, ref.name),
        dims,
        weight_files(ref, config.allow_pickle),
    )
    _check_width(config, teacher)
    return teacher


@dataclass(frozen=True)
class ShrinkPlan:
    """The whole student, decided before anything is written: which teacher tensor (or slice)
    each student tensor is, its dtype, and the student's config.json."""

    teacher: Teacher
    teacher_infos: dict[str, TensorInfo]
    heads: HeadShape
    intermediate: int
    tensors: list[TensorPlan]  # every student tensor and where it comes from
    dropped: list[str]  # teacher tensors the student does not keep
    slices: SlicePlan  # the kept indices of every role
    dtypes: dict[str, str]  # student tensor name -> dtype
    student_infos: list[TensorInfo]
    student_config: dict[str, Any]
    calibration: Calibration | None
    vocab: VocabSelection | None


def plan_student(
    config: ShrinkConfig,
    teacher: Teacher,
    checkpoint: Checkpoint,
    calib_texts: list[str] | None,
    trim: VocabTrim | None,
    progress: ProgressCallback | None,
) -> ShrinkPlan:
    """Decide the student: reads the teacher (and runs it on calibration text when a strategy
    needs that), writes nothing."""
    arch, dims = teacher.architecture, teacher.dims
    heads = _select_heads(config, dims)
    intermediate = config.intermediate_size or dims["intermediate"]
    infos = checkpoint.infos()
    matcher = TensorMatcher(arch, list(infos))
    emb_is_hidden = arch.embedding_tied_to_hidden(teacher.config)
    calibration = None
    if calib_texts is not None:
        calibration = _calibrate(config, teacher, matcher, infos, calib_texts, progress)
    layers = _select_layers(config, dims["layers"], calibration)
    tensors, dropped = plan_tensors(matcher, sorted(infos), layers)
    width_changes = (heads.width, intermediate) != (dims["hidden"], dims["intermediate"])
    scores = None
    if width_changes and not config.random_init:
        scores = _width_scores(config, checkpoint, tensors, emb_is_hidden, calibration, progress)
    slices = width_plan(layers, dims, heads.width, heads, intermediate, scores, emb_is_hidden)
    vocab = None
    if trim is not None:
        vocab = trim.select(config.source, teacher.config, _vocab_rows(tensors, infos))
        slices = replace(slices, vocab=vocab.kept)
    dtypes = _output_dtypes(tensors, infos, config.dtype)
    student_infos = [
        slices.student_info(t, infos[t.teacher_name], dtypes[t.student_name]) for t in tensors
    ]
    student_config = _student_config(teacher, slices, heads, intermediate, vocab)
    student_config["dtype"] = config.dtype or _main_dtype(student_infos)
    return ShrinkPlan(
        teacher=teacher,
        teacher_infos=infos,
        heads=heads,
        intermediate=intermediate,
        tensors=tensors,
        dropped=dropped,
        slices=slices,
        dtypes=dtypes,
        student_infos=student_infos,
        student_config=student_config,
        calibration=calibration,
        vocab=vocab,
    )


def _check_weights_match_config(teacher: Teacher, infos: dict[str, TensorInfo]) -> None:
    """The teacher's weights must have the shapes its config.json gives them, or the student
    (whose config is derived from it) would not load: a vocab_size that is not the embedding's
    rows is the usual case."""
    try:
        expected = student_shapes(teacher.config, teacher.head)
    except Exception:  # transformers cannot build it from config.json: loading will say why
        return
    prefix = teacher.architecture.prefix + "."
    for name, info in sorted(infos.items()):
        shape = expected.get(_base_name(name, prefix, expected))
        if shape is None or shape == tuple(info.shape):
            continue
        vocab = teacher.config.get("vocab_size")
        why = (
            f"config.json says vocab_size {vocab}, the token embeddings have {info.shape[0]} rows"
            if "word_embeddings" in name or "tok_embeddings" in name
            else f"config.json gives {name} the shape {list(shape)}, the weights {list(info.shape)}"
        )
        raise KdcliError(
            f"{teacher.ref.name}: its config.json and its weights disagree ({why}), so a student "
            "made from it would not load",
            fix="fix config.json, or save the teacher again with save_pretrained",
        )


def verify_plan(plan: ShrinkPlan) -> None:
    """The planned tensors are exactly the ones transformers builds from the planned config:
    build the student on the meta device (no memory, no weights) and compare every name and
    shape, so a layout kdcli gets wrong fails here, before anything is written."""
    expected = student_shapes(plan.student_config, plan.teacher.head)
    prefix = plan.teacher.architecture.prefix + "."
    planned = {_base_name(info.name, prefix, expected): info.shape for info in plan.student_infos}
    # What the teacher's checkpoint never had (the pooler of an encoder saved from a masked-LM
    # model) transformers initialises, for the student as it would for the teacher.
    teacher_names = {_base_name(name, prefix, expected) for name in plan.teacher_infos}
    missing = sorted((set(expected) - set(planned)) & teacher_names)
    extra = sorted(set(planned) - set(expected))
    wrong = sorted(n for n in set(expected) & set(planned) if expected[n] != planned[n])
    problems = (
        [f"{n} is missing" for n in missing]
        + [f"{n} is not in the model" for n in extra]
        + [f"{n} is {planned[n]}, the model's {expected[n]}" for n in wrong]
    )
    if problems:
        raise KdcliError(
            f"{plan.teacher.ref.name}: the planned student does not match the model transformers "
            f"builds from its config ({'; '.join(problems[:3])}"
            f"{f'; +{len(problems) - 3} more' if len(problems) > 3 else ''}): this model "
            "variant is not supported"
        )


def student_shapes(student_config: dict[str, Any], head: str) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor transformers saves for `student_config`, found by building
    the model on the meta device."""
    import torch
    from transformers import CONFIG_MAPPING

    model_config = CONFIG_MAPPING[student_config["model_type"]].from_dict(student_config)
    with torch.device("meta"):
        model = _model_class(head).from_config(model_config)
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def _base_name(name: str, prefix: str, expected: dict[str, Any]) -> str:
    """A bare encoder's checkpoint may name tensors with its task model's prefix ("bert."),
    which transformers drops when it loads them into the base model."""
    if name in expected or not name.startswith(prefix):
        return name
    return name.removeprefix(prefix)


def _model_class(head: str) -> Any:
    from transformers import (
        AutoModel,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
    )

    return {
        "sequence-classification": AutoModelForSequenceClassification,
        "token-classification": AutoModelForTokenClassification,
        "encoder": AutoModel,
    }[head]


def _write_student(
    config: ShrinkConfig,
    plan: ShrinkPlan,
    checkpoint: Checkpoint,
    trim: VocabTrim | None,
    out_dir: Path,
    progress: ProgressCallback | None,
) -> VocabReport | None:
    """The student's files: config.json, weights (copied or fresh), tokenizer."""
    (out_dir / "config.json").write_text(
        json.dumps(plan.student_config, indent=2, sort_keys=True) + "\n"
    )
    if config.random_init:
        _write_random(out_dir, plan.teacher.head, config.seed, plan.student_config["dtype"])
    else:
        writer = SafetensorsWriter(out_dir / WEIGHTS_FILE, plan.student_infos)
        copy_tensors(checkpoint, plan.tensors, plan.slices, writer, plan.dtypes, progress)
        writer.close()
    if trim is None or plan.vocab is None:
        copy_tokenizer_files(plan.teacher.ref, out_dir)
        return None
    return trim.write(plan.vocab, plan.teacher.ref, out_dir, progress)


def _both(first: str, second: str) -> KdcliError:
    return KdcliError(
        f"{option_ref(first)} and {option_ref(second)} were both given", fix="use one of them"
    )


def _check_options(config: ShrinkConfig) -> None:
    if config.layers is not None and config.num_layers is not None:
        raise _both("layers", "num_layers")
    if config.layers is not None and config.layer_strategy is not None:
        raise _both("layers", "layer_strategy")
    check_choice("layer_strategy", config.layer_strategy, LAYER_STRATEGIES)
    check_choice("width_strategy", config.width_strategy, WIDTH_STRATEGIES)
    check_choice("dtype", config.dtype, DTYPES)
    for option in (
        "num_layers",
        "hidden_size",
        "intermediate_size",
        "num_heads",
        "vocab_size",
        "min_frequency",
        "calib_samples",
    ):
        check_int(option, getattr(config, option), optional=True)
    config.language_list()
    _check_data_options(config)


def _check_data_options(config: ShrinkConfig) -> None:
    """The options that need data: each one's data is given, and no data goes unused."""
    wants = [
        option
        for option, asked in (
            (f"{option_ref('width_strategy')} activation", config.width_strategy == "activation"),
            (f"{option_ref('layer_strategy')} importance", config.layer_strategy == "importance"),
        )
        if asked
    ]
    calib_data = option_ref("calib_data")
    if wants and not config.calib_data:
        raise KdcliError(
            f"{' and '.join(wants)} rank(s) the teacher's parts on calibration text",
            fix=f"add {calib_data} DATA (e.g. the training data)",
        )
    if wants and config.random_init:
        raise KdcliError(
            f"{option_ref('random_init')} gives fresh weights, so {wants[0]} has nothing to rank",
            fix="drop one of them",
        )
    if config.layer_strategy == "importance" and config.num_layers is None:
        raise KdcliError(
            f"needs {option_ref('num_layers')} N (how many to keep)",
            option="layer_strategy",
            value=config.layer_strategy,
        )
    if config.calib_data and not wants:
        raise KdcliError(
            f"is used only by {option_ref('width_strategy')} activation or "
            f"{option_ref('layer_strategy')} importance",
            option="calib_data",
            value=config.calib_data,
            fix=f"add one of them or drop {calib_data}",
        )
    if config.calib_samples is not None and not config.calib_data:
        raise KdcliError(
            f"needs {calib_data} DATA",
            option="calib_samples",
            fix=f"add it or drop {option_ref('calib_samples')}",
        )
    for option in ("vocab_size", "min_frequency"):
        value = getattr(config, option)
        if value is not None and not config.vocab_from:
            raise KdcliError(
                f"needs {option_ref('vocab_from')} DATA",
                option=option,
                value=value,
                fix=f"add it or drop {option_ref(option)}",
            )
    if config.vocab_size is not None and config.min_frequency is not None:
        raise _both("vocab_size", "min_frequency")
    check_choice("vocab_keep", config.vocab_keep, KEEP_CHOICES)
    for option, given in (
        ("vocab_keep", config.vocab_keep != "auto"),
        ("max_changed", config.max_changed is not None),
        ("vocab_check", config.vocab_check is not None),
    ):
        if given and not config.vocab_from:
            raise KdcliError(
                f"needs {option_ref('vocab_from')} DATA",
                option=option,
                value=getattr(config, option),
                fix=f"add it or drop {option_ref(option)}",
            )
    if config.max_changed is not None and not 0.0 <= config.max_changed <= 1.0:
        raise KdcliError(
            "is a share of texts and must be between 0 and 1 (0% and 100%)",
            option="max_changed",
            value=config.max_changed,
        )
    if config.language_list() and not (config.vocab_from or config.calib_data):
        raise KdcliError(
            f"restricts the data of {option_ref('vocab_from')} or {calib_data}",
            option="languages",
            fix=f"add one of them or drop {option_ref('languages')}",
        )


def _select_layers(
    config: ShrinkConfig, teacher_layers: int, calibration: Calibration | None
) -> list[int]:
    if config.layers is not None:
        return check_layers(config.layers, teacher_layers)
    if config.num_layers is None and config.layer_strategy is None:
        return list(range(teacher_layers))
    importance = calibration.layer_importance if calibration else None
    return choose_layers(
        config.layer_strategy or "uniform", config.num_layers, teacher_layers, importance or None
    )


def _trim_settings(config: ShrinkConfig) -> TrimSettings:
    assert config.vocab_from is not None
    return TrimSettings(
        data=config.vocab_from,
        languages=config.language_list(),
        vocab_size=config.vocab_size,
        min_frequency=config.min_frequency,
        keep=config.vocab_keep,
        max_changed=MAX_CHANGED if config.max_changed is None else config.max_changed,
        check=config.vocab_check,
    )


def _calibration_texts(config: ShrinkConfig) -> list[str]:
    from kdcli.surgery.calibration import calibration_texts

    assert config.calib_data is not None
    languages = config.language_list()
    examples = load_for_option(config.calib_data, "calib_data", "train", languages)
    nonempty_texts(examples, "calib_data", config.calib_data, languages)  # no text: an error
    return calibration_texts(
        examples.texts, examples.languages, config.calib_samples or CALIB_SAMPLES, config.seed
    )


def _calibrate(
    config: ShrinkConfig,
    teacher: Teacher,
    matcher: TensorMatcher,
    infos: dict[str, TensorInfo],
    texts: list[str],
    progress: ProgressCallback | None,
) -> Calibration:
    """Activation statistics of the teacher on the calibration text, for every teacher layer."""
    from kdcli.surgery.calibration import calibrate, hook_points

    every_layer, _ = plan_tensors(matcher, sorted(infos), list(range(teacher.dims["layers"])))
    emb_is_hidden = teacher.architecture.embedding_tied_to_hidden(teacher.config)
    return calibrate(
        teacher.ref,
        teacher.config,
        hook_points(every_layer, matcher, emb_is_hidden),
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
            f"is larger than the teacher's {dims['hidden']}",
            option="hidden_size",
            value=hidden,
            fix=f"choose at most {dims['hidden']}",
        )
    return student_heads(dims["hidden"], dims["heads"], hidden, config.num_heads)


def _check_width(config: ShrinkConfig, teacher: Teacher) -> None:
    teacher_config, dims, arch = teacher.config, teacher.dims, teacher.architecture
    _select_heads(config, dims)
    if config.intermediate_size is not None and config.intermediate_size > dims["intermediate"]:
        raise KdcliError(
            f"is larger than the teacher's {dims['intermediate']}",
            option="intermediate_size",
            value=config.intermediate_size,
            fix=f"choose at most {dims['intermediate']}",
        )
    hidden = config.hidden_size or dims["hidden"]
    hidden_changes = hidden != dims["hidden"]
    emb_key = arch.embedding_size_key
    projected = emb_key is not None and not arch.embedding_tied_to_hidden(teacher_config)
    if hidden_changes and projected and emb_key and hidden == int(teacher_config[emb_key]):
        raise KdcliError(
            f"equals the teacher's {emb_key} ({hidden}): {arch.family} then has no embedding "
            "projection to copy",
            option="hidden_size",
            value=hidden,
            fix="choose another size",
        )
    if hidden_changes and teacher_config.get("sinusoidal_pos_embds"):
        raise KdcliError(
            f"{config.source}: {arch.family} with sinusoidal position embeddings cannot change "
            f"{option_ref('hidden_size')}",
            fix="keep the teacher's width",
        )


def _student_config(
    teacher: Teacher,
    slices: SlicePlan,
    heads: HeadShape,
    intermediate: int,
    vocab: VocabSelection | None,
) -> dict[str, Any]:
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    arch, original = teacher.architecture, teacher.config
    keys = arch.keys
    config = dict(original)
    hidden = heads.width
    emb_key = arch.embedding_size_key
    if emb_key and emb_key in config and arch.embedding_tied_to_hidden(original):
        config[emb_key] = hidden
    if "pooler_hidden_size" in config and config["pooler_hidden_size"] == original[keys.hidden]:
        config["pooler_hidden_size"] = hidden
    config[keys.layers] = len(slices.layers)
    config[keys.hidden] = hidden
    config[keys.intermediate] = intermediate
    config[keys.heads] = heads.num_heads
    if isinstance(original.get("layer_types"), list):
        config["layer_types"] = [original["layer_types"][i] for i in slices.layers]
    if vocab is not None:
        config["vocab_size"] = len(vocab.kept)
        remap_token_ids(config, vocab.new_ids)
    if teacher.head == "encoder":
        config["architectures"] = [MODEL_MAPPING_NAMES[original["model_type"]]]
    config.pop("torch_dtype", None)
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
    plan: ShrinkPlan,
    vocab: VocabReport | None,
    out_dir: Path,
    seconds: float,
) -> ShrinkResult:
    teacher, slices, heads = plan.teacher, plan.slices, plan.heads
    dims = teacher.dims
    calibration = plan.calibration
    student_infos = {info.name: info for info in plan.student_infos}
    return ShrinkResult(
        out=Path(config.out),
        source=teacher.ref.name,
        architecture=teacher.architecture.family,
        head=teacher.head,
        init="random" if config.random_init else "copy",
        kept_layers=list(slices.layers),
        teacher=Shape(dims["layers"], dims["hidden"], dims["intermediate"], dims["heads"]),
        student=Shape(len(slices.layers), heads.width, plan.intermediate, heads.num_heads),
        teacher_params=sum(info.numel for info in plan.teacher_infos.values()),
        student_params=sum(info.numel for info in plan.student_infos),
        teacher_bytes=sum(f.stat().st_size for f in teacher.files),
        student_bytes=(out_dir / WEIGHTS_FILE).stat().st_size,
        seconds=seconds,
        notes=_notes(config, plan)
        + (vocab.notes if vocab else [])
        + _tokenizer_note(teacher.ref, Path(config.out)),
        teacher_embedding_params=_embedding_params(plan.tensors, plan.teacher_infos),
        student_embedding_params=_embedding_params(plan.tensors, student_infos, student=True),
        vocab=vocab,
        passed=vocab.passed if vocab else True,
        layer_importance=calibration.layer_importance if calibration else None,
        calibration_samples=calibration.samples if calibration else None,
    )


def _tokenizer_note(ref: ModelRef, out: Path) -> list[str]:
    """A student gets its teacher's tokenizer files; say so when there are none to copy."""
    if any((ref.path / name).is_file() for name in TOKENIZER_FILES):
        return []
    return [
        f"{ref.name} has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...), so neither "
        f"has the student: copy the teacher's tokenizer files into {out} before distill, eval "
        "or export"
    ]


def _notes(config: ShrinkConfig, plan: ShrinkPlan) -> list[str]:
    arch, slices, dims = plan.teacher.architecture, plan.slices, plan.teacher.dims
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
    config: ShrinkConfig, plan: ShrinkPlan, result: ShrinkResult, trim: VocabTrim | None
) -> dict[str, Any]:
    teacher, slices, heads, dims = plan.teacher, plan.slices, plan.heads, plan.teacher.dims
    source = {**teacher.ref.describe(Path(config.out)), "sha256": content_hash(teacher.files)}
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
    vocab = (
        trim.provenance(plan.vocab, result.vocab)
        if trim is not None and plan.vocab is not None and result.vocab is not None
        else None
    )
    calibration = (
        {"calibration": _calibration_record(config, plan.calibration)}
        if plan.calibration is not None
        else {}
    )
    return make_record(
        "shrink",
        config.settings(),
        source=source,
        architecture=result.architecture,
        head=result.head,
        init=result.init,
        layers={"teacher": dims["layers"], "kept": list(slices.layers)},
        width=width,
        vocab=vocab,
        params={"teacher": result.teacher_params, "student": result.student_params},
        dropped_tensors=plan.dropped,
        passed=result.passed,
        notes=result.notes,
        **calibration,
    )


def _model_card(out_dir: Path, result: ShrinkResult, record: dict[str, Any]) -> None:
    from kdcli.files.model_card import public_name

    source = public_name(result.source)
    summary = f"A {result.student.layers}-layer student of `{source}`, made by `kdcli shrink` " + (
        "with weights copied from the teacher (layers and channels listed in kdcli.json)."
        if result.init == "copy"
        else "with fresh random weights of the same shape (the from-scratch baseline)."
    )
    facts = [
        ("teacher", f"`{source}`"),
        ("kept teacher layers", ", ".join(map(str, result.kept_layers))),
        (
            "hidden / intermediate / heads",
            f"{result.student.hidden} / {result.student.intermediate} / {result.student.heads}",
        ),
        ("parameters", f"{result.student_params:,} (teacher {result.teacher_params:,})"),
        ("initialisation", result.init),
    ]
    if result.vocab is not None:
        vocab = result.vocab
        facts.append(
            (
                "vocabulary",
                f"{vocab.student:,} of the teacher's {vocab.teacher:,} tokens "
                f"(level {vocab.level}; trimmed to the data in kdcli.json)",
            )
        )
        facts.append(
            (
                "held-out texts that tokenize differently",
                f"{vocab.held_out_changed:,} of {vocab.held_out_texts:,} "
                f"({vocab.held_out_share:.2%}; allowed {vocab.max_changed:.2%}: "
                f"{'passed' if vocab.passed else 'FAILED'})",
            )
        )
    facts.append(("accuracy", "not trained yet: distil it (kdcli distill), then kdcli eval"))
    write_model_card(
        out_dir, f"kdcli student of {source}", summary, facts, result.source, record=record
    )
