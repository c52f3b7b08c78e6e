"""The training loop: batching, schedule, best-epoch selection, early stopping, checkpoints,
--resume after a crash and after Ctrl-C (same result as an uninterrupted run), bf16, tensorboard,
and (slow) two processes under torchrun."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import leftovers
from training_helpers import MINI, digest, make_encoder, one_thread, train_config

from kdcli.core.errors import KdcliError
from kdcli.data.batching import (
    Encoded,
    collate,
    encode,
    padded_tokens,
    sorted_batches,
    training_batches,
)
from kdcli.steps.finetune import FinetuneConfig, finetune
from kdcli.training.checkpoints import CheckpointArea
from kdcli.training.loop import (
    EvalSet,
    TrainConfig,
    TrainingInterrupted,
    TrainTask,
    fit,
    linear_schedule,
    make_accelerator,
    plan_steps,
)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return make_encoder(tmp_path_factory.mktemp("loop") / "encoder", layers=2)


# --- batching ----------------------------------------------------------------------------------


@pytest.mark.parametrize("batching", ["length-grouped", "random"])
def test_training_batches_cover_every_example_once_in_a_seeded_order(batching):
    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(1000)]
    batches = training_batches(lengths, 16, seed=1, epoch=0, batching=batching)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == training_batches(lengths, 16, seed=1, epoch=0, batching=batching)
    assert batches != training_batches(lengths, 16, seed=1, epoch=1, batching=batching)


def test_length_grouped_batches_save_padding_and_random_ones_do_not():
    rng = random.Random(0)
    lengths = [rng.randint(3, 60) for _ in range(1000)]
    order = list(range(1000))
    rng.shuffle(order)
    shuffled = padded_tokens(lengths, [order[i : i + 16] for i in range(0, 1000, 16)])
    grouped = padded_tokens(lengths, training_batches(lengths, 16, seed=1, epoch=0))
    random_ = padded_tokens(lengths, training_batches(lengths, 16, 1, 0, batching="random"))
    assert grouped < 0.75 * shuffled
    assert 0.9 * shuffled < random_ < 1.1 * shuffled


def test_sorted_batches_go_longest_first():
    lengths = [3, 9, 1, 9, 5]
    assert sorted_batches(lengths, 2) == [[1, 3], [4, 0], [2]]


def test_encode_and_collate_pad_each_batch_to_its_longest(make_teacher):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(make_teacher("xlm-roberta"))
    encoded = encode(tokenizer, ["wake me up", "play some jazz music by miles davis " * 20], 12)
    assert encoded.lengths()[1] == 12  # truncated, special tokens included
    assert encoded.input_ids[1][-1] == tokenizer.sep_token_id
    batch = collate(encoded, [0])
    assert batch["input_ids"].shape == (1, encoded.lengths()[0])  # no padding for one row
    both = collate(encoded, [0, 1])
    assert both["input_ids"].shape == (2, 12)
    assert both["attention_mask"][0].tolist() == [1] * encoded.lengths()[0] + [0] * (
        12 - encoded.lengths()[0]
    )
    assert both["input_ids"][0, -1].item() == tokenizer.pad_token_id
    capped = encode(tokenizer, ["play some jazz music by miles davis " * 20], 512)
    assert capped.lengths() == [tokenizer.model_max_length]  # 64: the model's positions


# --- schedule and plan -------------------------------------------------------------------------


def test_linear_schedule_warms_up_then_decays_to_zero():
    factors = [linear_schedule(step, warmup=2, total=10) for step in range(11)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert factors[6] == pytest.approx(0.5)
    assert factors[10] == 0.0
    assert linear_schedule(0, 0, 4) == 1.0


def test_plan_counts_optimizer_steps():
    config = TrainConfig(batch_size=16, epochs=3)
    assert plan_steps(200, config, 1).steps_per_epoch == 13
    assert plan_steps(200, config, 1).total_steps == 39
    accumulated = TrainConfig(batch_size=16, grad_accum=2, epochs=1)
    assert plan_steps(200, accumulated, 1).steps_per_epoch == 7
    assert plan_steps(200, config, 2).steps_per_epoch == 7  # two processes share the batches
    capped = plan_steps(200, TrainConfig(batch_size=16, max_steps=20, warmup_ratio=0.1), 1)
    assert (capped.total_steps, capped.epochs, capped.warmup_steps) == (20, 2, 2)


@pytest.mark.parametrize(
    ("overrides", "option"),
    [
        ({"epochs": 0}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"grad_accum": 0}, "grad_accum"),
        ({"max_length": -4}, "max_length"),
        ({"max_steps": 0}, "max_steps"),
        ({"patience": 0}, "patience"),
        ({"save_steps": -1}, "save_steps"),
        ({"lr": 0.0}, "lr"),
        ({"lr": 3.0}, "lr"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"warmup_ratio": 1.0}, "warmup_ratio"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"max_grad_norm": -1.0}, "max_grad_norm"),
        ({"max_grad_norm": float("inf")}, "max_grad_norm"),
        ({"max_grad_norm": float("nan")}, "max_grad_norm"),
        ({"report_to": "wandb"}, "report_to"),
        ({"batching": "sorted"}, "batching"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_training_options_name_the_option(overrides, option):
    with pytest.raises(KdcliError, match=f"^{option} "):
        TrainConfig(**overrides).check()


# --- the loop on a one-parameter model: best epoch, early stopping -----------------------------


class _Bias(torch.nn.Module):
    """logits = [b, 0]: dev examples are class 0 (right while b > 0), training pushes b down."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = torch.nn.Parameter(torch.tensor([0.5]))

    def forward(self, input_ids, attention_mask):
        rows = input_ids.shape[0]
        logits = torch.stack([self.bias.expand(rows), torch.zeros(rows)], dim=1)
        return SimpleNamespace(logits=logits)


