"""Atomic output directories: build in `<out>.tmp-*`, rename into place at the end.

A run that fails or is interrupted (Ctrl-C included) leaves no partial output behind, and an
existing output is only replaced when the caller asked for it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from kdcli.core.errors import KdcliError, option_ref


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Fail early, before any work, when `out` cannot be written."""
    out_option = option_ref("out")
    if out.exists() and not overwrite:
        raise KdcliError(
            f"output {out} already exists",
            fix=f"choose another {out_option} or pass {option_ref('overwrite')}",
        )
    if out.exists() and not out.is_dir():
        raise KdcliError(
            f"output {out} exists and is not a directory", fix=f"choose another {out_option}"
        )
    parent = out.absolute().parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise KdcliError(
            f"cannot write into {parent}", fix=f"choose an {out_option} in a writable directory"
        )
    if parent.exists() and not parent.is_dir():
        raise KdcliError(f"{parent} is not a directory", fix=f"choose another {out_option}")


STDOUT = "-"


def check_output_file(path: Path, option: str) -> None:
    """Fail early when the result file `option` names (e.g. `json`) could not be written; `-` is
    stdout."""
    if str(path) == STDOUT:
        return
    parent = path.absolute().parent
    if path.is_dir():
        raise KdcliError("is a directory", option=option, value=path, fix="give a file path")
    if not parent.is_dir():
        raise KdcliError(
            f": folder {parent} does not exist; create it first", option=option, value=path
        )
    if not os.access(parent, os.W_OK):
        raise KdcliError(
            f": folder {parent} is not writable; choose another path", option=option, value=path
        )


@contextlib.contextmanager
def atomic_output_dir(out: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh temporary sibling of `out`; it becomes `out` on success, else it is removed."""
    out = Path(out)
    check_output_dir(out, overwrite)
    out.absolute().parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=out.absolute().parent))
    try:
        yield tmp
        _replace(tmp, out, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, out: Path, overwrite: bool) -> None:
    if not out.exists():
        tmp.rename(out)
        return
    if not overwrite:  # somebody created it while we worked
        raise KdcliError(
            f"output {out} appeared while kdcli was running", fix=f"pass {option_ref('overwrite')}"
        )
    old = Path(tempfile.mkdtemp(prefix=f"{out.name}.old-", dir=out.absolute().parent))
    old.rmdir()
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Write a result file so that readers never see half of it; `-` writes to stdout."""
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.absolute().parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
