"""One local .jsonl / .csv / .parquet file read in chunks, every column kept.

`kdcli predict` runs over files of any size, so unlike the split readers of `sources.py` (which
turn a whole split into examples) this reads a bounded chunk of records at a time and keeps each
record whole, so the predictions can be written next to the user's own columns. The text column
is required; the label and language columns are used when present.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdcli.core.errors import KdcliError, one_line
from kdcli.data.sources import (
    FILE_SUFFIXES,
    Columns,
    class_label_names,
    jsonl_records,
    label_name,
    pick_columns,
)

Record = dict[str, Any]


@dataclass(frozen=True)
class RowFile:
    """A file to stream, with the columns chosen for each role and its number of rows."""

    path: Path
    text: str
    label: str | None
    language: str | None
    rows: int

    def chunks(self, size: int) -> Iterator[list[Record]]:
        """Its records, `size` at a time, in file order."""
        chunk: list[Record] = []
        for line_no, record in _records(self.path):
            value = record.get(self.text)
            if value is None:
                raise KdcliError(f"{self.path}, line {line_no}: no text in column {self.text!r}")
            chunk.append(record)
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def open_rows(path: str | Path, columns: Columns, option: str = "data") -> RowFile:
    """Check `path` (the setting `option`) and choose its columns from the first record (label
    and language optional)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise KdcliError(": no such file", option=option, value=path, fix="check the path")
    if path.is_dir():
        raise KdcliError(
            "is a folder", option=option, value=path, fix="give one .jsonl, .csv or .parquet file"
        )
    if path.suffix not in FILE_SUFFIXES:
        raise KdcliError(
            f": unsupported file type {path.suffix or '(none)'!r}",
            option=option,
            value=path,
            fix="use .jsonl, .csv or .parquet",
        )
    first = next(iter(_records(path)), None)
    if first is None:
        raise KdcliError(
            "holds no rows", option=option, value=path, fix="give a file with one text per row"
        )
    chosen = pick_columns(first[1], columns, path, optional=("label", "language"))
    assert chosen["text"] is not None
    return RowFile(path, chosen["text"], chosen["label"], chosen["language"], _count(path))


def _records(path: Path) -> Iterator[tuple[int, Record]]:
    if path.suffix == ".jsonl":
        with path.open("rb") as handle:
            yield from jsonl_records(handle, str(path))
    elif path.suffix == ".csv":
        yield from _csv_records(path)
    else:
        yield from _parquet_records(path)


def _csv_records(path: Path) -> Iterator[tuple[int, Record]]:
    """Rows of a CSV file, read as it streams (the split reader loads the whole file)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        try:
            for record in reader:
                yield reader.line_num, record
        except UnicodeDecodeError as err:
            raise KdcliError(
                f"{path}, near line {reader.line_num + 1}: not valid UTF-8; re-save the file "
                "as UTF-8"
            ) from err
        except csv.Error as err:
            raise KdcliError(f"{path}, line {reader.line_num}: {one_line(err)}") from err


def _parquet_records(path: Path) -> Iterator[tuple[int, Record]]:
    parquet = _parquet_file(path)
    names = {c: class_label_names(parquet.schema_arrow, c) for c in parquet.schema_arrow.names}
    line_no = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            line_no += 1
            for column, labels in names.items():
                if labels:
                    record[column] = label_name(record.get(column), labels)
            yield line_no, record


def _parquet_file(path: Path) -> Any:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises ArrowInvalid / OSError for broken files
        raise KdcliError(f"{path} is not a readable parquet file: {one_line(err)}") from err


def _count(path: Path) -> int:
    """Rows in the file: parquet says so; text files are counted in one fast pass."""
    if path.suffix == ".parquet":
        return int(_parquet_file(path).metadata.num_rows)
    if path.suffix == ".jsonl":
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())
    with path.open(encoding="utf-8-sig", newline="", errors="replace") as handle:
        return max(sum(1 for row in csv.reader(handle) if row) - 1, 0)
