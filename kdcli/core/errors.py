"""Exceptions the library raises; the CLI maps them to exit codes.

`KdcliError` is bad input (exit 2): one line that names the bad value and the fix. It carries the
setting it is about as data: `option` is the name the library gives it (a config field such as
"languages" or "batch_size"), `value` what it was given, `problem` what is wrong and `fix` what
to change. Other settings the text mentions are marked with `option_ref("calib_data")`. Each front
end names settings its own way when it renders the error: `str(err)` uses the library's names
(`languages`), the CLI its options (`--languages`), so the library never speaks in CLI words.

`CheckFailedError` means the work ran but a quality check failed (exit 1), e.g. export verification.
`DiskFullError` means the disk filled up while kdcli wrote (exit 1); nothing half-written is left.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Callable
from pathlib import Path

# Marks an option name inside a message until the message is rendered (a control character no
# option name, path or user text contains).
_MARK = "\x1f"
_MARKED = re.compile(f"{_MARK}([A-Za-z_][A-Za-z0-9_]*){_MARK}")
_UNSET = object()

Namer = Callable[[str], str]


def option_ref(name: str) -> str:
    """`name`, a setting mentioned inside an error message, rendered by whoever shows it."""
    return f"{_MARK}{name}{_MARK}"


def python_name(name: str) -> str:
    """How the library itself names a setting: its config field name."""
    return name


def shown(value: object) -> str:
    """A bad value as messages show it: text quoted, paths and numbers as they are, lists
    comma-separated."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    if isinstance(value, Path):
        return str(value)
    return str(value)


class Rendered:
    """An exception whose text may mention settings (`option_ref`), named when it is rendered
    (a mixin: KdcliError is an Exception, an interrupted run a KeyboardInterrupt)."""

    def render(self, name: Namer) -> str:
        return _MARKED.sub(lambda found: name(found.group(1)), self.text())

    def text(self) -> str:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.render(python_name)


class KdcliError(Rendered, Exception):
    """Bad usage or bad input. The message names the value, what is allowed, and what to change.

    `KdcliError("must be at least 1", option="batch_size", value=0)` reads `batch_size 0 must be
    at least 1` in Python and `--batch-size 0 must be at least 1` on the command line.
    """

    def __init__(
        self,
        problem: str,
        *,
        option: str | None = None,
        value: object = _UNSET,
        fix: str | None = None,
    ) -> None:
        self.problem = problem
        self.option = option
        self.value = None if value is _UNSET else value
        self.has_value = value is not _UNSET
        self.fix = fix
        super().__init__(self.render(python_name))

    def about(self, option: str) -> KdcliError:
        """The same error about another setting: data read for `vocab_from` reports what the
        data layer says about `data` as `vocab_from`."""
        value = self.value if self.has_value else _UNSET
        return KdcliError(self.problem, option=option, value=value, fix=self.fix)

    def text(self) -> str:
        """The one-line message, settings still marked."""
        subject = []
        if self.option is not None:
            subject.append(option_ref(self.option))
        if self.has_value:
            subject.append(shown(self.value))
        head = " ".join(subject)
        text = self.problem
        if head:
            text = f"{head}{text}" if text.startswith((":", ",", ";")) else f"{head} {text}"
        if self.fix:
            text = f"{text}: {self.fix}"
        return text


class CheckFailedError(Rendered, Exception):
    """A requested check failed after the work was done (outputs exist but are marked failed)."""

    def __init__(self, message: str, result: object | None = None) -> None:
        self.message = message
        self.result = result
        super().__init__(self.render(python_name))

    def text(self) -> str:
        return self.message


class DiskFullError(Rendered, Exception):
    """The disk (or a quota) filled up while kdcli was writing; what was half-written is gone."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(self.render(python_name))

    def text(self) -> str:
        return self.message


# How libraries say ENOSPC without an OSError: safetensors (Rust) and torch.save (C++).
_DISK_FULL_TEXTS = ("no space left on device", "os error 28", "errno 28", "disk quota exceeded")


def is_disk_full(err: BaseException | None) -> bool:
    """Whether `err`, or an error it was raised from, means the disk or a quota is full."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, DiskFullError):
            return True
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(text in str(err).lower() for text in _DISK_FULL_TEXTS):
            return True
        err = err.__cause__ or err.__context__
    return False


def disk_full_message(where: object, what: str = "") -> str:
    """The one line a full disk is reported with."""
    return (
        f"no space left on device at {where}{what}: free some space (or write elsewhere) and "
        "run again"
    )


def one_line(text: object) -> str:
    """Collapse an exception text from a third-party library to one readable line."""
    line = " ".join(str(text).split())
    return line if len(line) <= 300 else line[:297] + "..."
