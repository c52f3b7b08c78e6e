""".jsonl / .csv / .parquet output written chunk by chunk, and only complete files in place.

Rows go to a temporary sibling of the output (`.<name>.tmp-*`) that replaces it when the writer
closes without error; an error or Ctrl-C removes it, so a reader never sees half a file and an
existing output survives a failed run.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from kdcli.core.errors import KdcliError, one_line, option_ref
from kdcli.files.outputs import atomic_file

ROW_SUFFIXES = (".jsonl", ".csv", ".parquet")
Record = dict[str, Any]


def check_row_file(out: Path, overwrite: bool, option: str = "out") -> None:
    """Fail early, before any work, when `out` (the setting `option`) cannot be written."""
    if out.suffix not in ROW_SUFFIXES:
        raise KdcliError(
            f": unsupported file type {out.suffix or '(none)'!r}",
            option=option,
            value=out,
            fix="name it .jsonl, .csv or .parquet",
        )
    if out.is_dir():
        raise KdcliError("is a folder", option=option, value=out, fix="give a file path")
    if out.exists() and not overwrite:
        raise KdcliError(
            f"output {out} already exists",
            fix=f"choose another {option_ref(option)} or pass {option_ref('overwrite')}",
        )
    parent = out.absolute().parent
    if not parent.is_dir():
        raise KdcliError(
            f": folder {parent} does not exist", option=option, value=out, fix="create it first"
        )
    if not os.access(parent, os.W_OK):
        raise KdcliError(
            f": folder {parent} is not writable",
            option=option,
            value=out,
            fix="choose another path",
        )


@contextmanager
def row_writer(out: Path, overwrite: bool = False) -> Iterator[RowWriter]:
    """A writer for `out` (format by suffix) that leaves a complete file or none."""
    check_row_file(out, overwrite)
    with atomic_file(out.absolute()) as tmp:
        writer = RowWriter(tmp, out.suffix)
        try:
            yield writer
        finally:
            writer.close()
        if out.exists() and not overwrite:  # somebody created it while we worked
            raise KdcliError(
                f"output {out} appeared while kdcli was running",
                fix=f"pass {option_ref('overwrite')}",
            )


class RowWriter:
    """Appends records to one file; the first chunk fixes the columns of CSV and parquet."""

    def __init__(self, path: Path, suffix: str) -> None:
        self.path = path
        self.suffix = suffix
        self.rows = 0
        self._handle: IO[str] | None = None
        self._csv: csv.DictWriter[str] | None = None
        self._parquet: Any = None

    def write(self, records: Iterable[Record]) -> None:
        records = list(records)
        if not records:
            return
        if self.suffix == ".jsonl":
            self._text_handle().writelines(_json_line(r) for r in records)
        elif self.suffix == ".csv":
            self._write_csv(records)
        else:
            self._write_parquet(records)
        self.rows += len(records)

    def close(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def _text_handle(self) -> IO[str]:
        if self._handle is None:
            self._handle = self.path.open("w", encoding="utf-8", newline="")
        return self._handle

    def _write_csv(self, records: list[Record]) -> None:
        if self._csv is None:
            fields = list(dict.fromkeys(key for record in records for key in record))
            self._csv = csv.DictWriter(
                self._text_handle(), fieldnames=fields, restval="", extrasaction="ignore"
            )
            self._csv.writeheader()
        self._csv.writerows({k: _csv_value(v) for k, v in r.items()} for r in records)

    def _write_parquet(self, records: list[Record]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = self._parquet.schema_arrow if self._parquet is not None else None
        try:
            table = pa.Table.from_pylist(records, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
            raise KdcliError(
                f"row {self.rows + 1} onwards do not fit the parquet columns set by the first "
                f"rows ({one_line(err)}): write .jsonl instead"
            ) from err
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema)
        self._parquet.write_table(table)


def _json_line(record: Record) -> str:
    """One JSON line; values JSON cannot hold (dates, ...) as text."""
    return json.dumps(record, ensure_ascii=False, default=str) + "\n"


def _csv_value(value: Any) -> Any:
    """Lists and mappings (top-k) as JSON text in their CSV cell."""
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return value
