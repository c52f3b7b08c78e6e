"""Tensor-by-tensor reading and streaming writing of checkpoint files.

kdcli never needs a whole teacher in memory to build a student: it reads one tensor (or a band of
rows of one tensor) at a time and streams the student's tensors straight into its safetensors file.
The safetensors format is simple enough to parse here, which also lets kdcli check a file's header
and size up front and name the exact problem when a download was truncated.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from kdcli.core.errors import KdcliError

if TYPE_CHECKING:
    import torch

# safetensors dtype code -> (torch dtype name, bytes per element)
_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
_CODES = {name: code for code, (name, _) in _DTYPES.items()}
_MAX_HEADER = 100_000_000
CHUNK_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # torch dtype name, e.g. "float32"
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count

    @property
    def itemsize(self) -> int:
        return _DTYPES[_CODES[self.dtype]][1]

    @property
    def nbytes(self) -> int:
        return self.numel * self.itemsize


class TensorReader(Protocol):
    """Random access to the tensors of a checkpoint without loading all of it."""

    def infos(self) -> dict[str, TensorInfo]: ...

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor: ...


class SafetensorsFile:
    """One `.safetensors` file, validated on open, read with plain file I/O (no mmap)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._handle: IO[bytes] | None = None
        self._entries, self._data_start = _parse_header(self.path)

    def infos(self) -> dict[str, TensorInfo]:
        return {name: info for name, (info, _) in self._entries.items()}

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        """The tensor `name`, or only rows `rows` of its first dimension."""
        import torch

        info, begin = self._entries[name]
        shape = list(info.shape)
        if rows is not None and shape:
            start, stop, _ = rows.indices(shape[0])
            row_bytes = info.nbytes // max(shape[0], 1)
            begin += start * row_bytes
            shape[0] = max(stop - start, 0)
        count = 1
        for size in shape:
            count *= size
        buffer = bytearray(count * info.itemsize)
        handle = self._open()
        handle.seek(self._data_start + begin)
        if handle.readinto(buffer) != len(buffer):
            raise KdcliError(f"{self.path} is truncated (tensor {name}): download the file again")
        if not buffer:
            return torch.empty(shape, dtype=getattr(torch, info.dtype))
        return torch.frombuffer(buffer, dtype=getattr(torch, info.dtype)).reshape(shape)

    def _open(self) -> IO[bytes]:
        if self._handle is None:
            self._handle = self.path.open("rb")
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _parse_header(path: Path) -> tuple[dict[str, tuple[TensorInfo, int]], int]:
    bad = f"{path} is not a valid safetensors file"
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise KdcliError(f"{bad} (only {size} bytes): download or save it again")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > min(_MAX_HEADER, size - 8):
                raise KdcliError(f"{bad} (header length {header_len}): download or save it again")
            header = json.loads(handle.read(header_len).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise KdcliError(f"{bad} (unreadable header): download or save it again") from err
    if not isinstance(header, dict):
        raise KdcliError(f"{bad} (header is not an object): download or save it again")
    data_start = 8 + header_len
    entries: dict[str, tuple[TensorInfo, int]] = {}
    end_max = 0
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        info, begin, end = _entry(path, name, meta)
        entries[name] = (info, begin)
        end_max = max(end_max, end)
    if data_start + end_max > size:
        missing = data_start + end_max - size
        raise KdcliError(
            f"{path} is truncated ({missing} bytes missing): download or save the file again"
        )
    return entries, data_start


def _entry(path: Path, name: str, meta: Any) -> tuple[TensorInfo, int, int]:
    try:
        code, shape, (begin, end) = meta["dtype"], meta["shape"], meta["data_offsets"]
        dtype, itemsize = _DTYPES[code]
    except (KeyError, TypeError, ValueError) as err:
        raise KdcliError(
            f"{path}: tensor {name!r} has an unsupported or broken entry ({meta!r}); "
            "re-save the model with safetensors"
        ) from err
    info = TensorInfo(name, dtype, tuple(int(s) for s in shape))
    if end - begin != info.numel * itemsize or begin < 0:
        raise KdcliError(f"{path}: tensor {name!r} has inconsistent offsets; download it again")
    return info, begin, end


class PickleCheckpoint:
    """A `pytorch_model.bin`, loaded with `weights_only=True` (only when the user allowed it)."""

    def __init__(self, path: Path) -> None:
        import torch

        self.path = Path(path)
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # torch raises many types for broken or unsafe files
            raise KdcliError(f"cannot load {path} with weights_only=True: {err}") from err
        self._tensors = {k: v for k, v in state.items() if hasattr(v, "shape")}

    def infos(self) -> dict[str, TensorInfo]:
        return {
            name: TensorInfo(name, str(t.dtype).removeprefix("torch."), tuple(t.shape))
            for name, t in self._tensors.items()
        }

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        tensor = self._tensors[name]
        return (tensor[rows] if rows is not None else tensor).clone()

    def close(self) -> None:
        self._tensors.clear()


class Checkpoint:
    """All weight files of a model (one file or shards) behind one name -> tensor interface."""

    def __init__(self, files: Sequence[SafetensorsFile | PickleCheckpoint]) -> None:
        self.files = list(files)
        self._where: dict[str, SafetensorsFile | PickleCheckpoint] = {}
        self._infos: dict[str, TensorInfo] = {}
        for file in self.files:
            for name, info in file.infos().items():
                self._where[name] = file
                self._infos[name] = info

    def infos(self) -> dict[str, TensorInfo]:
        return dict(self._infos)

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        return self._where[name].read(name, rows)

    def row_chunks(self, name: str) -> Iterator[tuple[int, torch.Tensor]]:
        """(first row, band of rows) pieces of a tensor, each at most CHUNK_BYTES."""
        info = self._infos[name]
        if len(info.shape) < 2:
            yield 0, self.read(name)
            return
        rows = info.shape[0]
        step = max(1, CHUNK_BYTES // max(info.nbytes // max(rows, 1), 1))
        for start in range(0, rows, step):
            yield start, self.read(name, slice(start, min(rows, start + step)))

    def close(self) -> None:
        for file in self.files:
            file.close()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SafetensorsWriter:
    """Writes a safetensors file tensor by tensor, in a layout fixed up front.

    The header (names, dtypes, shapes, offsets) is known before any data is produced, so tensors can
    be computed and written one at a time and never need to be in memory together.
    """

    def __init__(
        self, path: Path, infos: Sequence[TensorInfo], metadata: dict[str, str] | None = None
    ) -> None:
        # Larger elements first keep every tensor aligned to its element size (as safetensors does).
        ordered = sorted(infos, key=lambda i: (-i.itemsize, i.name))
        header: dict[str, Any] = {"__metadata__": dict(metadata or {"format": "pt"})}
        offset = 0
        for info in ordered:
            code = _CODES[info.dtype]
            header[info.name] = {
                "dtype": code,
                "shape": list(info.shape),
                "data_offsets": [offset, offset + info.nbytes],
            }
            offset += info.nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)
        self._order = [info.name for info in ordered]
        self._infos = {info.name: info for info in ordered}
        self._pending: dict[str, int] = {}
        self._handle = Path(path).open("wb")  # noqa: SIM115 (closed by close())
        self._handle.write(struct.pack("<Q", len(raw)) + raw)
        self._position = 0  # index into self._order of the next tensor to write
        self._written_rows = 0

    @property
    def order(self) -> list[str]:
        """Tensor names in the order they must be written."""
        return list(self._order)

    def write(self, name: str, tensor: torch.Tensor) -> None:
        """Append `tensor` (or the next band of rows of it) to the file."""
        expected = self._order[self._position] if self._position < len(self._order) else None
        if name != expected:
            raise RuntimeError(f"tensors out of order: got {name}, expected {expected}")
        info = self._infos[name]
        if str(tensor.dtype).removeprefix("torch.") != info.dtype:
            raise RuntimeError(f"{name}: dtype {tensor.dtype} != planned {info.dtype}")
        if tuple(tensor.shape[1:]) != info.shape[1:]:
            raise RuntimeError(f"{name}: shape {tuple(tensor.shape)} != planned {info.shape}")
        data = tensor.detach().contiguous().reshape(-1).view(_byte_dtype())
        self._handle.write(data.numpy())
        self._written_rows += tensor.shape[0] if tensor.dim() else 1
        if self._written_rows >= (info.shape[0] if info.shape else 1):
            self._position += 1
            self._written_rows = 0

    def close(self) -> None:
        missing = self._order[self._position :]
        self._handle.close()
        if missing:
            raise RuntimeError(f"safetensors file incomplete: {len(missing)} tensors not written")


def _byte_dtype() -> Any:
    import torch

    return torch.uint8


def write_safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write in-memory tensors with the same byte layout as the streaming writer."""
    infos = [
        TensorInfo(name, str(t.dtype).removeprefix("torch."), tuple(t.shape))
        for name, t in tensors.items()
    ]
    writer = SafetensorsWriter(path, infos)
    for name in writer.order:
        writer.write(name, tensors[name])
    writer.close()
