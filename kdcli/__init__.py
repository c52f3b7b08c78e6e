"""kdcli: make multilingual transformer classifiers small and fast without losing languages.

The Python API mirrors the CLI: each step takes one config object and returns one result object,
and so do the whole jobs built on them: `run_recipe` (a recipe of steps), `study` (the study's
grid) and `search` (the smallest student that meets constraints).

    from kdcli import ShrinkConfig, shrink
    result = shrink(ShrinkConfig("teacher/", out="student/", layers=[0, 2, 4, 7, 9, 11]))

Importing kdcli does not load torch: every module imports its heavy dependencies inside functions.
"""

from kdcli._version import __version__
from kdcli.core.errors import CheckFailedError, KdcliError
from kdcli.data.splits import DataConfig
from kdcli.evaluation.report import EvalReport, EvalResult
from kdcli.jobs.recipe import RecipeConfig, RecipeResult, run_recipe
from kdcli.jobs.search import SearchConfig, SearchResult, search
from kdcli.jobs.study import StudyConfig, StudyResult, study
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
    "RecipeConfig",
    "RecipeResult",
    "SearchConfig",
    "SearchResult",
    "ShrinkConfig",
    "ShrinkResult",
    "StudyConfig",
    "StudyResult",
    "TrainConfig",
    "__version__",
    "distill",
    "evaluate",
    "export",
    "finetune",
    "open_predictor",
    "predict",
    "run_recipe",
    "search",
    "shrink",
    "study",
]