def _bias_task() -> TrainTask:
    encoded = Encoded([[1, 2, 3]] * 20, pad_id=0)
    labels = torch.ones(20, dtype=torch.long)
    module = _Bias()

    def make_batch(indices):
        return {**collate(encoded, indices), "labels": labels[list(indices)]}

    def loss(model, batch):
        logits = model(batch["input_ids"], batch["attention_mask"]).logits
        ce = torch.nn.functional.cross_entropy(logits, batch["labels"])
        return ce, {"ce": ce.detach()}

    dev = EvalSet(Encoded([[1, 2]] * 4, 0), [0, 0, 0, 0], ["en-US", "en-US", "de-DE", "de-DE"])
    return TrainTask(module, module, encoded.lengths(), make_batch, loss, dev)


def _fit_bias(tmp_path: Path, **overrides):
    task = _bias_task()
    config = TrainConfig(batch_size=10, lr=0.15, epochs=3, weight_decay=0.0, **overrides)
    area = CheckpointArea(tmp_path / "out")
    area.start({"test": 1}, resume=False)
    return task, fit(task, config, area, make_accelerator())


def test_the_best_dev_epoch_is_kept_not_the_last(tmp_path):
    task, outcome = _fit_bias(tmp_path)
    # Adam moves b by about lr per step: 0.5 -> 0.225 -> 0.05 -> -0.025 after epochs 1, 2, 3
    assert [h["accuracy"] for h in outcome.state.history] == [1.0, 1.0, 0.0]
    assert outcome.state.best_epoch == 1
    assert outcome.best_weights["bias"].item() > 0 > task.module.bias.item()
    assert outcome.best["per_language"] == {
        "de-DE": {"accuracy": 1.0, "examples": 2},
        "en-US": {"accuracy": 1.0, "examples": 2},
    }


def test_defaults_warm_up_and_do_not_clip():
    config = TrainConfig()
    assert (config.warmup_ratio, config.max_grad_norm) == (0.06, None)
    assert plan_steps(3200, config, 1).warmup_steps == 18  # 6% of 3 x 100 steps


