"""kdcli: make multilingual transformer classifiers small and fast without losing languages.

The Python API mirrors the CLI: each step takes one config object and returns one result object.

    from kdcli import ShrinkConfig, shrink
    result = shrink(ShrinkConfig("teacher/", out="student/", layers=[0, 2, 4, 7, 9, 11]))

Importing kdcli does not load torch: every module imports its heavy dependencies inside functions.
"""

from kdcli._version import __version__
from kdcli.data import DataConfig
from kdcli.distill import DistillConfig, DistillResult, distill
from kdcli.errors import CheckFailedError, KdcliError
from kdcli.evaluate import EvalConfig, EvalReport, EvalResult, evaluate
from kdcli.export import ExportConfig, ExportResult, export
from kdcli.finetune import FinetuneConfig, FinetuneResult, finetune
from kdcli.inference import Predictor, open_predictor
from kdcli.shrink import ShrinkConfig, ShrinkResult, shrink
from kdcli.train import TrainConfig

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
    "shrink",
]
