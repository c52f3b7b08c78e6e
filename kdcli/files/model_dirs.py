"""Finding, opening and saving model directories, safely.

A model reference is a local directory or a Hugging Face Hub id. Weights are read from safetensors;
a pickle checkpoint (`pytorch_model.bin`) is only opened when the user passes `--allow-pickle`, and
then with `weights_only=True`. Remote code (a model's own Python files) never runs: kdcli has no
option to allow it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kdcli.core.errors import KdcliError, one_line, option_ref
from kdcli.files.tensor_stream import Checkpoint, PickleCheckpoint, SafetensorsFile

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "sentencepiece.bpe.model",
    "spm.model",
    "tokenizer.model",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)
# The head a checkpoint has, from its config's `architectures` (pre-training heads count as none).
HeadKind = Literal["sequence-classification", "token-classification", "encoder"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_HUB_PATTERNS = [
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*.safetensors",
    *TOKENIZER_FILES,
]


@dataclass(frozen=True)
class ModelRef:
    """A model as the user named it, resolved to a local directory of files."""

    name: str
    path: Path
    repo_id: str | None = None
    revision: str | None = None

    def describe(self, out: Path) -> dict[str, Any]:
        """How the kdcli.json of output `out` records this model: hub id and commit, or the
        folder's name, its path relative to `out` and its absolute path."""
        from kdcli.files.provenance import describe_local

        if self.repo_id:
            return {"model": self.repo_id, "revision": self.revision}
        return describe_local(self.path, out)


@dataclass(frozen=True)
class LoadOptions:
    """Options every command that reads a model shares (`--revision`, `--allow-pickle`, ...)."""

    revision: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    extra_patterns: tuple[str, ...] = field(default_factory=tuple)


def resolve_model(name: str | Path, options: LoadOptions | None = None) -> ModelRef:
    """A local model directory, or a Hub repository downloaded (or found in the cache)."""
    options = options or LoadOptions()
    text = str(name)
    path = Path(text).expanduser()
    if path.exists():
        return ModelRef(text, _check_model_dir(path))
    if text.startswith((".", "/", "~")) or text.endswith(os.sep) or not _HUB_ID.match(text):
        raise KdcliError(
            f"model directory {text} does not exist: pass an existing directory or a Hub model id"
        )
    return _download(text, options)


def _check_model_dir(path: Path) -> Path:
    if not path.is_dir():
        raise KdcliError(f"{path} is not a directory: pass a Hugging Face model directory")
    if not (path / "config.json").is_file():
        raise KdcliError(
            f"{path} is not a model directory (no config.json): pass a directory written by "
            "save_pretrained or kdcli, or a Hub model id"
        )
    return path


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars: kdcli reports what matters
    (a new head, a replaced head) itself, and the CLI draws its own progress."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE keeps the Hugging Face libraries offline, read as they read it."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


@contextlib.contextmanager
def quiet_hub() -> Iterator[None]:
    """huggingface_hub logs every retry of an unreachable Hub ("Retrying in 1s [Retry 1/5]"):
    kdcli says in one line what failed and what to do, so those lines only bury it."""
    hub = logging.getLogger("huggingface_hub")
    level = hub.level
    hub.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        hub.setLevel(level)


def _download(repo_id: str, options: LoadOptions) -> ModelRef:
    from huggingface_hub import snapshot_download

    patterns = [*_HUB_PATTERNS, *options.extra_patterns]
    if options.allow_pickle:
        patterns += ["pytorch_model.bin", "pytorch_model.bin.index.json", "pytorch_model-*.bin"]
    try:
        with quiet_hub():
            found = snapshot_download(repo_id, revision=options.revision, allow_patterns=patterns)
        local = Path(found)
    except Exception as err:  # hub errors come in many types; all mean "could not get it"
        hint = (
            "HF_HUB_OFFLINE is set and the model is not in the local cache: download it once "
            "with network, or pass a local directory"
            if hub_offline()
            else f"check the model id and {option_ref('revision')}, your network, or set "
            "HF_HUB_OFFLINE=1 to "
            "use a cached copy, or pass a local directory"
        )
        raise KdcliError(f"cannot get model {repo_id!r} from the Hugging Face Hub: {hint}") from err
    revision = local.name if re.fullmatch(r"[0-9a-f]{40}", local.name) else options.revision
    return ModelRef(repo_id, _check_model_dir(local), repo_id=repo_id, revision=revision)


def read_config_dict(ref: ModelRef) -> dict[str, Any]:
    path = ref.path / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise KdcliError(f"{path} is not valid JSON: {one_line(err)}") from err
    if not isinstance(data, dict) or "model_type" not in data:
        raise KdcliError(f"{path} has no model_type: it is not a transformers model config")
    return data


