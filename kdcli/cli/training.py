"""What `kdcli finetune` and `kdcli distill` share: their options as DataConfig and TrainConfig,
progress bars on the main process only, and what Ctrl-C says."""

from __future__ import annotations

import os
from typing import Any

from kdcli.cli import render
from kdcli.cli.options import option_name, parse_names


def is_main_process() -> bool:
    """Under `accelerate launch` / torchrun only rank 0 draws progress and tables."""
    return os.environ.get("RANK", "0") == "0"


def train_data_config(params: dict[str, Any]) -> Any:
    """The DataConfig of finetune/distill, from the command's parameters of the same names."""
    from kdcli.data.splits import DataConfig

    return DataConfig(
        data=params["data"],
        languages=parse_names(params["languages"]),
        train_languages=parse_names(params["train_languages"]),
        samples_per_language=params["samples_per_language"],
        text_column=params["text_column"],
        label_column=params["label_column"],
        language_column=params["language_column"],
        revision=params["data_revision"],
        seed=params["seed"],
        task=params["task"],
        tag_scheme=params["tag_scheme"],
    )


def train_config(params: dict[str, Any]) -> Any:
    """The TrainConfig of finetune/distill (and of study/search cells): its fields are named
    like the options; a command without one of them (study and search have no --threads: their
    workers divide the cores) leaves the field's default."""
    from dataclasses import fields

    from kdcli.training.loop import TrainConfig

    return TrainConfig(**{f.name: params[f.name] for f in fields(TrainConfig) if f.name in params})


def run_training(run: Any, config: Any, quiet: bool) -> Any:
    """Call the library with progress bars; Ctrl-C says where its checkpoint went."""
    from kdcli.training.loop import TrainingInterrupted

    try:
        with render.progress_bars(not quiet and is_main_process()) as progress:
            return run(config, progress)
    except TrainingInterrupted as err:
        render.note(err.render(option_name))
        raise
