"""The checkpoint area of a training run: `<out>.checkpoints/`, beside the output it will make.

The final output is built atomically at the end (`<out>.tmp-*` renamed to `<out>`), so a killed
run never leaves a half-written model. What a killed run *can* leave is this area, on purpose:

    <out>.checkpoints/
        run.json                 what defines the run (settings, input hashes): --resume checks it
        checkpoint-<step>/       the latest complete checkpoint (written as *.tmp, then renamed)
            module.safetensors   the trained weights (the classifier plus any training-only layers)
            state.pt             optimizer, scheduler and random states (loaded weights_only=True)
            state.json           step, epoch, position in the epoch, best so far, eval history
        best-<step>.safetensors  the classifier weights with the best dev accuracy so far
        metrics.jsonl            the live log (tail -f it); copied into the output at the end
        tensorboard/             with --report-to tensorboard

A successful run deletes the area after the output is in place. `--resume` continues from the
latest checkpoint; a checkpoint from a different configuration is refused.
"""

from __future__ import annotations

import errno
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import (
    DiskFullError,
    KdcliError,
    disk_full_message,
    is_disk_full,
    one_line,
    option_ref,
)
from kdcli.files.outputs import atomic_file

if TYPE_CHECKING:
    import torch

RUN_FILE = "run.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_PREFIX = "checkpoint-"


@dataclass
class TrainState:
    """Where a run is: everything besides tensors that a resumed run needs to continue exactly."""

    epoch: int = 0  # the epoch being trained (or evaluated)
    cycle: int = 0  # optimizer steps already taken within that epoch
    step: int = 0  # optimizer steps taken in all
    samples: int = 0  # training examples seen (all processes)
    best_accuracy: float = -1.0
    best_epoch: int | None = None
    best_step: int | None = None
    bad_epochs: int = 0  # evaluations since the last improvement (early stopping)
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # one dev evaluation per epoch
    log_sums: dict[str, float] = field(default_factory=dict)  # running sums since the last log
    log_count: int = 0
    metrics_lines: int = 0  # lines of metrics.jsonl that belong to this state

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TrainState:
        return cls(**json.loads(text))


