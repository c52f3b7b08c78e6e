"""The teacher-output cache: the teacher's logits (and the hidden states the hidden-state loss
needs) for the whole training set, computed once and reused across epochs and across runs.

The teacher runs in eval mode (no dropout) and never trains, so its outputs for an example do not
change between epochs: recomputing them every step, as a plain distillation loop does, is wasted
work. The cache is keyed by what determines the outputs exactly: the teacher's weights and config
(content hashes), the token ids it reads (so the data, the tokenizer and --max-length are all in
the key), the layers kept and the precision. Files live under `--cache-dir` (default
`$KDCLI_CACHE`, else `~/.cache/kdcli`) as `teacher-outputs/<key>.safetensors`: logits in float32;
hidden states of real tokens only, in float16 to halve their size.

For token classification the cache holds the teacher's logits *per word* (the logits of each
word's token, NaN where the teacher's tokenizer gave a word no token), so a student with another
tokenizer is distilled word by word; the words' split is part of the key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from kdcli.core.errors import (
    DiskFullError,
    KdcliError,
    disk_full_message,
    option_ref,
)
from kdcli.core.formatting import size_text
from kdcli.core.progress import ProgressCallback, report
from kdcli.data.batching import Encoded, collate, sorted_batches
from kdcli.files.model_dirs import model_labels
from kdcli.files.outputs import atomic_file

if TYPE_CHECKING:
    from transformers import PreTrainedModel

LOG = logging.getLogger(__name__)
CACHE_VERSION = 1
CACHE_ENV = "KDCLI_CACHE"
HIDDEN_DTYPE = torch.float16


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "kdcli")


@dataclass
class TeacherOutputs:
    """Teacher logits [examples, labels] and, per teacher layer, the hidden states of every
    real token of every example, concatenated ([tokens, width]; example i is rows
    offsets[i]:offsets[i + 1]). Token classification: `logits` are per word [words, labels],
    example i's words are rows word_offsets[i]:word_offsets[i + 1]."""

    logits: torch.Tensor
    hidden: dict[int, torch.Tensor]
    offsets: torch.Tensor | None
    word_offsets: torch.Tensor | None = None

    def word_batch(
        self, indices: Sequence[int], student: Encoded
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(batch rows, student token positions, teacher logits) of every word of `indices`
        that has a token in both the student's encoding and the teacher's."""
        assert self.word_offsets is not None and student.word_tokens is not None
        rows, positions, teacher_rows = [], [], []
        for row, index in enumerate(indices):
            start = int(self.word_offsets[index])
            for word, position in enumerate(student.word_tokens[index]):
                if position >= 0:
                    rows.append(row)
                    positions.append(position)
                    teacher_rows.append(start + word)
        logits = self.logits[torch.tensor(teacher_rows, dtype=torch.long)]
        keep = ~torch.isnan(logits).any(-1)
        return (
            torch.tensor(rows, dtype=torch.long)[keep],
            torch.tensor(positions, dtype=torch.long)[keep],
            logits[keep],
        )

    def hidden_batch(self, layer: int, indices: Sequence[int], width: int) -> torch.Tensor:
        """[batch, width, hidden] for `indices`, zero-padded to `width` tokens, as float32."""
        states = self.hidden[layer]
        assert self.offsets is not None
        out = torch.zeros((len(indices), width, states.shape[-1]), dtype=torch.float32)
        for row, index in enumerate(indices):
            start, end = int(self.offsets[index]), int(self.offsets[index + 1])
            out[row, : end - start] = states[start:end].float()
        return out


@dataclass(frozen=True)
class CacheKey:
    """Everything that determines the teacher's outputs."""

    teacher_sha256: str
    teacher_config_sha256: str
    input_ids_sha256: str
    layers: tuple[int, ...]
    bf16: bool
    words_sha256: str | None = None  # token classification: how the texts split into words

    def digest(self) -> str:
        fields = {k: v for k, v in self.__dict__.items() if v is not None}
        text = json.dumps({"version": CACHE_VERSION, **fields}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


def words_hash(words: Sequence[Sequence[str]]) -> str:
    digest = hashlib.sha256()
    for row in words:
        digest.update("\x1f".join(row).encode("utf-8") + b"\x1e")
    return digest.hexdigest()


def ids_hash(encoded: Encoded) -> str:
    """sha256 of the token ids, example by example (lengths included, so rows cannot merge)."""
    digest = hashlib.sha256()
    for row in encoded.input_ids:
        digest.update(len(row).to_bytes(4, "little"))
        digest.update(array("q", row).tobytes())
    return digest.hexdigest()


def cache_path(cache_dir: Path, key: CacheKey) -> Path:
    return Path(cache_dir) / "teacher-outputs" / f"{key.digest()}.safetensors"


def check_cache_dir(cache_dir: Path) -> None:
    """Fail early when the cache folder could not be created or written (creates nothing)."""
    existing = _existing(cache_dir)
    if not existing.is_dir():
        raise KdcliError(
            f"cannot be created ({existing} is a file)",
            option="cache_dir",
            value=Path(cache_dir),
            fix=f"choose a folder with {option_ref('cache_dir')} or {CACHE_ENV}",
        )
    if not os.access(existing, os.W_OK):
        raise KdcliError(
            f"is not writable ({existing})",
            option="cache_dir",
            value=Path(cache_dir),
            fix=f"choose another folder with {option_ref('cache_dir')} or {CACHE_ENV}",
        )


def _existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists."""
    existing = Path(path).absolute()
    while not existing.exists():
        existing = existing.parent
    return existing


def load(path: Path) -> TeacherOutputs | None:
    """The cached outputs, or None when there are none (or the file is unreadable)."""
    from safetensors.torch import load_file

    if not path.is_file():
        return None
    try:
        tensors = load_file(path)
    except Exception as err:  # a damaged file is recomputed, never trusted
        LOG.warning("ignoring unreadable teacher cache %s: %s", path, err)
        return None
    hidden = {
        int(name.split(".", 1)[1]): t for name, t in tensors.items() if name.startswith("hidden.")
    }
    return TeacherOutputs(
        tensors["logits"], hidden, tensors.get("offsets"), tensors.get("word_offsets")
    )


def compute(
    teacher: PreTrainedModel,
    encoded: Encoded,
    layers: Sequence[int],
    batch_size: int,
    device: torch.device,
    bf16: bool,
    progress: ProgressCallback | None = None,
) -> TeacherOutputs:
    """Run the teacher (eval mode, no gradients) over length-sorted batches of `encoded`;
    with `encoded.word_tokens` (token classification) keep each word's logits."""
    lengths = encoded.lengths()
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(torch.tensor(lengths, dtype=torch.long), 0)
    num_labels = len(model_labels(teacher))
    width = int(teacher.config.hidden_size)
    word_offsets = None
    if encoded.word_tokens is not None:
        counts = torch.tensor([len(w) for w in encoded.word_tokens], dtype=torch.long)
        word_offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
        word_offsets[1:] = torch.cumsum(counts, 0)
        logits = torch.full((int(word_offsets[-1]), num_labels), math.nan, dtype=torch.float32)
    else:
        logits = torch.empty((len(lengths), num_labels), dtype=torch.float32)
    hidden = {layer: torch.empty((int(offsets[-1]), width), dtype=HIDDEN_DTYPE) for layer in layers}
    teacher.eval()
    batches = sorted_batches(lengths, batch_size)
    with torch.no_grad():
        for done, indices in enumerate(batches, start=1):
            batch = {k: v.to(device) for k, v in collate(encoded, indices).items()}
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                out = teacher(**batch, output_hidden_states=bool(layers))
            if word_offsets is not None:
                _keep_word_logits(out.logits.float().cpu(), encoded, indices, word_offsets, logits)
            else:
                logits[indices] = out.logits.float().cpu()
            for layer in layers:
                states = out.hidden_states[layer + 1].to("cpu", HIDDEN_DTYPE)
                for row, index in enumerate(indices):
                    start, end = int(offsets[index]), int(offsets[index + 1])
                    hidden[layer][start:end] = states[row, : end - start]
            report(progress, "teacher outputs", done, len(batches))
    return TeacherOutputs(logits, hidden, offsets if layers else None, word_offsets)


def _keep_word_logits(
    batch_logits: torch.Tensor,
    encoded: Encoded,
    indices: Sequence[int],
    word_offsets: torch.Tensor,
    out: torch.Tensor,
) -> None:
    """Copy each word's token logits of a batch into `out` (words without a token stay NaN)."""
    assert encoded.word_tokens is not None
    for row, index in enumerate(indices):
        start = int(word_offsets[index])
        for word, position in enumerate(encoded.word_tokens[index]):
            if position >= 0:
                out[start + word] = batch_logits[row, position]


def save(outputs: TeacherOutputs, path: Path, key: CacheKey) -> None:
    """Write atomically, so a concurrent or killed run never reads half a file."""
    from safetensors.torch import save_file

    tensors = {"logits": outputs.logits.contiguous()}
    for layer, states in outputs.hidden.items():
        tensors[f"hidden.{layer}"] = states.contiguous()
    if outputs.offsets is not None:
        tensors["offsets"] = outputs.offsets.contiguous()
    if outputs.word_offsets is not None:
        tensors["word_offsets"] = outputs.word_offsets.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"kdcli_cache_version": str(CACHE_VERSION), "key": json.dumps(key.__dict__)}
    try:
        with atomic_file(path) as tmp:
            save_file(tensors, tmp, metadata=metadata)
    except DiskFullError as err:
        where = disk_full_message(path.parent, " (saving the teacher outputs)")
        raise DiskFullError(f"{where}; or choose another {option_ref('cache_dir')}") from err


def check_space(cache_dir: Path, examples: int, labels: int, tokens: int, widths: int) -> None:
    """Refuse early when the cache cannot fit on the disk (hidden states can be large)."""
    needed = examples * labels * 4 + tokens * widths * 2 + (examples + 1) * 8
    free = shutil.disk_usage(_existing(cache_dir)).free
    if needed > free:
        raise KdcliError(
            f": the teacher outputs need {size_text(needed)} but only {size_text(free)} are free",
            option="cache_dir",
            value=Path(cache_dir),
            fix=f"choose another {option_ref('cache_dir')}, or lower "
            f"{option_ref('max_length')} or the data size (hidden states are the large part)",
        )


def describe(key: CacheKey) -> dict[str, Any]:
    return {"key": key.digest(), **key.__dict__, "layers": list(key.layers)}