def head_kind(config: dict[str, Any], source: str) -> HeadKind:
    """What task head the model has, from `architectures` in its config."""
    names = config.get("architectures") or []
    if not names:
        return "encoder"
    name = names[0]
    if name.endswith("ForSequenceClassification"):
        return "sequence-classification"
    if name.endswith("ForTokenClassification"):
        return "token-classification"
    if name.endswith(("Model", "ForMaskedLM", "ForPreTraining", "ForPretraining")):
        return "encoder"
    raise KdcliError(
        f"{source}: the {name} head is not supported; kdcli keeps sequence- and "
        "token-classification heads, and drops pre-training heads of bare encoders"
    )


def label_names(config: dict[str, Any]) -> list[str]:
    """A classifier's label names in id order, from its config.json (none for an encoder)."""
    id2label = config.get("id2label") or {}
    return [str(id2label[key]) for key in sorted(id2label, key=int)]


def model_labels(model: PreTrainedModel) -> list[str]:
    """A loaded classifier's label names in the order of its head's outputs."""
    return label_names({"id2label": model.config.id2label})


# Families whose position ids start after the padding index (RoBERTa's scheme): a model with
# max_position_embeddings P takes P - (pad_token_id + 1) tokens.
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "camembert", "xlm-roberta-xl", "longformer")


def token_limit(config: dict[str, Any]) -> int | None:
    """How many tokens (special ones included) the model's position embeddings take; None when
    config.json does not say. A longer input fails inside the model ("index out of bounds")."""
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or isinstance(positions, bool) or positions < 2:
        return None
    if config.get("model_type") in _OFFSET_POSITIONS:
        pad = config.get("pad_token_id")
        positions -= (pad if isinstance(pad, int) and pad >= 0 else 1) + 1
    return max(positions, 2)


def clamp_max_length(requested: int, configs: dict[str, dict[str, Any]]) -> tuple[int, str | None]:
    """`--max-length` cut to what every model (name -> config.json) takes, and a note when it
    was cut."""
    limits = {name: limit for name, cfg in configs.items() if (limit := token_limit(cfg))}
    if not limits or requested <= min(limits.values()):
        return requested, None
    name = min(limits, key=lambda n: limits[n])
    return limits[name], (
        f"--max-length {requested} is more than {name} takes ({limits[name]} tokens, from its "
        f"max_position_embeddings): texts are cut at {limits[name]} tokens"
    )


def weight_files(ref: ModelRef, allow_pickle: bool = False) -> list[Path]:
    """The checkpoint files of a model directory, safetensors first."""
    root = ref.path
    if (root / "model.safetensors").is_file():
        return [root / "model.safetensors"]
    if (root / "model.safetensors.index.json").is_file():
        return _shards(root / "model.safetensors.index.json")
    pickles = [root / "pytorch_model.bin.index.json", root / "pytorch_model.bin"]
    found = next((p for p in pickles if p.is_file()), None)
    if found is None and _is_export(root):
        raise KdcliError(
            f"{ref.name} is a kdcli export (ONNX, no PyTorch weights), which only kdcli eval "
            f"reads: pass the PyTorch model it was exported from{_export_source(root)}"
        )
    if found is None:
        raise KdcliError(
            f"{root} holds no weights (model.safetensors or a sharded index): "
            "save the model with save_pretrained first"
        )
    if not allow_pickle:
        raise KdcliError(
            f"{root} has only a pickle checkpoint ({found.name}), which can run code when "
            f"loaded: convert it to safetensors, or pass {option_ref('allow_pickle')} if you "
            "trust it "
            "(it is then loaded with weights_only=True)"
        )
    return _shards(found) if found.suffix == ".json" else [found]


def _is_export(root: Path) -> bool:
    return (root / "model.onnx").is_file() or (root / "model_quantized.onnx").is_file()


def _export_source(root: Path) -> str:
    """`, X` where X is the source its kdcli.json names, if it names one."""
    from kdcli.files.provenance import read_provenance, recorded_model

    try:
        source = recorded_model(read_provenance(root), "source", root)
    except KdcliError:
        return ""
    return f", {source}" if source else ""


