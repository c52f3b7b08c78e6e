"""Tiny models and options for the training tests (finetune, distill, the loop).

The models are built once per test session and shared by every test file: a 4-layer XLM-R-style
encoder with a Unigram tokenizer trained on the fixture's own texts, a teacher fine-tuned from it
on `tests/data/massive-mini`, and a 2-layer copy-weight student of that teacher.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DATA = Path(__file__).parent / "data"
MINI = DATA / "massive-mini"
# Settings under which the tiny models learn within a few epochs (the study's lr 5e-5 is for
# pretrained base-size encoders, not 64-wide random ones).
FAST = {"lr": 3e-3, "weight_decay": 0.0, "batch_size": 8}


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Tiny models train many times faster on one thread, and far more steadily on a machine
    whose cores other processes share (two threads wait on each other at every op)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fixture_texts() -> list[str]:
    files = sorted((MINI / "data").glob("*.jsonl"))
    return [json.loads(line)["utt"] for f in files for line in f.read_text("utf-8").splitlines()]


def make_encoder(path: Path, layers: int = 4, hidden: int = 64, **kwargs: Any) -> Path:
    """A bare XLM-R-style encoder (no head) whose tokenizer knows the fixture's scripts."""
    from factories import make_model_dir, make_tokenizer

    tokenizer = make_tokenizer("unigram-roberta", fixture_texts(), vocab_size=400)
    return make_model_dir(
        path,
        "xlm-roberta",
        head="encoder",
        tokenizer=tokenizer,
        layers=layers,
        hidden=hidden,
        heads=4,
        intermediate=2 * hidden,
        **kwargs,
    )


def train_config(**overrides: Any) -> Any:
    from kdcli.training.loop import TrainConfig

    return TrainConfig(**{**FAST, **overrides})


@dataclass
class Models:
    root: Path
    encoder: Path
    teacher: Path
    student: Path
    teacher_accuracy: float


_SHARED: dict[str, Models] = {}


def shared_models(factory: pytest.TempPathFactory) -> Models:
    """Build (once per session) the encoder, a fine-tuned teacher and its copy-weight student."""
    if "models" not in _SHARED:
        with one_thread():
            _SHARED["models"] = _build_models(factory)
    return _SHARED["models"]


def _build_models(factory: pytest.TempPathFactory) -> Models:
    from kdcli.steps.finetune import FinetuneConfig, finetune
    from kdcli.steps.shrink import ShrinkConfig, shrink

    root = factory.mktemp("training-models")
    encoder = make_encoder(root / "encoder")
    teacher = root / "teacher"
    result = finetune(FinetuneConfig(str(encoder), str(MINI), teacher, train_config(epochs=5)))
    student = root / "student"
    shrink(ShrinkConfig(str(teacher), out=student, num_layers=2))
    return Models(root, encoder, teacher, student, result.training.dev_accuracy)


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file in an output folder (tensorboard logs and the like excluded)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).iterdir())
        if p.is_file()
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path
