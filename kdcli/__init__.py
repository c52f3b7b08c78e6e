"""kdcli: make multilingual transformer classifiers small and fast without losing languages.

The Python API mirrors the CLI: each step takes one config object and returns one result object.

    from kdcli import ShrinkConfig, shrink
    result = shrink(ShrinkConfig("teacher/", out="student/", layers=[0, 2, 4, 7, 9, 11]))

Importing kdcli does not load torch: every module imports its heavy dependencies inside functions.
"""

from kdcli._version import __version__
from kdcli.core.errors import CheckFailedError, KdcliError
from kdcli.data.splits import DataConfig
from kdcli.evaluation.report import EvalReport, EvalResult
from kdcli.runtime.predictor import Predictor, open_predictor
from kdcli.steps.distill import DistillConfig, DistillResult, distill
from kdcli.steps.evaluate import EvalConfig, evaluate
from kdcli.steps.export import ExportConfig, ExportResult, export
from kdcli.steps.finetune import FinetuneConfig, FinetuneResult, finetune
from kdcli.steps.predict import PredictConfig, PredictResult, predict
from kdcli.steps.shrink import ShrinkConfig, ShrinkResult, shrink
from kdcli.training.loop import TrainConfig

__all__ = [
    "CheckFailedError",
    "DataConfig",
    "DistillConfig",
    "DistillResult",
    "EvalConfig",
    "EvalReport",
    "EvalResult",
    "ExportConfig",
    "ExportResult",
    "FinetuneConfig",
    "FinetuneResult",
    "KdcliError",
    "PredictConfig",
    "PredictResult",
    "Predictor",
    "ShrinkConfig",
    "ShrinkResult",
    "TrainConfig",
    "__version__",
    "distill",
    "evaluate",
    "export",
    "finetune",
    "open_predictor",
    "predict",
    "shrink",
]
