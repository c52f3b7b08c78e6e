"""kdcli: make multilingual transformer classifiers small and fast without losing languages.

The Python API mirrors the CLI: each step takes one config object and returns one result object.

    from kdcli import ShrinkConfig, shrink
    result = shrink(ShrinkConfig("teacher/", out="student/", layers=[0, 2, 4, 7, 9, 11]))

Importing kdcli does not load torch: every module imports its heavy dependencies inside functions.
"""

from kdcli._version import __version__
from kdcli.errors import CheckFailedError, KdcliError
from kdcli.evaluate import EvalConfig, EvalReport, EvalResult, evaluate
from kdcli.shrink import ShrinkConfig, ShrinkResult, shrink

__all__ = [
    "CheckFailedError",
    "EvalConfig",
    "EvalReport",
    "EvalResult",
    "KdcliError",
    "ShrinkConfig",
    "ShrinkResult",
    "__version__",
    "evaluate",
    "shrink",
]
