"""Run a classifier on texts: a PyTorch model directory or a kdcli ONNX export, one interface.

`open_predictor(path)` opens either kind; `predictor.logits(texts)` tokenizes once, sorts the texts
by length and batches them with dynamic padding (a batch pads only to its own longest text), then
returns the logits in the caller's order. Export verification, `kdcli eval` and the benchmarks all
go through here, so PyTorch and ONNX are always fed exactly the same batches.

Kinds: "pytorch" (a Hugging Face model directory or Hub id, run in float32 under
`torch.inference_mode()`), "onnx" (`model.onnx`) and "onnx-int8" (`model_quantized.onnx`), both
run with ONNX Runtime on the CPU with the session options kdcli measured (`OrtSettings`).
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kdcli.core.errors import KdcliError, one_line, option_ref
from kdcli.core.machine import torch_threads
from kdcli.core.validation import check_choice, check_int, check_max_length
from kdcli.data.batching import MODEL_INPUTS, collate_arrays, encode, model_inputs, sorted_batches
from kdcli.files.model_dirs import (
    HeadKind,
    LoadOptions,
    ModelRef,
    label_names,
    load_tokenizer_from,
    model_labels,
    quiet_transformers,
    read_config_dict,
    remote_code_refusal,
    resolve_model,
    weight_files,
)
from kdcli.files.model_dirs import token_limit as model_token_limit
from kdcli.files.provenance import read_provenance
from kdcli.runtime.onnx_graph import EXPORT_EXTRA

if TYPE_CHECKING:
    import numpy as np
    from transformers import PreTrainedTokenizerBase

PredictorKind = Literal["pytorch", "onnx", "onnx-int8"]
VARIANTS = ("auto", "fp32", "int8")
ONNX_FILE = "model.onnx"
ONNX_INT8_FILE = "model_quantized.onnx"

Batch = dict[str, "np.ndarray"]


@dataclass(frozen=True)
class OrtSettings:
    """ONNX Runtime session choices, defaults from `benchmarks/bench_export.py --sweep` (the
    numbers are in docs/export.md).

    - SkipLayerNormFusion (Add + LayerNorm fused when a session starts) was slower than the two
      ops it replaces on the AVX-512 CPU measured, fp32 and int8 alike, so it is disabled.
    - Spinning intra-op threads (busy-waiting for work between ops) were 5-10% faster on a quiet
      machine but 2x slower when other processes shared the cores, so threads sleep.
    - `exact_int8`: on x86 without VNNI, ONNX Runtime's u8*s8 kernels can saturate their 16-bit
      sums when weights use all 8 bits; for an int8 file not known to hold 7-bit weights kdcli
      then asks for its u8*u8 kernels (`session.x64quantprecision`). On a real e5-small student
      (AVX2) that took an 8-bit file from 87.7% to 90.2% agreement with fp32; 7-bit files
      compute the same either way, about 10% slower, so they keep the fast kernels.
    """

    disabled_optimizers: tuple[str, ...] = ("SkipLayerNormFusion",)
    spinning: bool = False
    exact_int8: bool = True


@dataclass(frozen=True)
class Latency:
    """Forward-pass times (tokenization excluded) on the given texts, timed in `rounds`
    interleaved with the other models measured: the median of the rounds, and the fastest and
    slowest round (the spread: how much to trust the median)."""

    batch1_ms: float  # one text at a time: per round the median over texts; median of rounds
    batch_ms: float  # one batch of `batch_size` texts: median of rounds
    batch_size: int
    texts_per_s: float  # throughput at `batch_size`, from batch_ms
    batch1_low_ms: float = 0.0
    batch1_high_ms: float = 0.0
    batch_low_ms: float = 0.0
    batch_high_ms: float = 0.0
    rounds: int = 1

    @property
    def spread(self) -> float:
        """The larger relative gap between the fastest and slowest round (batch 1 or batch)."""
        from kdcli.core.machine import spread

        return max(
            spread(self.batch1_low_ms, self.batch1_high_ms, self.batch1_ms),
            spread(self.batch_low_ms, self.batch_high_ms, self.batch_ms),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EncodedBatch:
    """Tokenized texts padded to the batch's longest; `index` = their positions in the input."""

    index: list[int]
    inputs: Batch


