from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from mbfast.model.config import ModelConfig
from mbfast.model.layout import FORMAT_VERSION, random_weights, weight_layout
from mbfast.model.modelfile import MAGIC, ModelFileError, read_model, write_model


def test_write_read_round_trip_is_exact(small_model_path: Path, small_config: ModelConfig) -> None:
    model = read_model(small_model_path)
    assert model.config == small_config
    expected = random_weights(small_config)
    assert list(model.tensors) == [name for name, _ in weight_layout(small_config)]
    for name, array in expected.items():
        np.testing.assert_array_equal(model.tensors[name], array, err_msg=name)


def test_every_layout_problem_is_listed_in_one_error(small_config: ModelConfig, tmp_path: Path) -> None:
    tensors = random_weights(small_config)
    del tensors["central.stack.mix"]
    del tensors["bands.0.stack.residual.bias"]
    tensors["bands.1.stack.lstm.0.weight_ih_l0"] = np.zeros((3, 3), np.float32)
    tensors["surprise"] = np.zeros(1, np.float32)
    with pytest.raises(ModelFileError) as error:
        write_model(tmp_path / "bad.mbf", small_config, tensors)
    message = str(error.value)
    for expected in ("missing central.stack.mix", "missing bands.0.stack.residual.bias",
                     "mis-shaped bands.1.stack.lstm.0.weight_ih_l0: expected (32, 4), got (3, 3)", "extra surprise"):
        assert expected in message


def test_newer_format_is_refused_with_upgrade_hint(small_model_path: Path, tmp_path: Path) -> None:
    data = bytearray(small_model_path.read_bytes())
    data[len(MAGIC):len(MAGIC) + 4] = struct.pack("<I", FORMAT_VERSION + 1)
    newer = tmp_path / "newer.mbf"
    newer.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match=f"format {FORMAT_VERSION + 1} is newer than this mbfast "
                                             f"\\(reads up to {FORMAT_VERSION}\\); upgrade mbfast"):
        read_model(newer)


def test_corrupt_and_truncated_files_are_refused(small_model_path: Path, tmp_path: Path) -> None:
    data = small_model_path.read_bytes()
    corrupt = tmp_path / "corrupt.mbf"
    corrupt.write_bytes(data[:-100] + bytes([data[-100] ^ 0xFF]) + data[-99:])
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        read_model(corrupt)
    truncated = tmp_path / "truncated.mbf"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="checksum mismatch|truncated"):
        read_model(truncated)
    not_model = tmp_path / "other.bin"
    not_model.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(ModelFileError, match="bad magic"):
        read_model(not_model)


def test_tensor_data_is_64_byte_aligned(small_model_path: Path, small_config: ModelConfig) -> None:
    data = small_model_path.read_bytes()
    first = random_weights(small_config)[weight_layout(small_config)[0][0]].tobytes()
    offset = data.index(first)
    assert offset % 64 == 0
