"""Safe outputs: atomic output directories, result files, one run per output, full disks.

- An output directory is built in `<out>.tmp-*` and renamed into place at the end, so a run that
  fails or is interrupted (Ctrl-C included) leaves no partial output behind; an existing output is
  only replaced when the caller asked for it, and never when it is (or holds) one of the inputs.
- A result file (`json`, `csv`, ...) is written to a temporary sibling and renamed; an
  existing file is only replaced with `overwrite`, and an input never.
- `output_lock(out)` holds an output for one run: a second kdcli run writing the same output (or
  its checkpoint area) fails at once instead of mixing its files with the first one's. Under the
  lock, temporary folders that a killed run left beside the output are removed and reported.
- Outputs get the permissions the user's umask gives (temporary files and folders are private
  while they are built).
- A full disk is reported as `DiskFullError` naming where, after the partial output is removed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from kdcli.core.errors import (
    DiskFullError,
    KdcliError,
    disk_full_message,
    is_disk_full,
    option_ref,
)

STDOUT = "-"
LOCK_SUFFIX = ".kdcli-lock"


def check_output_dir(out: Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> None:
    """Fail early, before any work, when `out` cannot or must not be written."""
    out = Path(out)
    out_option = option_ref("out")
    target = output_target(out)
    if target.exists() and not overwrite:
        raise KdcliError(
            f"output {out} already exists",
            fix=f"choose another {out_option} or pass {option_ref('overwrite')}",
        )
    if target.exists() and not target.is_dir():
        raise KdcliError(
            f"output {out} exists and is not a directory", fix=f"choose another {out_option}"
        )
    _check_not_input(target, inputs, f"output {out}")
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise KdcliError(f"{parent} is not a directory", fix=f"choose another {out_option}")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise KdcliError(
            f"cannot write into {parent}", fix=f"choose an {out_option} in a writable directory"
        )


def output_target(out: Path) -> Path:
    """The absolute directory `out` stands for: a symbolic link to a directory means that
    directory (it is replaced in place and the link kept). Refuses outputs that cannot be meant."""
    out = Path(out)
    out_option = option_ref("out")
    if out.is_symlink() and not out.exists():
        raise KdcliError(
            f"output {out} is a broken symbolic link (to {out.readlink()})",
            fix=f"remove the link or choose another {out_option}",
        )
    target = out.resolve() if out.is_symlink() else out.absolute()
    here = Path.cwd().resolve()
    if target.resolve() == here or target.resolve() in here.parents:
        raise KdcliError(
            f"output {str(out) or '(empty)'} is the folder kdcli runs in, or holds it (an empty "
            f"{out_option} means the current folder)",
            fix=f"give {out_option} the name of a new folder",
        )
    return target


def _check_not_input(target: Path, inputs: Sequence[str | Path], what: str) -> None:
    """An output must not be an input, nor hold one (replacing it would delete the input), nor
    replace a file inside an input folder."""
    resolved = target.resolve()
    for given in inputs:
        path = Path(given).expanduser()
        if not str(given) or not path.exists():
            continue  # a Hub id or nothing local: nothing on disk to lose
        source = path.resolve()
        inside = source in resolved.parents and resolved.exists()
        if resolved == source or resolved in source.parents or inside:
            raise KdcliError(
                f"{what} would overwrite the input {given}", fix="choose a path outside the inputs"
            )


def check_output_file(
    path: Path, option: str, overwrite: bool = False, inputs: Sequence[str | Path] = ()
) -> None:
    """Fail early when the result file `option` names (e.g. `json`) could not or must not be
    written; `-` is stdout."""
    if str(path) == STDOUT:
        return
    path = Path(path)
    if not str(path) or str(path) == ".":
        raise KdcliError("is empty", option=option, fix="give a file path (or - for stdout)")
    parent = path.absolute().parent
    if path.is_dir():
        raise KdcliError("is a directory", option=option, value=path, fix="give a file path")
    if path.is_symlink() and not path.exists():
        raise KdcliError(
            "is a broken symbolic link", option=option, value=path, fix="remove it or choose a path"
        )
    _check_not_input(path.absolute(), inputs, f"{option_ref(option)} {path}")
    if path.exists() and not overwrite:
        raise KdcliError(
            "already exists",
            option=option,
            value=path,
            fix=f"choose another path or pass {option_ref('overwrite')}",
        )
    if not parent.is_dir():
        raise KdcliError(
            f": folder {parent} does not exist; create it first", option=option, value=path
        )
    if not os.access(parent, os.W_OK):
        raise KdcliError(
            f": folder {parent} is not writable; choose another path", option=option, value=path
        )


# --- one run per output -----------------------------------------------------------------------


def main_process() -> bool:
    """Under `accelerate launch` / torchrun only rank 0 writes (and locks) outputs."""
    return os.environ.get("RANK", "0") == "0"


_HELD: dict[Path, int] = {}  # lock files this process holds, with how often (re-entrant)


def lock_path(out: Path) -> Path:
    target = output_target(Path(out))
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


@contextlib.contextmanager
def output_lock(out: Path, enabled: bool = True) -> Iterator[list[str]]:
    """Hold `out` (and `<out>.checkpoints`) for this run; yields notes on stale temporary
    folders of killed runs, which are removed. `enabled=False` (processes other than the main
    one of a distributed run) holds nothing."""
    if not enabled:
        yield []
        return
    path = lock_path(out)
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield []
        finally:
            _HELD[path] -= 1
        return
    try:
        created = _make_parents(path.parent)
    except OSError as err:
        raise _write_error(err, path.parent, out) from err
    try:
        handle = _acquire(path, out)
    except OSError as err:
        _remove_empty(created)
        raise _write_error(err, path.parent, out) from err
    except BaseException:
        _remove_empty(created)
        raise
    _HELD[path] = 1
    failed = True
    try:
        notes = _remove_stale(output_target(Path(out)))
        yield notes
        failed = False
    finally:
        del _HELD[path]
        path.unlink(missing_ok=True)  # before closing: a waiting run then retries on a new file
        _release(handle)
        if failed:
            _remove_empty(created)


def _write_error(err: OSError, folder: Path, out: Path) -> Exception:
    """A folder kdcli cannot write in (or a full disk), said in one line."""
    if is_disk_full(err):
        return DiskFullError(disk_full_message(folder, f" (writing {out})"))
    return KdcliError(
        f"cannot write {out}: {err.strerror or err} in {folder}",
        fix=f"choose an {option_ref('out')} in a folder you can write to",
    )


def _acquire(path: Path, out: Path) -> int:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): runs are not locked against each other
        return -1
    while True:
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = os.read(handle, 64).decode("ascii", "replace").strip()
            os.close(handle)
            raise KdcliError(
                f"output {out} is being written by another kdcli run"
                + (f" (process {holder})" if holder else ""),
                fix=f"wait for it to finish, or choose another {option_ref('out')}",
            ) from err
        try:
            same = os.fstat(handle).st_ino == path.stat().st_ino
        except FileNotFoundError:
            same = False
        if same:  # else the previous holder removed the file between our open and lock
            os.ftruncate(handle, 0)
            os.write(handle, f"{os.getpid()}\n".encode())
            return handle
        os.close(handle)


def _release(handle: int) -> None:
    if handle >= 0:
        os.close(handle)  # closing drops the flock


def _make_parents(folder: Path) -> list[Path]:
    """Create `folder` and missing parents; returns the ones created, deepest first."""
    created = []
    missing = folder
    while not missing.exists():
        created.append(missing)
        missing = missing.parent
    folder.mkdir(parents=True, exist_ok=True)
    for made in created:
        _apply_umask(made, directory=True)
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _remove_stale(target: Path) -> list[str]:
    """Temporary folders a killed run left beside `target`: nobody else writes them while we
    hold its lock, so they go."""
    parent = target.parent
    if not parent.is_dir():
        return []
    stale = sorted(
        p
        for p in parent.iterdir()
        if p.name.startswith((f"{target.name}.tmp-", f"{target.name}.old-"))
    )
    for path in stale:
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path, ignore_errors=True)
    if not stale:
        return []
    names = ", ".join(p.name for p in stale[:3]) + (" ..." if len(stale) > 3 else "")
    return [
        f"removed {len(stale)} temporary folder{'s' if len(stale) > 1 else ''} that an "
        f"interrupted earlier run left in {parent} ({names})"
    ]


# --- atomic output directories ----------------------------------------------------------------


@contextlib.contextmanager
def atomic_output_dir(
    out: Path, overwrite: bool = False, inputs: Sequence[str | Path] = ()
) -> Iterator[Path]:
    """Yield a fresh temporary sibling of `out`; it becomes `out` on success, else it is removed."""
    out = Path(out)
    check_output_dir(out, overwrite, inputs)
    target = output_target(out)
    with output_lock(out):
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp-", dir=target.parent))
        except OSError as err:
            _raise_if_disk_full(err, target.parent, out)
            raise
        try:
            yield tmp
            _apply_umask(tmp, directory=True)
            _replace(tmp, target, out, overwrite)
        except BaseException as err:
            shutil.rmtree(tmp, ignore_errors=True)
            _raise_if_disk_full(err, target.parent, out)
            raise


def _raise_if_disk_full(err: BaseException, where: Path, out: Path) -> None:
    if is_disk_full(err) and not isinstance(err, DiskFullError):
        raise DiskFullError(
            disk_full_message(where, f" (writing {out}; nothing was left behind)")
        ) from err


def _replace(tmp: Path, target: Path, out: Path, overwrite: bool) -> None:
    if not target.exists():
        tmp.rename(target)
        return
    if not overwrite:  # somebody created it while we worked
        raise KdcliError(
            f"output {out} appeared while kdcli was running", fix=f"pass {option_ref('overwrite')}"
        )
    old = Path(tempfile.mkdtemp(prefix=f"{target.name}.old-", dir=target.parent))
    old.rmdir()
    target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


# --- result files -----------------------------------------------------------------------------


def write_text_atomic(path: Path, text: str) -> None:
    """Write a result file so that readers never see half of it; `-` writes to stdout."""
    if str(path) == STDOUT:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    path = Path(path)
    with atomic_file(path) as tmp, tmp.open("w", encoding="utf-8") as handle:
        handle.write(text)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary sibling of `path` to write; it replaces `path` when the block succeeds."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _apply_umask(tmp, directory=False)
        tmp.replace(path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_disk_full(err) and not isinstance(err, DiskFullError):
            where = disk_full_message(path.absolute().parent, f" (writing {path})")
            raise DiskFullError(where) from err
        raise


def save_figure_atomic(figure: Any, path: Path, dpi: int = 110) -> None:
    """Save a matplotlib figure so that readers never see half of it (format from the suffix)."""
    path = Path(path)
    with atomic_file(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".").lower())


def _apply_umask(path: Path, directory: bool) -> None:
    """The mode a file or folder made the ordinary way would have: mkstemp/mkdtemp make them
    private, and a rename keeps that."""
    path.chmod((0o777 if directory else 0o666) & ~current_umask())


def current_umask() -> int:
    try:  # Linux says it without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
