"""The `kdcli` command line: Typer wiring only, over the library in `kdcli.steps`.

Each command turns its options into one config object, calls one library function, and renders the
result it returns; each lives in its own module and registers itself on `app` when imported here.
Heavy libraries are imported inside the commands so `kdcli --help` stays fast. `main` is the
console script; `python -m kdcli.cli` (`__main__.py`) runs it under torchrun / accelerate launch.
"""

from typer.core import TyperCommand

from kdcli.cli import (  # noqa: F401  (importing a command's module registers it)
    distill,
    evaluate,
    export,
    finetune,
    predict,
    run,
    search,
    shrink,
    study,
)
from kdcli.cli.app import KdcliCommand, app

for _command in app.registered_commands:  # conventional help for arguments (see KdcliCommand)
    if _command.cls in (None, TyperCommand):
        _command.cls = KdcliCommand

__all__ = ["app", "main"]


def main() -> None:
    app()