class Predictor(ABC):
    """A classifier that maps texts to logits. Open one with `open_predictor`."""

    name: str
    path: Path
    kind: PredictorKind
    head: HeadKind  # a classification head: "sequence-classification" or "token-classification"
    id2label: dict[int, str]
    num_parameters: int | None
    size_bytes: int
    tokenizer: PreTrainedTokenizerBase
    token_limit: int | None = None  # what the position embeddings take (config.json)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The model inputs this predictor feeds (what the tokenizer makes and the model takes)."""
        return self._input_names

    _input_names: tuple[str, ...] = ("input_ids", "attention_mask")

    @abstractmethod
    def forward(self, inputs: Batch) -> np.ndarray:
        """Logits for one encoded batch (int64 arrays named like the tokenizer's outputs)."""

    def encode(
        self, texts: Sequence[str], batch_size: int = 32, max_length: int = 128
    ) -> list[EncodedBatch]:
        """Texts tokenized once, sorted longest first and cut into dynamically padded batches
        (`kdcli.data.batching`, the path training uses too); never longer than the model takes,
        whatever `max_length` asks."""
        _check_batching(batch_size, max_length)
        encoded = encode(self.tokenizer, texts, self.fitted_length(max_length), self.input_names)
        return [
            EncodedBatch(index, collate_arrays(encoded, index))
            for index in sorted_batches(encoded.lengths(), batch_size)
        ]

    def fitted_length(self, max_length: int) -> int:
        """`max_length`, cut to what the model's position embeddings take."""
        if self.token_limit is not None and max_length > self.token_limit:
            return self.token_limit
        return max_length

    def logits(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        max_length: int = 128,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Logits in the order of `texts`: (texts, labels), or for token classification
        (texts, longest text in tokens, labels) with NaN after each text's last token.
        `progress(done, total)` is called after every batch (for long runs such as kdcli eval)."""
        import numpy as np

        _check_batching(batch_size, max_length)
        if not texts:
            return np.zeros((0, len(self.id2label)), dtype=np.float32)
        batches = self.encode(texts, batch_size, max_length)
        outputs = []
        done = 0
        for batch in batches:
            outputs.append((batch, self.forward(batch.inputs)))
            done += len(batch.index)
            if progress is not None:
                progress(done, len(texts))
        if self.head == "token-classification":
            return _gather_tokens(outputs, len(texts))
        result = np.zeros((len(texts), outputs[0][1].shape[-1]), dtype=np.float32)
        for batch, logits in outputs:
            result[batch.index] = logits
        return result

    def word_tags(
        self,
        words: Sequence[Sequence[str]],
        batch_size: int = 32,
        max_length: int = 128,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[list[str]]:
        """Token classification read back per word: the label of each word's token (its first
        sub-token with content, as training labels it); a word without a token of its own (cut
        off by `max_length`, or a character the tokenizer drops) is `O`."""
        import numpy as np

        from kdcli.data.batching import encode_words, words_text

        if self.head != "token-classification":
            raise KdcliError(f"{self.name} classifies sequences, not the words of a text")
        logits = self.logits(
            [words_text(row)[0] for row in words], batch_size, max_length, progress
        )
        positions = encode_words(self.tokenizer, words, self.fitted_length(max_length)).word_tokens
        assert positions is not None
        predicted = np.nan_to_num(logits, nan=-np.inf).argmax(-1)
        return [
            [self.id2label[int(predicted[i, p])] if p >= 0 else "O" for p in row]
            for i, row in enumerate(positions)
        ]

    def latency(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        max_length: int = 128,
        repeats: int = 5,
        single_texts: int = 32,
    ) -> Latency:
        """Batch-1 latency over up to `single_texts` texts, and batch throughput, in `repeats`
        rounds (see `measure_latency`, which times several models side by side)."""
        timed = measure_latency(
            {"model": self}, texts, batch_size, max_length, repeats, single_texts
        )
        return timed["model"]


def measure_latency(
    predictors: Mapping[str, Predictor],
    texts: Sequence[str],
    batch_size: int = 32,
    max_length: int = 128,
    rounds: int = 5,
    single_texts: int = 32,
) -> dict[str, Latency]:
    """Time several models in interleaved rounds: in every round each model runs its batch-1
    texts and one batch, the order reversed every other round. A machine that gets busier or
    quieter while measuring then slows every model alike, so their ratios hold, and the spread
    over rounds shows how steady the machine was."""
    if not texts:
        raise KdcliError("latency needs at least one text")
    rounds = max(1, rounds)
    singles: dict[str, list[Batch]] = {}
    full: dict[str, Batch] = {}
    for name, predictor in predictors.items():
        _check_batching(batch_size, max_length)
        singles[name] = [
            predictor.encode([text], 1, max_length)[0].inputs for text in texts[:single_texts]
        ]
        batch_texts = [texts[i % len(texts)] for i in range(batch_size)]
        full[name] = predictor.encode(batch_texts, batch_size, max_length)[0].inputs
        time_forward(predictor, full[name], repeats=0, warmup=1)  # first-call costs untimed
    one: dict[str, list[float]] = {name: [] for name in predictors}
    batch: dict[str, list[float]] = {name: [] for name in predictors}
    names = list(predictors)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            predictor = predictors[name]
            times = [time_forward(predictor, x, repeats=1, warmup=0)[0] for x in singles[name]]
            one[name].append(statistics.median(times))
            batch[name] += time_forward(predictor, full[name], repeats=1, warmup=0)
    return {
        name: Latency(
            batch1_ms=statistics.median(one[name]),
            batch_ms=statistics.median(batch[name]),
            batch_size=batch_size,
            texts_per_s=batch_size * 1000.0 / statistics.median(batch[name]),
            batch1_low_ms=min(one[name]),
            batch1_high_ms=max(one[name]),
            batch_low_ms=min(batch[name]),
            batch_high_ms=max(batch[name]),
            rounds=rounds,
        )
        for name in names
    }


def time_forward(
    predictor: Predictor, inputs: Batch, repeats: int = 5, warmup: int = 1
) -> list[float]:
    """Milliseconds of `repeats` forward passes on one batch, after `warmup` untimed ones."""
    for _ in range(warmup):
        predictor.forward(inputs)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        predictor.forward(inputs)
        times.append((time.perf_counter() - started) * 1000.0)
    return times


def open_predictor(
    path: str | Path,
    *,
    variant: str = "auto",
    threads: int | None = None,
    device: str = "cpu",
    options: LoadOptions | None = None,
    ort_settings: OrtSettings | None = None,
) -> Predictor:
    """A predictor for a PyTorch model directory (or Hub id), a kdcli export dir or an .onnx file.

    `variant` picks the file of an export dir: "auto" (int8 when the dir has one, else fp32),
    "fp32" (`model.onnx`) or "int8" (`model_quantized.onnx`). `threads` caps the CPU threads
    (None: the runtime's default). `device` applies to PyTorch models; ONNX runs on the CPU.
    `ort_settings` overrides kdcli's ONNX Runtime session choices.
    """
    check_choice("variant", variant, VARIANTS)
    check_int("threads", threads, optional=True)
    onnx_file = export_file(path, variant)
    if onnx_file is not None:
        return OnnxPredictor(onnx_file, threads=threads, settings=ort_settings or OrtSettings())
    if variant != "auto":
        raise KdcliError(
            f"{path} is not a kdcli export (no {ONNX_FILE}): variant {variant!r} applies to "
            "export directories; leave it at 'auto' for PyTorch models"
        )
    return TorchPredictor(path, threads=threads, device=device, options=options)


def export_file(reference: str | Path, variant: str = "auto") -> Path | None:
    """The .onnx file a model reference names when it is a kdcli export: the file itself, or
    the one of an export directory that `variant` asks for (auto: int8 when there is one).
    None means a PyTorch model (a model directory or Hub id); anything else is an error."""
    path = Path(str(reference)).expanduser()
    if path.suffix == ".onnx" and not path.is_file():
        raise KdcliError(f"{reference} does not exist: pass an .onnx file written by kdcli export")
    if not path.exists():
        return None
    onnx_file = _onnx_file(path, variant)
    if onnx_file is None and path.is_dir() and not (path / "config.json").is_file():
        raise KdcliError(
            f"{reference} is neither a model directory (config.json and weights) nor a kdcli "
            f"export ({ONNX_FILE})",
            fix="pass a directory written by save_pretrained or kdcli, or a Hub model id",
        )
    return onnx_file


def onnx_kind(onnx_file: Path) -> PredictorKind:
    """ "onnx-int8" for a quantized file of an export, else "onnx"."""
    return "onnx-int8" if onnx_file.stem.endswith("quantized") else "onnx"


def _onnx_file(path: Path, variant: str) -> Path | None:
    """The .onnx file `path` names, or the one of an export dir that `variant` asks for."""
    if path.is_file():
        if path.suffix != ".onnx":
            raise KdcliError(
                f"{path} is a file but not an .onnx model: pass a model directory, a kdcli "
                "export directory or an .onnx file"
            )
        return path
    fp32, int8 = path / ONNX_FILE, path / ONNX_INT8_FILE
    if variant == "int8" and not int8.is_file():
        if fp32.is_file():
            raise KdcliError(
                f"{path} has no {ONNX_INT8_FILE}: export it with {option_ref('quantize')} int8, "
                "or use variant 'fp32'"
            )
        return None
    if variant == "fp32" and not fp32.is_file():
        return None
    if variant in ("int8", "auto") and int8.is_file():
        return int8
    return fp32 if fp32.is_file() else None


class TorchPredictor(Predictor):
    """A Hugging Face sequence- or token-classification model, run in float32."""

    def __init__(
        self,
        source: str | Path,
        threads: int | None = None,
        device: str = "cpu",
        options: LoadOptions | None = None,
    ) -> None:
        from kdcli.files.model_dirs import head_kind

        options = options or LoadOptions()
        ref = resolve_model(str(source), options)
        config = read_config_dict(ref)
        self.head = head_kind(config, ref.name)
        self.token_limit = model_token_limit(config)
        if self.head == "encoder":
            raise KdcliError(
                f"{ref.name} has no classification head (architectures: "
                f"{config.get('architectures')}): fine-tune it first (kdcli finetune)"
            )
        self.ref = ref
        self.name = ref.name
        self.path = ref.path
        self.kind = "pytorch"
        self.threads = threads
        self.device = device
        self.model = _load_torch_model(ref, self.head, options, device)
        self.tokenizer = load_tokenizer_from(ref.path, ref.name, options.trust_remote_code)
        self.id2label = dict(enumerate(model_labels(self.model)))
        self.num_parameters = sum(p.numel() for p in self.model.parameters())
        self.size_bytes = sum(f.stat().st_size for f in weight_files(ref, options.allow_pickle))
        self._input_names = model_inputs(self.model.forward, self.tokenizer)

    def forward(self, inputs: Batch) -> np.ndarray:
        import torch

        tensors = {
            name: torch.from_numpy(inputs[name]).to(self.device) for name in self._input_names
        }
        with torch_threads(self.threads), torch.inference_mode():
            return self.model(**tensors).logits.float().cpu().numpy()


def _load_torch_model(ref: ModelRef, head: str, options: LoadOptions, device: str) -> Any:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    factory = (
        AutoModelForTokenClassification
        if head == "token-classification"
        else AutoModelForSequenceClassification
    )
    files = weight_files(ref, options.allow_pickle)
    try:
        with quiet_transformers():
            model = factory.from_pretrained(
                ref.path,
                use_safetensors=files[0].suffix == ".safetensors",
                trust_remote_code=options.trust_remote_code,
                dtype=torch.float32,
            )
        return model.to(device).eval()
    except Exception as err:  # transformers raises many types for unloadable models
        if "trust_remote_code" in str(err):
            raise KdcliError(remote_code_refusal(ref.name)) from err
        raise KdcliError(f"cannot load model {ref.name}: {one_line(err)}") from err


class OnnxPredictor(Predictor):
    """An ONNX classifier (kdcli export layout) run with ONNX Runtime on the CPU."""

    def __init__(
        self,
        onnx_file: Path,
        threads: int | None = None,
        settings: OrtSettings | None = None,
    ) -> None:
        ort = import_onnxruntime()
        folder = onnx_file.parent
        self.path = folder
        self.onnx_file = onnx_file
        self.name = str(folder) if onnx_file.name in (ONNX_FILE, ONNX_INT8_FILE) else str(onnx_file)
        self.kind = onnx_kind(onnx_file)
        self.threads = threads
        self.settings = settings or OrtSettings()
        # whether int8 products run on ONNX Runtime's exact u8*u8 kernels (OrtSettings.exact_int8)
        self.exact_int8 = (
            self.kind == "onnx-int8" and self.settings.exact_int8 and saturating_int8(folder)
        )
        self.session = _session(ort, onnx_file, threads, self.settings, self.exact_int8)
        self.tokenizer = load_tokenizer_from(folder, str(folder))
        self.id2label = _export_labels(folder, self.session)
        self.token_limit = model_token_limit(read_config_dict(ModelRef(str(folder), folder)))
        output = self.session.get_outputs()[0]
        self.head = "token-classification" if len(output.shape) == 3 else "sequence-classification"
        self.size_bytes = onnx_size(onnx_file)
        self._graph_inputs = {i.name: i.type for i in self.session.get_inputs()}
        unknown = sorted(set(self._graph_inputs) - set(MODEL_INPUTS))
        if unknown:
            raise KdcliError(
                f"{onnx_file} takes inputs {unknown} that a tokenizer does not make: kdcli runs "
                f"encoder classifiers with inputs {', '.join(MODEL_INPUTS)}"
            )
        self._input_names = tuple(n for n in MODEL_INPUTS if n in self._graph_inputs)

    @functools.cached_property
    def num_parameters(self) -> int:  # type: ignore[override]
        """Weights stored in the graph (int8 ones included), read on first use."""
        return onnx_parameters(self.onnx_file)

    def forward(self, inputs: Batch) -> np.ndarray:
        import numpy as np

        feeds = {}
        for name in self._input_names:
            value = inputs.get(name)
            if value is None:  # e.g. token_type_ids the tokenizer does not make: one segment
                value = np.zeros_like(inputs["input_ids"])
            dtype = np.int32 if self._graph_inputs[name] == "tensor(int32)" else np.int64
            feeds[name] = value.astype(dtype, copy=False)
        return self.session.run(None, feeds)[0]


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as err:
        raise KdcliError(
            f"onnxruntime is not installed, and ONNX models need it: {EXPORT_EXTRA}"
        ) from err
    return onnxruntime


# How kdcli runs an 8-bit int8 file where u8*s8 products can saturate, as users are told to serve
# it (the export's note and eval's warning say the same).
EXACT_INT8_KERNELS = (
    "ONNX Runtime's exact u8*u8 kernels (session option session.x64quantprecision=1, about 10% "
    "slower)"
)


def saturating_int8(folder: Path) -> bool:
    """Whether this CPU's u8*s8 kernels can saturate on the int8 file in `folder`: x86 without
    VNNI, and weights not recorded as 7-bit (a file from elsewhere may use all 8 bits)."""
    from kdcli.runtime.onnx_graph import cpu_int8

    if not cpu_int8().reduce_range:
        return False
    try:
        record = read_provenance(folder) or {}
    except KdcliError:
        record = {}
    quantization = record.get("quantization")
    return not (isinstance(quantization, dict) and quantization.get("reduce_range") is True)


def session_options(threads: int | None, settings: OrtSettings, exact_int8: bool = False) -> Any:
    """kdcli's ONNX Runtime session options (`OrtSettings`), for `threads` CPU threads;
    `exact_int8` selects the u8*u8 int8 kernels, which cannot saturate."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.inter_op_num_threads = 1  # encoder graphs are one chain: parallel ops never pay
    if threads is not None:
        options.intra_op_num_threads = threads
    if not settings.spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if exact_int8:
        options.add_session_config_entry("session.x64quantprecision", "1")
    options.log_severity_level = 3
    return options


def _session(
    ort: Any, onnx_file: Path, threads: int | None, settings: OrtSettings, exact_int8: bool
) -> Any:
    try:
        return ort.InferenceSession(
            str(onnx_file),
            session_options(threads, settings, exact_int8),
            providers=["CPUExecutionProvider"],
            disabled_optimizers=list(settings.disabled_optimizers),
        )
    except Exception as err:  # ORT raises its own exception types for unreadable graphs
        raise KdcliError(
            f"ONNX Runtime cannot open {onnx_file}: {one_line(err)} (export it again with "
            "kdcli export)"
        ) from err


def onnx_size(onnx_file: Path) -> int:
    """Bytes of an .onnx file and of its external weight file, if it has one."""
    size = onnx_file.stat().st_size
    for suffix in (".data", "_data"):
        data = onnx_file.with_name(onnx_file.name + suffix)
        if data.is_file():
            size += data.stat().st_size
    return size


def onnx_parameters(onnx_file: Path) -> int:
    """Elements of the graph's float and 8-bit tensors: its weights, int8 ones counted once
    each. Scalars (constants the exporter folded), integer shape constants and the scales and
    zero points the quantizers add are not weights."""
    import onnx

    from kdcli.runtime.onnx_graph import ROW_SCALES

    weight_types = {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.BFLOAT16,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.INT8,
        onnx.TensorProto.UINT8,
    }
    graph = onnx.load(str(onnx_file), load_external_data=False).graph
    return sum(
        math.prod(init.dims)
        for init in graph.initializer
        if init.dims
        and init.data_type in weight_types
        and not init.name.endswith(("_scale", "_zero_point", ROW_SCALES))
    )


def export_config(folder: Path, name: str) -> dict[str, Any]:
    """The config.json of an export directory: where its labels are."""
    if not (folder / "config.json").is_file():
        raise KdcliError(
            f"{name} has no config.json, so its labels are unknown",
            fix="copy the source model's config.json into it (kdcli export writes one)",
        )
    return read_config_dict(ModelRef(name, folder))


def _export_labels(folder: Path, session: Any) -> dict[int, str]:
    data = export_config(folder, str(folder))
    if not data.get("id2label"):
        width = session.get_outputs()[0].shape[-1]
        count = width if isinstance(width, int) else int(data.get("num_labels", 2))
        return {i: f"LABEL_{i}" for i in range(count)}
    return dict(enumerate(label_names(data)))


def _gather_tokens(outputs: list[tuple[EncodedBatch, np.ndarray]], count: int) -> np.ndarray:
    """Per-token logits of every text, left-aligned, NaN where a text has no more tokens."""
    import numpy as np

    longest = max(batch.inputs["attention_mask"].shape[1] for batch, _ in outputs)
    labels = outputs[0][1].shape[-1]
    result = np.full((count, longest, labels), np.nan, dtype=np.float32)
    for batch, logits in outputs:
        mask = batch.inputs["attention_mask"].astype(bool)
        for row, position in enumerate(batch.index):
            tokens = logits[row][mask[row]]
            result[position, : len(tokens)] = tokens
    return result


def _check_batching(batch_size: int, max_length: int) -> None:
    check_int("batch_size", batch_size)
    check_max_length(max_length)
