from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def make_teacher(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build (once per session) a tiny random model directory: make_teacher("bert", head=...)."""
    from factories import make_model_dir

    cache: dict[tuple[Any, ...], Path] = {}

    def build(family: str, **kwargs: Any) -> Path:
        key = (family, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
        if key not in cache:
            folder = tmp_path_factory.mktemp(f"teacher-{family}")
            cache[key] = make_model_dir(folder / "model", family, **kwargs)
        return cache[key]

    return build


@pytest.fixture
def cli() -> Callable[..., Any]:
    """Run `kdcli ARGS...` in-process and return click's Result (stdout, stderr, exit_code).

    kdcli turns Ctrl-C into exit code 130; in-process, that would hide the user's Ctrl-C from
    pytest, which would go on to the next test. So an exit 130 stops the test run, unless the
    test caused it on purpose (`expect_interrupt=True`)."""
    from typer.testing import CliRunner

    from kdcli.cli import app

    runner = CliRunner()

    def invoke(*args: Any, expect_interrupt: bool = False) -> Any:
        result = runner.invoke(app, [str(a) for a in args])
        if result.exit_code == 130 and not expect_interrupt:
            raise KeyboardInterrupt("kdcli was interrupted (Ctrl-C): stopping the tests")
        return result

    return invoke


def leftovers(folder: Path) -> list[str]:
    """Temporary build folders kdcli might have left behind."""
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


@pytest.fixture(scope="session")
def slot_teacher(tmp_path_factory) -> Path:
    """A tiny XLM-R token classifier fine-tuned on the mini sample's slots (one thread)."""
    import torch
    from factories import make_model_dir
    from typer.testing import CliRunner

    from kdcli.cli import app

    root = tmp_path_factory.mktemp("slots")
    encoder = make_model_dir(root / "encoder", "xlm-roberta", head="encoder")
    out = root / "teacher"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    train = ("--epochs", "2", "--batch-size", "16", "--lr", "5e-3", "--quiet", "--task")
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            str(encoder),
            "--data",
            str(DATA / "massive-mini"),
            "--out",
            str(out),
            *train,
            "token-classification",
        ],
    )
    torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return out