@pytest.mark.parametrize("max_grad_norm", [None, 0.01])
def test_gradients_are_clipped_only_when_asked(tmp_path, monkeypatch, max_grad_norm):
    from accelerate import Accelerator

    norms = []
    original = Accelerator.clip_grad_norm_

    def spy(self, parameters, max_norm, *args, **kwargs):
        norms.append(max_norm)
        return original(self, parameters, max_norm, *args, **kwargs)

    monkeypatch.setattr(Accelerator, "clip_grad_norm_", spy)
    _, outcome = _fit_bias(tmp_path, max_grad_norm=max_grad_norm, max_steps=2)
    assert norms == ([] if max_grad_norm is None else [0.01, 0.01])
    assert outcome.state.step == 2  # 20 examples in batches of 10


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    _, outcome = _fit_bias(tmp_path, patience=1)
    assert outcome.state.stopped_early
    assert len(outcome.state.history) == 2  # epoch 2 did not improve on epoch 1: stop


# --- checkpoints and --resume (real model, dropout, AdamW state) --------------------------------


def _config(encoder: Path, out: Path, resume: bool = False, **overrides) -> FinetuneConfig:
    """2 epochs of 7 steps (20 examples per language, batch 16), a checkpoint every 4 steps."""
    from kdcli.data.splits import DataConfig

    data = DataConfig(str(MINI), samples_per_language=20)
    train = train_config(epochs=2, batch_size=16, save_steps=4, log_steps=3, **overrides)
    return FinetuneConfig(str(encoder), data, out, train, resume=resume)


@pytest.fixture(scope="module")
def reference(encoder, tmp_path_factory) -> Path:
    """The uninterrupted run that interrupted and resumed runs must reproduce exactly."""
    out = tmp_path_factory.mktemp("reference") / "out"
    finetune(_config(encoder, out))
    return out


def _crash_at(step: int):
    def callback(event):
        if event.task == "train" and event.done == step:
            raise RuntimeError("simulated crash")

    return callback


def test_resume_after_a_crash_gives_the_uninterrupted_result(encoder, reference, tmp_path):
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        finetune(_config(encoder, out), progress=_crash_at(10))
    assert not out.exists()  # no half-written output ...
    area = CheckpointArea(out)
    assert area.latest().name == "checkpoint-00000008"  # ... but the last checkpoint
    assert (area.root / "run.json").is_file()
    with pytest.raises(KdcliError, match="resume to continue it, or overwrite"):
        finetune(_config(encoder, out))
    result = finetune(_config(encoder, out, resume=True))
    assert result.training.resumed_from == 8
    assert digest(out) == digest(reference)  # weights, metrics.jsonl, kdcli.json: identical
    assert not area.root.exists()  # a finished run drops its checkpoints
    assert leftovers(tmp_path) == []


def test_ctrl_c_saves_a_checkpoint_and_resume_finishes_the_same_run(encoder, reference, tmp_path):
    def interrupt(event):
        if event.task == "train" and event.done == 5:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends

    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted, match="resume"):
        finetune(_config(encoder, out), progress=interrupt)
    assert CheckpointArea(out).latest().name == "checkpoint-00000005"  # saved at that step
    finetune(_config(encoder, out, resume=True))
    assert digest(out) == digest(reference)


