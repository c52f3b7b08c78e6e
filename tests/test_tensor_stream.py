"""kdcli.files.tensor_stream: safetensors read with the library's slices, written as a stream."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from kdcli.core.errors import KdcliError
from kdcli.files.tensor_stream import SafetensorsFile, SafetensorsWriter

TENSORS = {
    "f8": torch.linspace(-2, 2, 12).reshape(3, 4).to(torch.float8_e4m3fn),
    "u16": torch.arange(10).reshape(5, 2).to(torch.uint16),
    "u32": torch.arange(6).to(torch.uint32),
    "u64": torch.arange(8).reshape(2, 4).to(torch.uint64),
    "bf16": torch.randn(4, 3).to(torch.bfloat16),
    "scalar": torch.tensor(7, dtype=torch.int64),
}


def _bytes(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.reshape(-1).view(torch.uint8)


def test_every_dtype_torch_holds_is_read_whole_or_by_rows(tmp_path):
    path = tmp_path / "t.safetensors"
    save_file(TENSORS, path)
    file = SafetensorsFile(path)
    infos = file.infos()
    assert {name: (info.dtype, info.shape) for name, info in infos.items()} == {
        name: (str(t.dtype).removeprefix("torch."), tuple(t.shape)) for name, t in TENSORS.items()
    }
    for name, tensor in TENSORS.items():
        assert torch.equal(_bytes(file.read(name)), _bytes(tensor))
    assert torch.equal(file.read("u16", slice(1, 3)), TENSORS["u16"][1:3])


def test_the_streaming_writer_writes_them_back_band_by_band(tmp_path):
    source = tmp_path / "a.safetensors"
    save_file(TENSORS, source)
    file = SafetensorsFile(source)
    writer = SafetensorsWriter(tmp_path / "b.safetensors", list(file.infos().values()))
    for name in writer.order:
        rows = file.infos()[name].shape[0] if file.infos()[name].shape else 0
        if rows > 1:
            writer.write(name, file.read(name, slice(0, 1)))
            writer.write(name, file.read(name, slice(1, rows)))
        else:
            writer.write(name, file.read(name))
    writer.close()
    copied = load_file(tmp_path / "b.safetensors")
    for name, tensor in TENSORS.items():
        assert copied[name].dtype == tensor.dtype
        assert torch.equal(_bytes(copied[name]), _bytes(tensor))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "is truncated"),
        (lambda data: b"\x00garbage" * 10, "is not a valid safetensors file"),
    ],
)
def test_a_damaged_file_is_named_with_the_fix(tmp_path, damage, message):
    path = tmp_path / "t.safetensors"
    save_file({"w": torch.ones(64, 64)}, path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(KdcliError, match=message) as err:
        SafetensorsFile(path)
    assert str(path) in str(err.value) and "again" in str(err.value)
