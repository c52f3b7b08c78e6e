"""The `kdcli` Typer application: the command group, its error handling and `--version`.

Errors: bad input (KdcliError, click usage errors) -> one line on stderr and exit 2; a failed check
or a full disk -> exit 1; Ctrl-C -> exit 130. The commands register themselves on `app` (one
module each).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from kdcli._version import __version__
from kdcli.cli import render
from kdcli.cli.options import option_name
from kdcli.core.errors import (
    CheckFailedError,
    DiskFullError,
    KdcliError,
    disk_full_message,
    is_disk_full,
)

WORKFLOW = ("finetune", "shrink", "distill", "eval", "export", "predict")
JOBS = ("run", "study", "search")  # whole jobs of the steps, listed after them


class KdcliGroup(TyperGroup):
    """Turns every error into one clear line and the documented exit code."""

    def list_commands(self, ctx: Any) -> list[str]:
        """Commands in workflow order, as the help lists them."""
        names = super().list_commands(ctx)
        order = [*WORKFLOW, *JOBS]
        return sorted(names, key=lambda n: order.index(n) if n in order else len(order))

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        _quiet_libraries()
        try:
            code = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = code if isinstance(code, int) else 0
            if code == 130:  # Typer turns Ctrl-C into Exit(130) before it reaches us
                render.error("interrupted; nothing half-written was left behind")
        except KdcliError as err:
            render.error(err.render(option_name))
            code = 2
        except (CheckFailedError, DiskFullError) as err:
            render.error(err.render(option_name))
            code = 1
        except KeyboardInterrupt:
            render.error("interrupted; nothing half-written was left behind")
            code = 130
        except Exception as err:
            if not is_disk_full(err):
                code = _click_error(err, list(sys.argv[1:] if args is None else args))
            else:  # a write the library did not wrap (a log line, a cache file)
                render.error(disk_full_message(getattr(err, "filename", None) or "the output"))
                code = 1
        if standalone_mode:
            sys.exit(code)
        return code


class KdcliCommand(TyperCommand):
    """Arguments in help as users read them: `kdcli eval [OPTIONS] MODEL...` and `MODEL...`,
    without Typer's `{MODEL}` braces and Python types (`<list[str]>`)."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _argument_name(param: Any) -> str:
    name = param.metavar or param.name.upper()
    return name + ("..." if param.nargs != 1 and not name.endswith("...") else "")


def _kind(err: BaseException, name: str) -> bool:
    # Typer vendors its own copy of click, so match click's exceptions by class name.
    return any(cls.__name__ == name for cls in type(err).__mro__)


def _click_error(err: Exception, args: list[str]) -> int:
    """Print click's usage errors as one line; re-raise anything that is not click's."""
    ctx = getattr(err, "ctx", None)
    if _kind(err, "NoArgsIsHelpError"):
        typer.echo(ctx.get_help() if ctx else "")
        return 0
    if _kind(err, "Abort"):
        render.error("interrupted; nothing half-written was left behind")
        return 130
    if not _kind(err, "ClickException"):
        raise err
    message = err.format_message()  # type: ignore[attr-defined]
    if _kind(err, "BadParameter"):
        value = _given_value(getattr(err, "param", None), args)
        message = message if value is None else f"{message} (got {value!r})"
    if _kind(err, "UsageError"):
        command = ctx.command_path if ctx else "kdcli"
        message = f"{message} (see '{command} --help')"
    render.error(message)
    return int(err.exit_code)  # type: ignore[attr-defined]


def _given_value(param: Any, args: list[str]) -> str | None:
    """What the user typed for an option (click's own message does not always say)."""
    for name in getattr(param, "opts", []):
        for index, arg in enumerate(args):
            if arg == name and index + 1 < len(args):
                return args[index + 1]
            if arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def _quiet_libraries() -> None:
    """Keep the terminal for kdcli's own progress bars and tables (users may override)."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


app = typer.Typer(
    cls=KdcliGroup,
    name="kdcli",
    help="Make multilingual transformer classifiers small and fast without losing languages.\n\n"
    "Workflow: finetune (a teacher) -> shrink (a student copied from it) -> distill -> eval "
    "(per language) -> export (ONNX / int8) -> predict (label files). Whole jobs: run (a recipe "
    "of steps), study (the study's grid), search (the smallest student that meets your limits). "
    "Docs: docs/cli.md.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kdcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Make multilingual transformer classifiers small and fast without losing languages.

    Workflow: finetune (a teacher) -> shrink (copy-weight student) -> distill -> eval -> export.
    """
