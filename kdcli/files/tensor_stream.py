"""Tensor-by-tensor reading and streaming writing of checkpoint files.

kdcli never needs a whole teacher in memory to build a student: it reads one tensor (or a band of
rows of one tensor) at a time with the safetensors library (`safe_open(...).get_slice(...)`) and
streams the student's tensors straight into its safetensors file. The writer is kdcli's own: the
library writes only whole in-memory tensors, and a student's header is known before its first
byte, so its tensors can be computed and written one at a time.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kdcli.core.errors import KdcliError, one_line

if TYPE_CHECKING:
    import torch

# safetensors dtype code -> (torch dtype name, bytes per element): every code torch can hold
_DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U64": ("uint64", 8),
    "U32": ("uint32", 4),
    "U16": ("uint16", 2),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
}
_CODES = {name: code for code, (name, _) in _DTYPES.items()}
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


class SafetensorsFile:
    """One `.safetensors` file, read tensor by tensor (or band by band of rows) with the
    safetensors library's `safe_open(...).get_slice(...)`, which checks the header and the file's
    length when it opens it."""

    def __init__(self, path: Path) -> None:
        from safetensors import SafetensorError, safe_open

        self.path = Path(path)
        try:
            self._file: Any = safe_open(str(self.path), framework="pt")
        except SafetensorError as err:
            raise _unreadable(self.path, err) from err
        names = self._file.keys()
        self._infos = {name: _info(self.path, name, self._file) for name in names}

    def infos(self) -> dict[str, TensorInfo]:
        return dict(self._infos)

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        """The tensor `name`, or only rows `rows` of its first dimension."""
        if rows is None or not self._infos[name].shape:
            return self._file.get_tensor(name)
        return self._file.get_slice(name)[rows]

    def close(self) -> None:
        self._file = None


def _info(path: Path, name: str, file: Any) -> TensorInfo:
    part = file.get_slice(name)
    code = part.get_dtype()
    if code not in _DTYPES:
        raise KdcliError(
            f"{path}: tensor {name!r} has dtype {code}, which torch cannot hold",
            fix="re-save the model with safetensors from PyTorch",
        )
    return TensorInfo(name, _DTYPES[code][0], tuple(int(s) for s in part.get_shape()))


def _unreadable(path: Path, err: Exception) -> KdcliError:
    text = one_line(err)
    if "incomplete" in text or "not fully covered" in text:
        return KdcliError(f"{path} is truncated ({text})", fix="download or save the file again")
    return KdcliError(
        f"{path} is not a valid safetensors file ({text})", fix="download or save it again"
    )


class PickleCheckpoint:
    """A `pytorch_model.bin`, loaded with `weights_only=True` (only when the user allowed it)."""

    def __init__(self, path: Path) -> None:
        import torch

        self.path = Path(path)
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as err:  # torch raises many types for broken or unsafe files
            raise KdcliError(_pickle_refusal(self.path, err)) from err
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


def _pickle_refusal(path: Path, err: Exception) -> str:
    """One line for a pickle that weights_only=True refuses. torch's own text is six lines that
    end in advice to load it with weights_only=False, which would run code from the file."""
    import re

    text = " ".join(str(err).split())
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        what = f"it holds {found.group(1)}, not only tensors"
    elif "weights only load failed" in text.lower() or "weights_only" in text:
        what = "it holds more than tensors"
    else:
        what = f"it is not a readable checkpoint ({text[:100]})"
    return (
        f"{path} cannot be loaded safely ({what}); kdcli never runs code from a checkpoint: "
        "convert it to safetensors where it was made (model.save_pretrained(..., "
        "safe_serialization=True)), or use a safetensors copy of the model"
    )


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
        self._handle.write(data.numpy().data)
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