def _shards(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise KdcliError(f"{index} is not a valid shard index: save the model again") from err
    files = sorted({index.parent / name for name in weight_map.values()})
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise KdcliError(f"{index.parent} is missing shards {missing}: download them again")
    return files


def open_checkpoint(ref: ModelRef, allow_pickle: bool = False) -> Checkpoint:
    """All of a model's weights behind one tensor-by-tensor reader."""
    files = weight_files(ref, allow_pickle)
    readers = [
        SafetensorsFile(f) if f.suffix == ".safetensors" else PickleCheckpoint(f) for f in files
    ]
    return Checkpoint(readers)


def content_hash(files: list[Path]) -> str:
    """sha256 over the weight files, in order: identifies exactly which weights were used."""
    digest = hashlib.sha256()
    for path in files:
        with path.open("rb") as handle:
            while block := handle.read(8 * 1024 * 1024):
                digest.update(block)
    return digest.hexdigest()


def copy_tokenizer_files(ref: ModelRef, out_dir: Path) -> list[str]:
    """Copy whatever tokenizer files the source has, byte for byte."""
    copied = []
    for name in TOKENIZER_FILES:
        if (ref.path / name).is_file():
            shutil.copyfile(ref.path / name, out_dir / name)
            copied.append(name)
    return copied


def load_tokenizer(ref: ModelRef, options: LoadOptions | None = None) -> PreTrainedTokenizerBase:
    options = options or LoadOptions()
    return load_tokenizer_from(ref.path, ref.name, options.trust_remote_code)


def check_tokenizer_files(folder: Path, name: str) -> None:
    """A clear error when a model folder has no tokenizer files."""
    if not any((folder / f).is_file() for f in TOKENIZER_FILES):
        raise KdcliError(
            f"{name} has no tokenizer files ({', '.join(TOKENIZER_FILES[:2])}, ...)",
            fix="copy the source model's tokenizer files into it",
        )


def load_tokenizer_from(
    folder: Path, name: str, trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    """The tokenizer saved beside a model; a clear error when its files are missing."""
    from transformers import AutoTokenizer

    check_tokenizer_files(folder, name)
    try:
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except Exception as err:  # transformers raises OSError/ValueError/... for broken files
        if _needs_remote_code(err):
            raise KdcliError(remote_code_refusal(name)) from err
        raise KdcliError(
            f"cannot load the tokenizer of {name}: {one_line(err)} (copy the source model's "
            "tokenizer files into it)"
        ) from err


def classifier_class(ref: ModelRef) -> Any:
    """The class `load_classifier` builds for `ref` (its `forward` says which inputs it takes),
    found from config.json alone, without loading weights."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    try:
        return MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(AutoConfig.from_pretrained(ref.path))]
    except (KeyError, ValueError, OSError) as err:
        raise KdcliError(
            f"{ref.name}: transformers has no sequence-classification model for it "
            f"({one_line(err)}): use a model type kdcli supports"
        ) from err


def load_classifier(
    ref: ModelRef,
    options: LoadOptions | None = None,
    token: bool = False,
    **kwargs: Any,
) -> PreTrainedModel:
    """A sequence (or with `token`, token) classification model; a bare encoder gets a fresh
    head (num_labels in kwargs)."""
    return load_classifier_reporting(ref, options, token, **kwargs)[0]


def load_classifier_reporting(
    ref: ModelRef,
    options: LoadOptions | None = None,
    token: bool = False,
    **kwargs: Any,
) -> tuple[PreTrainedModel, dict[str, Any]]:
    """`load_classifier`, and what transformers reports on the weights it loaded
    (`missing_keys`, `unexpected_keys`, `mismatched_keys`)."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    options = options or LoadOptions()
    files = weight_files(ref, options.allow_pickle)
    factory = AutoModelForTokenClassification if token else AutoModelForSequenceClassification
    try:
        model, info = factory.from_pretrained(
            ref.path,
            use_safetensors=files[0].suffix == ".safetensors",
            trust_remote_code=options.trust_remote_code,
            output_loading_info=True,
            **kwargs,
        )
        return model, info
    except KdcliError:
        raise
    except Exception as err:
        if _needs_remote_code(err):
            raise KdcliError(remote_code_refusal(ref.name)) from err
        raise KdcliError(f"cannot load model {ref.name}: {one_line(err)}") from err


def _needs_remote_code(err: BaseException) -> bool:
    """transformers refuses a model whose code lives in its repository, telling the caller to
    pass trust_remote_code=True."""
    return "trust_remote_code" in str(err)


def remote_code_refusal(name: str) -> str:
    """The refusal of a model that needs its own code (kdcli runs no downloaded code)."""
    return (
        f"{name} needs Python code from its own repository to load (config.json auto_map), and "
        "kdcli never runs downloaded code: use a model whose architecture transformers includes "
        "(BERT, XLM-R, DistilBERT, DeBERTa-v2, ELECTRA, ModernBERT, ...)"
    )