class CheckpointArea:
    """The `<out>.checkpoints/` folder of one run."""

    def __init__(self, out: Path) -> None:
        out = Path(out)
        self.out = out
        self.root = out.parent / f"{out.name}.checkpoints"

    # --- before any work -----------------------------------------------------------------------

    def check_start(self, resume: bool, overwrite: bool) -> None:
        """Fail early when the area does not fit the request (cheap: no hashing, no loading)."""
        if resume:
            if self.latest() is None:
                raise KdcliError(
                    f": no checkpoint in {self.root} to continue from",
                    option="resume",
                    fix=f"run without {option_ref('resume')} to start training",
                )
            return
        if self.root.exists() and not overwrite:
            raise KdcliError(
                f"{self.root} holds checkpoints of an earlier, unfinished run",
                fix=f"pass {option_ref('resume')} to continue it, or {option_ref('overwrite')} "
                "to start over",
            )

    def check_identity(self, identity: dict[str, Any]) -> None:
        """--resume: the checkpoint must come from a run with the same configuration."""
        path = self.root / RUN_FILE
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise KdcliError(
                f": {path} is missing or unreadable",
                option="resume",
                fix=f"pass {option_ref('overwrite')} to start over",
            ) from err
        current = json.loads(json.dumps(identity, default=str))
        differences = _differences(recorded, current)
        if differences:
            shown = "; ".join(differences[:6]) + (
                f"; +{len(differences) - 6} more" if len(differences) > 6 else ""
            )
            raise KdcliError(
                f": the checkpoint in {self.root} is from a different configuration ({shown})",
                option="resume",
                fix="rerun with the options it was made with, or pass "
                f"{option_ref('overwrite')} to start over",
            )

    def start(self, identity: dict[str, Any], resume: bool) -> None:
        """Create (or, without --resume, recreate) the area and record the run's identity."""
        if not resume:
            shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True, exist_ok=True)
        if not resume:
            text = json.dumps(identity, indent=2, sort_keys=True, default=str)
            (self.root / RUN_FILE).write_text(text + "\n", encoding="utf-8")
            (self.root / METRICS_FILE).write_text("", encoding="utf-8")

    # --- checkpoints ---------------------------------------------------------------------------

    def latest(self) -> Path | None:
        if not self.root.is_dir():
            return None
        done = [
            p
            for p in self.root.iterdir()
            if p.is_dir() and p.name.startswith(CHECKPOINT_PREFIX) and not p.name.endswith(".tmp")
        ]
        return max(done, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]), default=None)

    def save(
        self,
        module: torch.nn.Module,
        optimizer: Any,
        scheduler: Any,
        state: TrainState,
        rng: dict[str, Any],
    ) -> Path:
        """Write a checkpoint completely, then make it the latest and drop the older ones."""
        import torch
        from safetensors.torch import save_file

        final = self.root / f"{CHECKPOINT_PREFIX}{state.step:08d}"
        tmp = self.root / f"{final.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        needed = _checkpoint_bytes(module)
        try:
            if shutil.disk_usage(self.root).free < needed:  # torch.save would fail half-way
                raise OSError(errno.ENOSPC, "No space left on device", str(self.root))
            tmp.mkdir()
            save_file(_contiguous(module.state_dict()), tmp / "module.safetensors")
            torch.save(
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": rng,
                },
                tmp / "state.pt",
            )
            (tmp / "state.json").write_text(state.to_json() + "\n", encoding="utf-8")
        except BaseException as err:
            shutil.rmtree(tmp, ignore_errors=True)
            # torch.save reports a full disk as a stream error: judge by the free space
            if is_disk_full(err) or shutil.disk_usage(self.root).free < needed:
                raise DiskFullError(self._disk_full(state.step)) from err
            raise
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in self.root.iterdir():
            if old.name.startswith(CHECKPOINT_PREFIX) and old != final:
                shutil.rmtree(old, ignore_errors=True)
        self._drop_stale_best(state)
        return final

    def _disk_full(self, step: int) -> str:
        kept = self.latest()
        if kept is None:
            return disk_full_message(self.root, f" (saving the checkpoint of step {step})")
        return disk_full_message(
            self.root,
            f" (saving the checkpoint of step {step}; the one of {kept.name} is kept: free "
            f"space and rerun with {option_ref('resume')} to continue from it)",
        )

    def load(
        self, module: torch.nn.Module, optimizer: Any, scheduler: Any
    ) -> tuple[TrainState, dict[str, Any]]:
        """Restore the latest checkpoint into `module`, `optimizer` and `scheduler`."""
        import torch
        from safetensors.torch import load_file

        latest = self.latest()
        if latest is None:
            raise KdcliError(f": no checkpoint in {self.root}", option="resume")
        try:
            state = TrainState.from_json((latest / "state.json").read_text(encoding="utf-8"))
            module.load_state_dict(load_file(latest / "module.safetensors"))
            saved = torch.load(latest / "state.pt", weights_only=True, map_location="cpu")
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            rng = saved["rng"]
        except Exception as err:  # safetensors, torch and json each fail in their own way
            raise KdcliError(
                f": checkpoint {latest} is damaged ({_damage(err)}), so the run cannot "
                "continue from it",
                option="resume",
                fix=f"pass {option_ref('overwrite')} instead of {option_ref('resume')} to start "
                "over",
            ) from err
        self._truncate_metrics(state.metrics_lines)
        return state, rng

    # --- best weights and logs -----------------------------------------------------------------

    def save_best(self, weights: dict[str, torch.Tensor], step: int) -> None:
        from safetensors.torch import save_file

        try:
            with atomic_file(self.root / f"best-{step:08d}.safetensors") as tmp:
                save_file(_contiguous(weights), tmp)
        except DiskFullError as err:
            raise DiskFullError(self._disk_full(step)) from err

    def load_best(self, step: int) -> dict[str, torch.Tensor]:
        from safetensors.torch import load_file

        path = self.root / f"best-{step:08d}.safetensors"
        try:
            return load_file(path)
        except Exception as err:
            raise KdcliError(
                f"the best weights so far, {path}, are damaged ({_damage(err)})",
                fix=f"pass {option_ref('overwrite')} instead of {option_ref('resume')} to start "
                "over",
            ) from err

    def _drop_stale_best(self, state: TrainState) -> None:
        keep = f"best-{state.best_step:08d}.safetensors" if state.best_step is not None else None
        # a killed save leaves its temporary `.best-*` sibling
        for path in [*self.root.glob("best-*.safetensors*"), *self.root.glob(".best-*")]:
            if path.name != keep:
                path.unlink(missing_ok=True)

    def append_metrics(self, record: dict[str, Any]) -> None:
        with (self.root / METRICS_FILE).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")

    def _truncate_metrics(self, lines: int) -> None:
        """Drop log lines written after the checkpoint: the resumed run writes them again."""
        path = self.root / METRICS_FILE
        kept = (
            path.read_text(encoding="utf-8").splitlines(keepends=True)[:lines]
            if path.exists()
            else []
        )
        path.write_text("".join(kept), encoding="utf-8")

    def copy_logs(self, out_dir: Path) -> None:
        """metrics.jsonl (and tensorboard/) into the finished output."""
        shutil.copyfile(self.root / METRICS_FILE, Path(out_dir) / METRICS_FILE)
        if (self.root / "tensorboard").is_dir():
            shutil.copytree(self.root / "tensorboard", Path(out_dir) / "tensorboard")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def has_checkpoint(self) -> bool:
        return self.latest() is not None


def _checkpoint_bytes(module: torch.nn.Module) -> int:
    """About what a checkpoint takes: the weights and AdamW's two moments of each."""
    weights = sum(t.numel() * t.element_size() for t in module.state_dict().values())
    return 3 * weights + 1_000_000


def _damage(err: BaseException) -> str:
    """What is wrong with a damaged file, briefly (libraries' messages can run long)."""
    text = one_line(err)
    return f"{type(err).__name__}: {text[:120]}" if text else type(err).__name__


def _contiguous(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors wants contiguous, unshared tensors on the CPU."""
    return {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}


def _differences(recorded: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(recorded, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(recorded) | set(current)):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in current or key not in recorded:
                found.append(f"{name} {recorded.get(key)!r} -> {current.get(key)!r}")
            else:
                found += _differences(recorded[key], current[key], name)
        return found
    if recorded != current:
        return [f"{prefix} {_short(recorded)} -> {_short(current)}"]
    return []


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:18] + "..." + text[-18:]