def test_cli_ctrl_c_exits_130_naming_the_checkpoint_and_resume_finishes(
    encoder, cli, tmp_path, monkeypatch
):
    import contextlib

    from kdcli.cli import render

    @contextlib.contextmanager
    def bars(enabled=True):
        def callback(event):
            if event.task == "train" and event.done == 3:
                os.kill(os.getpid(), signal.SIGINT)

        yield callback

    monkeypatch.setattr(render, "progress_bars", bars)
    out = tmp_path / "o"
    args = ["finetune", encoder, "--data", MINI, "--out", out, "--max-steps", "5", "--lr", "3e-3"]
    result = cli(*args, expect_interrupt=True)
    assert result.exit_code == 130, result.output
    assert "interrupted at step 3: checkpoint saved in" in " ".join(result.output.split())
    assert "--resume" in result.output
    assert not out.exists() and CheckpointArea(out).latest().name == "checkpoint-00000003"
    resumed = cli(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resumed at step 3" in " ".join(resumed.output.split())
    assert out.is_dir() and not CheckpointArea(out).root.exists()


def test_resume_refuses_a_checkpoint_of_another_configuration(encoder, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        finetune(_config(encoder, out), progress=_crash_at(5))
    with pytest.raises(KdcliError, match=r"different configuration \(options\.lr 0\.003 -> 0\.001"):
        finetune(_config(encoder, out, resume=True, lr=1e-3))
    with pytest.raises(KdcliError, match="resume: no checkpoint"):
        finetune(_config(encoder, tmp_path / "new", resume=True))
    assert not (tmp_path / "new").exists()
    assert not (tmp_path / "new.checkpoints").exists()
    # --overwrite starts over: the stale checkpoints go, the run finishes
    finetune(
        FinetuneConfig(str(encoder), str(MINI), out, train_config(max_steps=2), overwrite=True)
    )
    assert out.is_dir() and not CheckpointArea(out).root.exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(encoder, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        finetune(_config(encoder, out), progress=_crash_at(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- logs, bf16, tensorboard, max-steps, gradient accumulation ---------------------------------


def test_metrics_log_max_steps_accumulation_and_tensorboard(encoder, tmp_path):
    pytest.importorskip("tensorboard")
    result = finetune(
        FinetuneConfig(
            str(encoder),
            str(MINI),
            tmp_path / "out",
            train_config(max_steps=7, grad_accum=2, log_steps=3, report_to="tensorboard"),
        )
    )
    assert result.training.steps == 7 and result.training.total_steps == 7
    lines = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    train_lines = [x for x in lines if x["event"] == "train"]
    assert [x["step"] for x in train_lines] == [3, 6, 7]
    assert all({"loss", "ce", "lr", "epoch"} <= set(x) for x in train_lines)
    evals = [x for x in lines if x["event"] == "eval"]
    assert len(evals) == 1 and evals[0]["step"] == 7  # max-steps ends mid-epoch: one evaluation
    assert set(evals[0]["per_language"]) == {"ar-SA", "de-DE", "en-US", "ja-JP", "ru-RU"}
    events = list((tmp_path / "out" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_bf16_autocast_trains_and_saves_a_float32_model(encoder, tmp_path):
    from safetensors.torch import load_file

    result = finetune(
        FinetuneConfig(
            str(encoder), str(MINI), tmp_path / "out", train_config(max_steps=3, bf16=True)
        )
    )
    assert result.training.steps == 3
    tensors = load_file(tmp_path / "out" / "model.safetensors")
    assert {t.dtype for t in tensors.values()} == {torch.float32}
    assert all(torch.isfinite(t).all() for t in tensors.values())


def test_progress_reports_loss_and_samples_per_second(encoder, tmp_path):
    events = []
    finetune(
        FinetuneConfig(
            str(encoder), str(MINI), tmp_path / "out", train_config(max_steps=4, log_steps=2)
        ),
        progress=events.append,
    )
    train = [e for e in events if e.task == "train"]
    assert [e.done for e in train] == [1, 2, 3, 4] and train[-1].total == 4
    assert "loss" in train[1].info and "samples/s" in train[-1].info
    assert any(e.task == "dev" for e in events)


def test_threads_hold_for_the_run_and_are_put_back(encoder, tmp_path):
    before = torch.get_num_threads()  # 1: this module runs single-threaded
    seen = []

    def record(event):
        if event.task == "train":
            seen.append(torch.get_num_threads())

    config = train_config(max_steps=2, threads=before + 1)
    finetune(FinetuneConfig(str(encoder), str(MINI), tmp_path / "out", config), progress=record)
    assert seen and set(seen) == {before + 1}
    assert torch.get_num_threads() == before
    record_ = json.loads((tmp_path / "out" / "kdcli.json").read_text())
    assert record_["settings"]["threads"] == before + 1


# --- two processes -----------------------------------------------------------------------------


@pytest.mark.slow
def test_two_cpu_processes_under_torchrun_train_and_write_one_output(tmp_path):
    models = shared_models_for_slow(tmp_path)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(29500 + os.getpid() % 1000),
        "-m",
        "kdcli.cli",
        "distill",
        "--student",
        str(models["student"]),
        "--data",
        str(MINI),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--lr",
        "3e-3",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((out / "kdcli.json").read_text())
    assert record["training"]["processes"] == 2
    # 200 examples / batch 8 = 25 batches, shared by 2 processes: 13 steps per epoch
    assert record["training"]["steps"] == 26
    assert done.stderr.count("student written to") == 1  # one process reports
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "out", "student", "teacher"]


def shared_models_for_slow(tmp_path: Path) -> dict[str, Path]:
    """A teacher and student for the subprocess test, built in this test's folder."""
    from kdcli.steps.shrink import ShrinkConfig, shrink

    encoder = make_encoder(tmp_path / "teacher-encoder", layers=2)
    teacher = tmp_path / "teacher"
    finetune(FinetuneConfig(str(encoder), str(MINI), teacher, train_config(max_steps=5)))
    student = tmp_path / "student"
    shrink(ShrinkConfig(str(teacher), out=student, num_layers=1))
    shutil.rmtree(encoder)
    return {"teacher": teacher, "student": student}


# --- what the log says and how accumulation weighs examples (issue 14) -------------------------


def test_the_logged_learning_rate_is_the_steps_own(encoder, tmp_path):
    finetune(
        FinetuneConfig(
            str(encoder),
            str(MINI),
            tmp_path / "out",
            train_config(max_steps=4, log_steps=1, warmup_ratio=0.5, lr=1e-3),
        )
    )
    lines = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    logged = [x["lr"] for x in lines if x["event"] == "train"]
    expected = [1e-3 * linear_schedule(step, warmup=2, total=4) for step in range(4)]
    assert logged == pytest.approx(expected)  # step 1 trained at 1/3 of the peak, not 2/3


class _Recorder:
    """Stands in for the optimizer and scheduler: keeps the gradient of every step."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module, self.grads = module, []

    def step(self) -> None:
        if hasattr(self, "module"):
            self.grads.append(float(self.module.weight.grad.sum()))

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.module.zero_grad(set_to_none=set_to_none)

    def get_last_lr(self) -> list[float]:
        return [1.0]


def test_every_example_weighs_the_same_in_full_and_partial_accumulation_cycles():
    from kdcli.training.loop import _Loop, _Plan, micro_batch_weights

    assert micro_batch_weights([4, 4], batch_size=4, grad_accum=2) == [0.5, 0.5]
    assert micro_batch_weights([4, 1], batch_size=4, grad_accum=2) == [0.5, 0.125]
    module = torch.nn.Linear(1, 1, bias=False)
    values = torch.arange(1.0, 8.0) / 100  # d(loss)/dw per example; small: no clipping

    def loss(model, batch):
        return (model.weight.squeeze() * batch["x"]).mean(), {}

    task = SimpleNamespace(make_batch=lambda indices: {"x": values[list(indices)]}, loss=loss)
    recorder = _Recorder(module)
    loop = _Loop(
        task, TrainConfig(batch_size=2, grad_accum=2), None, make_accelerator(), module,
        recorder, SimpleNamespace(step=lambda: None, get_last_lr=lambda: [1.0]),
        _Plan(2, 2, 1, 0), None,
    )  # fmt: skip
    loop._step([[0, 1], [2, 3]])  # a full cycle: 4 examples
    loop._step([[4, 5], [6]])  # the epoch's last, short batch
    loop._step([[0]])  # a partial cycle: one example
    per_example = [recorder.grads[0] / sum(values[:4]), recorder.grads[1] / sum(values[4:7])]
    per_example.append(recorder.grads[2] / values[0])
    assert per_example == pytest.approx([0.25, 0.25, 0.25])  # 1 / (batch 2 x accumulation 2)


def test_the_progress_bar_shows_the_current_epoch(encoder, tmp_path):
    """Between two log lines the bar showed the epoch of the last one: late by up to an epoch."""
    events = []
    from kdcli.data.splits import DataConfig

    data = DataConfig(str(MINI), samples_per_language=20)  # 100 examples: 7 batches of 16
    train = train_config(epochs=2, batch_size=16, log_steps=100)
    finetune(FinetuneConfig(str(encoder), data, tmp_path / "o", train), progress=events.append)
    train = [e for e in events if e.task == "train" and e.done > 0]
    assert train and all(e.info["epoch"] == (e.done - 1) // 7 + 1 for e in train)  # 7 steps each
